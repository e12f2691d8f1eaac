package gwtransport_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestRV14bNamedClientSlicesCompile: a named slice of clients (type
// Clients []*http.Client) is as plausible as a named slice of models, which
// compiles; before Clients became a constraint, Init took any and such code
// compiled.
func TestRV14bNamedClientSlicesCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	out, err := buildPrograms(t, []compileCase{
		{"named_http_clients", `type Clients []*http.Client
	_, _ = gwtransport.Init(Clients{hc}, []string{"openai/a"})`, ""},
		{"named_openai_clients", `type Clients []*openai.Client
	c := openai.NewClient()
	_, _ = gwtransport.Init(Clients{&c}, []string{"openai/a"})`, ""},
	})
	require.NoError(t, err, "named client slices must compile:\n%s", out)
}

// TestRV14bCompileProbes: forms that held (control).
func TestRV14bCompileProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	out, err := buildPrograms(t, []compileCase{
		{"forms", `type Targets []string
	models := []string{"openai/a"}
	models = append(models, "mistral/b")
	_, _ = gwtransport.Init(hc, models)
	w := map[string]float64{}
	for _, s := range models { w[s] = 1 }
	_, _ = gwtransport.Init(hc, w)
	_, _ = gwtransport.Init(hc, Targets{"openai/a"})
	_, _ = gwtransport.Init([]*http.Client{hc, {}}, models)
	c := openai.NewClient()
	_, _ = gwtransport.Init(&c, gwtransport.FromConfig, gwtransport.WithConfig(&gwtransport.Config{}))
	var rm *gwtransport.RetryManager
	_ = rm
	_ = gwtransport.HeaderReason
	_ = gwtransport.StrategyAlwaysFirst
	tr, _ := gwtransport.NewTransport(nil, models)
	_ = tr.Reconfigure(models)`, ""},
	})
	require.NoError(t, err, "%s", out)
}

type rv14bRec struct {
	mu   sync.Mutex
	auth []string
	n    int
}

func rv14bServer(t *testing.T) (*httptest.Server, *rv14bRec) {
	rec := &rv14bRec{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.n++
		rec.auth = append(rec.auth, strings.Join(r.Header.Values("Authorization"), "|")+"#"+r.Header.Get("Api-Key"))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(s.Close)
	return s, rec
}

// TestRV14bKeylessLocalProviders: vllm, lmstudio, llamacpp, ollama with no
// key send no credentials; with their variable, exactly "Bearer <key>".
func TestRV14bKeylessLocalProviders(t *testing.T) {
	vars := map[string]string{"vllm": "VLLM_API_KEY", "lmstudio": "LM_API_TOKEN", "llamacpp": "LLAMA_API_KEY", "ollama": ""}
	for name, v := range vars {
		keys := []string{""}
		if v != "" {
			keys = append(keys, "sekrit-"+name+"-9f8e7d")
		}
		for _, key := range keys {
			t.Run(name+"/key="+key, func(t *testing.T) {
				s, rec := rv14bServer(t)
				caller, crec := rv14bServer(t)
				env := map[string]string{}
				if key != "" {
					env[v] = key
				}
				var logBuf bytes.Buffer
				tr, err := gwtransport.NewTransport(nil, []string{name + "/qwen"}, envOf(env), gwtransport.WithRequireCredentials(),
					gwtransport.WithLogger(slog.New(slog.NewTextHandler(&logBuf, nil))),
					gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s.URL}),
					gwtransport.WithProvider(gwtransport.Provider{Name: "caller", BaseURL: caller.URL, Auth: gwtransport.AuthNone}),
					gwtransport.WithClientProvider("caller"))
				require.NoError(t, err)
				hc := &http.Client{Transport: tr}
				res, err := hc.Post(caller.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				require.Equal(t, http.StatusOK, res.StatusCode)
				require.Equal(t, 1, rec.n)
				assert.Equal(t, 0, crec.n)
				want := "#"
				if key != "" {
					want = "Bearer " + key + "#"
				}
				assert.Equal(t, want, rec.auth[0])
				assert.NotContains(t, logBuf.String(), "missing")
				if key != "" {
					assert.NotContains(t, logBuf.String(), key)
				}
			})
		}
	}
}

// TestRV14bCredentialReport: one provider with a recognizable key, another
// without; the warning and the error name the missing target and variable
// and never a key value.
func TestRV14bCredentialReport(t *testing.T) {
	const secret = "sk-RECOGNIZABLE-SECRET-0xdeadbeef"
	env := map[string]string{"MISTRAL_API_KEY": secret, "VLLM_API_KEY": secret + "-v"}
	models := []string{"mistral/large", "groq/llama", "vllm/q"}
	var buf bytes.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := gwtransport.Init(&http.Client{}, models, envOf(env), gwtransport.WithLogger(lg))
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, "groq/llama")
	assert.Contains(t, out, "GROQ_API_KEY")
	assert.NotContains(t, out, "mistral/large\"", "a target with a key is not reported")
	assert.NotContains(t, out, "RECOGNIZABLE")
	assert.NotContains(t, out, "deadbeef")

	buf.Reset()
	_, err = gwtransport.Init(&http.Client{}, models, envOf(env), gwtransport.WithLogger(lg), gwtransport.WithRequireCredentials())
	require.Error(t, err)
	assert.True(t, errors.Is(err, gwtransport.ErrMissingCredentials))
	assert.Equal(t, `gwtransport: missing credentials: route "gateway", target "groq/llama": provider "groq" has no API key (set GROQ_API_KEY)`, err.Error())
	assert.NotContains(t, err.Error()+buf.String(), "RECOGNIZABLE")
	t.Logf("log: %s", out)
}
