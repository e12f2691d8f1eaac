package gwtransport_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// sentAttempt is what left the gateway (the URL it built) and what the
// server standing in for the provider received.
type sentAttempt struct {
	url      string // the attempt's URL, as the gateway built it
	path     string // the path the server received
	rawQuery string
	auth     string // Authorization the server received
	apiKey   string // Api-Key the server received
}

// standIn is a real HTTP server standing in for every provider: its base
// transport records the URL the gateway built for each attempt, then sends
// the attempt to the server instead of the provider's host.
type standIn struct {
	srv  *httptest.Server
	mu   sync.Mutex
	urls []string
	got  []sentAttempt
}

func newStandIn(t *testing.T) *standIn {
	si := &standIn{}
	si.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		si.mu.Lock()
		si.got = append(si.got, sentAttempt{path: r.URL.Path, rawQuery: r.URL.RawQuery, auth: r.Header.Get("Authorization"), apiKey: r.Header.Get("Api-Key")})
		si.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(si.srv.Close)
	return si
}

// RoundTrip records the attempt's URL and sends it to the stand-in server.
func (si *standIn) RoundTrip(req *http.Request) (*http.Response, error) {
	si.mu.Lock()
	si.urls = append(si.urls, req.URL.String())
	si.mu.Unlock()
	u, _ := url.Parse(si.srv.URL)
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = u.Scheme, u.Host, ""
	return si.srv.Client().Transport.RoundTrip(out)
}

// attempts returns what was sent, each URL with what the server received.
func (si *standIn) attempts() []sentAttempt {
	si.mu.Lock()
	defer si.mu.Unlock()
	out := make([]sentAttempt, len(si.got))
	for i := range si.got {
		out[i] = si.got[i]
		if i < len(si.urls) {
			out[i].url = si.urls[i]
		}
	}
	return out
}

// TestBuiltinProviderWireShapes sends one routed request to every built-in
// provider and checks the exact URL the attempt goes to and the exact
// credentials it carries, as a real server receives them: with the key
// variable set, and without it (a keyless local server gets no
// credentials; a provider that needs a key is never sent). A built-in
// provider missing from the table fails the test.
func TestBuiltinProviderWireShapes(t *testing.T) {
	const key = "sk-test-0123456789"
	type row struct {
		name     string
		url      string // the attempt's exact URL for model "m"
		keyEnv   string
		auth     string // "bearer", "api-key" or "none"
		keyless  bool   // works without a key
		extraEnv map[string]string
	}
	rows := []row{
		{name: "openai", url: "https://api.openai.com/v1/chat/completions", keyEnv: "OPENAI_API_KEY", auth: "bearer"},
		{name: "azure", url: "https://myres.openai.azure.com/openai/deployments/m/chat/completions?api-version=2024-10-21", keyEnv: "AZURE_OPENAI_API_KEY", auth: "api-key",
			extraEnv: map[string]string{"AZURE_OPENAI_ENDPOINT": "https://myres.openai.azure.com"}},
		{name: "anthropic", url: "https://api.anthropic.com/v1/chat/completions", keyEnv: "ANTHROPIC_API_KEY", auth: "bearer"},
		{name: "xai", url: "https://api.x.ai/v1/chat/completions", keyEnv: "XAI_API_KEY", auth: "bearer"},
		{name: "cerebras", url: "https://api.cerebras.ai/v1/chat/completions", keyEnv: "CEREBRAS_API_KEY", auth: "bearer"},
		{name: "perplexity", url: "https://api.perplexity.ai/chat/completions", keyEnv: "PERPLEXITY_API_KEY", auth: "bearer"},
		{name: "sambanova", url: "https://api.sambanova.ai/v1/chat/completions", keyEnv: "SAMBANOVA_API_KEY", auth: "bearer"},
		{name: "deepinfra", url: "https://api.deepinfra.com/v1/openai/chat/completions", keyEnv: "DEEPINFRA_TOKEN", auth: "bearer"},
		{name: "novita", url: "https://api.novita.ai/v3/openai/chat/completions", keyEnv: "NOVITA_API_KEY", auth: "bearer"},
		{name: "hyperbolic", url: "https://api.hyperbolic.xyz/v1/chat/completions", keyEnv: "HYPERBOLIC_API_KEY", auth: "bearer"},
		{name: "nebius", url: "https://api.tokenfactory.nebius.com/v1/chat/completions", keyEnv: "NEBIUS_API_KEY", auth: "bearer"},
		{name: "together", url: "https://api.together.xyz/v1/chat/completions", keyEnv: "TOGETHER_API_KEY", auth: "bearer"},
		{name: "groq", url: "https://api.groq.com/openai/v1/chat/completions", keyEnv: "GROQ_API_KEY", auth: "bearer"},
		{name: "mistral", url: "https://api.mistral.ai/v1/chat/completions", keyEnv: "MISTRAL_API_KEY", auth: "bearer"},
		{name: "deepseek", url: "https://api.deepseek.com/v1/chat/completions", keyEnv: "DEEPSEEK_API_KEY", auth: "bearer"},
		{name: "openrouter", url: "https://openrouter.ai/api/v1/chat/completions", keyEnv: "OPENROUTER_API_KEY", auth: "bearer"},
		{name: "fireworks", url: "https://api.fireworks.ai/inference/v1/chat/completions", keyEnv: "FIREWORKS_API_KEY", auth: "bearer"},
		{name: "gemini", url: "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions", keyEnv: "GEMINI_API_KEY", auth: "bearer"},
		{name: "ollama", url: "http://localhost:11434/v1/chat/completions", auth: "none", keyless: true},
		{name: "vllm", url: "http://localhost:8000/v1/chat/completions", keyEnv: "VLLM_API_KEY", auth: "bearer", keyless: true},
		{name: "lmstudio", url: "http://localhost:1234/v1/chat/completions", keyEnv: "LM_API_TOKEN", auth: "bearer", keyless: true},
		{name: "llamacpp", url: "http://localhost:8080/v1/chat/completions", keyEnv: "LLAMA_API_KEY", auth: "bearer", keyless: true},
	}

	var names, builtin []string
	for _, r := range rows {
		names = append(names, r.name)
	}
	for n := range gwtransport.BuiltinProviders() {
		builtin = append(builtin, n)
	}
	sort.Strings(names)
	sort.Strings(builtin)
	require.Equal(t, builtin, names, "every built-in provider has a row here")

	for _, r := range rows {
		for _, withKey := range []bool{true, false} {
			name := r.name + "/no key"
			if withKey {
				name = r.name + "/key set"
			}
			t.Run(name, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range r.extraEnv {
					env[k] = v
				}
				if withKey && r.keyEnv != "" {
					env[r.keyEnv] = key
				}
				si := newStandIn(t)
				// The caller's client serves a provider of its own
				// ("caller"), so every built-in is another provider and
				// gets its own base URL and credentials.
				tr, err := gwtransport.NewTransport(si, []string{r.name + "/m"},
					envOf(env),
					gwtransport.WithProvider(gwtransport.Provider{Name: "caller", BaseURL: si.srv.URL, Auth: gwtransport.AuthNone}),
					gwtransport.WithClientProvider("caller"),
					gwtransport.WithMaxRetries(0))
				require.NoError(t, err)
				hc := &http.Client{Transport: tr}
				defer hc.CloseIdleConnections()
				defer si.srv.Client().CloseIdleConnections()

				res, err := hc.Post(si.srv.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
				sent := si.attempts()
				if !withKey && !r.keyless {
					// Never sent: no attempt reaches any server.
					if err == nil {
						res.Body.Close()
					}
					require.Error(t, err)
					require.ErrorIs(t, err, gwtransport.ErrMissingCredentials)
					assert.Contains(t, err.Error(), "set "+r.keyEnv)
					assert.Empty(t, sent)
					return
				}
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				require.Equal(t, http.StatusOK, res.StatusCode)
				assert.Equal(t, r.name+"/m", res.Header.Get(gwtransport.HeaderTarget))
				assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
				require.Len(t, sent, 1)
				assert.Equal(t, r.url, sent[0].url)
				u, _ := url.Parse(r.url)
				assert.Equal(t, u.Path, sent[0].path)
				assert.Equal(t, u.RawQuery, sent[0].rawQuery)
				switch {
				case !withKey || r.auth == "none":
					assert.Empty(t, sent[0].auth)
					assert.Empty(t, sent[0].apiKey)
				case r.auth == "bearer":
					assert.Equal(t, "Bearer "+key, sent[0].auth)
					assert.Empty(t, sent[0].apiKey)
				case r.auth == "api-key":
					assert.Equal(t, key, sent[0].apiKey)
					assert.Empty(t, sent[0].auth)
				}
			})
		}
	}
}
