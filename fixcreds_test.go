package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

const fixChatBody = `{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`

// postChat sends a chat request with the given headers through hc and
// drains the response.
func postChat(t *testing.T, hc *http.Client, u string, h map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(fixChatBody))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header[k] = []string{v} // as written: no canonicalisation
	}
	res, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// A provider's configured key (and configured headers) go only to that
// provider's base URL. A request whose origin is merely inferred (the
// client provider by default, or an Azure-shaped URL on another host, as
// behind an API-management front door) is sent to the caller's URL with
// the caller's headers as they are and no key added. The last rows are the
// control: a keyless request to the provider's own base URL gets its key.
func TestOwnKeyNeverSentToAnUnmatchedHost(t *testing.T) {
	azureEnv := map[string]string{
		"AZURE_OPENAI_ENDPOINT": "https://myres.openai.azure.com",
		"AZURE_OPENAI_API_KEY":  "AZURE-REAL-KEY",
		"OPENAI_API_VERSION":    "2024-10-21",
	}
	const azPath = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	cases := []struct {
		name    string
		targets []string
		opts    func(u string) []gwtransport.Option
		path    string
		header  map[string]string
		// want are the credential headers the host received, exactly.
		wantAuth, wantAPIKey, wantExtra string
	}{
		{"client provider by default", []string{"openai/gpt-4o"},
			func(string) []gwtransport.Option {
				return []gwtransport.Option{envOf(map[string]string{"OPENAI_API_KEY": "sk-REAL-OPENAI-KEY"})}
			}, "/v1/chat/completions", nil, "", "", ""},
		{"client provider with configured headers", []string{"openai/gpt-4o"},
			func(string) []gwtransport.Option {
				return []gwtransport.Option{noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "openai",
					APIKey: "sk-REAL-OPENAI-KEY", Headers: map[string]string{"X-Extra-Secret": "EXTRA-SECRET"}})}
			}, "/v1/chat/completions", nil, "", "", ""},
		{"caller's own key kept", []string{"openai/gpt-4o"},
			func(string) []gwtransport.Option {
				return []gwtransport.Option{envOf(map[string]string{"OPENAI_API_KEY": "sk-REAL-OPENAI-KEY"})}
			}, "/v1/chat/completions", map[string]string{"Authorization": "Bearer sk-CALLER"}, "Bearer sk-CALLER", "", ""},
		{"azure shape on another host", []string{"azure/gpt-4o"},
			func(string) []gwtransport.Option { return []gwtransport.Option{envOf(azureEnv)} },
			azPath, nil, "", "", ""},
		{"azure behind API management", []string{"azure/gpt-4o"},
			func(string) []gwtransport.Option { return []gwtransport.Option{envOf(azureEnv)} },
			azPath, map[string]string{"Ocp-Apim-Subscription-Key": "apim-sub-key"}, "", "", ""},
		{"azure v1 shape with api-version", []string{"azure/gpt-4o"},
			func(string) []gwtransport.Option { return []gwtransport.Option{envOf(azureEnv)} },
			"/openai/v1/chat/completions?api-version=preview", nil, "", "", ""},
		{"control: matched base URL gets the key", []string{"p/m"},
			func(u string) []gwtransport.Option {
				return []gwtransport.Option{noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: u + "/v1",
					APIKey: "sk-P", Headers: map[string]string{"X-Extra-Secret": "EXTRA-SECRET"}})}
			}, "/v1/chat/completions", nil, "Bearer sk-P", "", "EXTRA-SECRET"},
		{"control: matched azure base URL gets the key", []string{"azure/gpt-4o"},
			func(u string) []gwtransport.Option {
				return []gwtransport.Option{envOf(map[string]string{"AZURE_OPENAI_ENDPOINT": u, "AZURE_OPENAI_API_KEY": "AZURE-REAL-KEY"})}
			}, azPath, nil, "", "AZURE-REAL-KEY", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newRecServer(t, nil)
			hc := &http.Client{}
			mustInit(t, hc, tc.targets, tc.opts(h.URL)...)
			res := postChat(t, hc, h.URL+tc.path, tc.header)
			require.Equal(t, 200, res.StatusCode)
			h.mu.Lock()
			defer h.mu.Unlock()
			require.Len(t, h.reqs, 1)
			got := h.reqs[0].Header
			assert.Equal(t, tc.wantAuth, got.Get("Authorization"))
			assert.Equal(t, tc.wantAPIKey, got.Get("Api-Key"))
			assert.Equal(t, tc.wantExtra, got.Get("X-Extra-Secret"))
			for k, v := range tc.header {
				assert.Equal(t, v, got.Get(k), "the caller's header %s is kept", k)
			}
		})
	}
}

// Init refuses a key or configured header value that no HTTP header can
// carry (a trailing newline from a key file), naming the provider and the
// source, never the value.
func TestKeyNoHeaderCanCarryRefusedAtInit(t *testing.T) {
	const bad = "sk-VALUE-SECRET\n"
	env := envOf(map[string]string{"B_KEY": bad, "B_HDR": "v\r\nInjected: 1"})
	cases := []struct {
		name string
		p    gwtransport.Provider
		want string
	}{
		{"APIKey", gwtransport.Provider{APIKey: bad},
			`gwtransport: provider "b": the API key from APIKey contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"APIKeyEnv", gwtransport.Provider{APIKeyEnv: "B_KEY"},
			`gwtransport: provider "b": the API key from environment variable B_KEY contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"APIKeys", gwtransport.Provider{APIKey: "sk-ok", APIKeys: []string{"sk-ok2", "sk-\x00x"}},
			`gwtransport: provider "b": the API key from APIKeys[1] contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"APIKeysEnv", gwtransport.Provider{APIKey: "sk-ok", APIKeysEnv: []string{"B_KEY"}},
			`gwtransport: provider "b": the API key from environment variable B_KEY contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"Headers", gwtransport.Provider{APIKey: "sk-ok", Headers: map[string]string{"X-Org": bad}},
			`gwtransport: provider "b": the value of header "X-Org" from Headers["X-Org"] contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"HeadersEnv", gwtransport.Provider{APIKey: "sk-ok", HeadersEnv: map[string]string{"X-Org": "B_HDR"}},
			`gwtransport: provider "b": the value of header "X-Org" from environment variable B_HDR contains a character no HTTP header can carry (a control character such as a trailing newline)`},
		{"header name", gwtransport.Provider{APIKey: "sk-ok", Headers: map[string]string{"X Org": "v"}},
			`gwtransport: provider "b": a configured header name is not a valid HTTP header name (a token: no spaces, no colon)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Name, tc.p.BaseURL = "b", "https://b.test/v1"
			_, err := gwtransport.NewTransport(nil, []string{"b/m"}, gwtransport.WithProvider(tc.p), env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "VALUE-SECRET")
			assert.NotContains(t, err.Error(), "Injected")
		})
	}
	// A tab is a valid header character: accepted.
	_, err := gwtransport.NewTransport(nil, []string{"b/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: "https://b.test/v1", APIKey: "sk\tok"}))
	require.NoError(t, err)
}

// A request net/http refuses to send (a caller's header that crosses with
// a control character in its value) fails before anything reaches the
// target: it is not retried there and is not the target's availability
// failure (its breaker stays closed, its failure count 0).
func TestUnsendableAttemptIsNotTheTargetsFailure(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	hc := &http.Client{}
	m := mustInit(t, hc, []string{"a/m", "b/m"}, provider("a", a, "sk-a"), provider("b", b, "sk-b"), noEnv(),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(2))
	for i := 0; i < 6; i++ {
		req, err := http.NewRequestWithContext(context.Background(), "POST", a.URL+"/chat/completions", strings.NewReader(fixChatBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-a")
		req.Header["User-Agent"] = []string{"bad\nagent"}
		ctx, trail := gwtransport.ContextWithTrail(req.Context())
		res, err := hc.Do(req.WithContext(ctx))
		if res != nil {
			res.Body.Close()
		}
		require.Error(t, err)
		at := trail.Attempts()
		require.Len(t, at, 2, "one attempt per target, no retry of what cannot be sent")
		assert.Equal(t, []string{"a/m", "b/m"}, []string{at[0].Target, at[1].Target})
		for _, x := range at {
			assert.Equal(t, gwtransport.NextTarget, x.Action)
			assert.Zero(t, x.Status)
		}
	}
	assert.Zero(t, a.Count())
	assert.Zero(t, b.Count())
	for _, s := range m.Stats() {
		assert.Zero(t, s.Failures, s.Target)
		assert.Equal(t, gwtransport.BreakerClosed, s.Breaker, s.Target)
	}
}

// A per-call middleware wraps the attempt's *url.Error with %w, as logging
// middlewares do: no error reachable from Attempt.Err shows the query,
// and errors.As still finds a *url.Error (the redacted copy).
func TestQueryNotReachableThroughErrorsAs(t *testing.T) {
	const secret = "qs-S3CRET-99"
	a := server(t, "a", "")
	b := server(t, "b", "")
	a.SetFault(&gatewaytest.Fault{Reset: true})
	client := openaiClient(a, "key-a", option.WithQuery("code", secret))
	mustInit(t, client, []string{"openai/gpt-4o", "pb/m"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, Auth: gwtransport.AuthNone}))
	for _, wrap := range []func(error) error{
		func(err error) error { return fmt.Errorf("logging middleware: %w", err) },
		func(err error) error { return errors.Join(errors.New("joined"), fmt.Errorf("mw: %w", err)) },
		func(err error) error { return fmt.Errorf("two: %w and %w", err, io.EOF) },
	} {
		mw := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			res, err := next(r)
			if err != nil {
				err = wrap(err)
			}
			return res, err
		})
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		_, err := client.Chat.Completions.New(ctx, chatParams("gateway"), mw)
		require.NoError(t, err)
		at := trail.Attempts()
		require.Len(t, at, 2)
		require.Error(t, at[0].Err)
		walkErrors(at[0].Err, func(e error) {
			assert.NotContains(t, e.Error(), secret)
			if ue, ok := e.(*url.Error); ok {
				assert.NotContains(t, ue.URL, secret)
			}
		})
		var ue *url.Error
		require.True(t, errors.As(at[0].Err, &ue))
		assert.Equal(t, a.URL+"/chat/completions?REDACTED", ue.URL)
	}
}

// walkErrors calls f on every error reachable from err.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch w := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(w.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range w.Unwrap() {
			walkErrors(e, f)
		}
	}
}

// No error about a provider's fields repeats what was written in them: a
// careless user may put a key in any of them. The field path and the
// allowed values are named.
func TestProviderFieldValuesNeverEchoed(t *testing.T) {
	const s = "sk-proj-SECRETSECRET"
	p := "gwtransport: config: "
	for _, tc := range []struct{ field, want string }{
		{"auth: " + s, p + "providers[0].auth: unknown auth scheme (want bearer, api-key or none)"},
		{"style: " + s, p + "providers[0].style: unknown URL style (want openai, azure or azure-v1)"},
		{"key_interval: " + s, p + "providers[0].key_interval: not a duration: want a duration like 500ms or 1m30s"},
		{"base_url: " + s, p + "providers[0].base_url: must be an absolute URL, like https://host/v1"},
	} {
		_, err := gwtransport.LoadConfig([]byte("models: [{target: p/m}]\nproviders:\n  - name: p\n    " + tc.field + "\n"))
		require.Error(t, err, tc.field)
		assert.Equal(t, tc.want, err.Error())
	}
	_, err := gwtransport.LoadConfig([]byte("models: [{target: p/m}]\nproviders:\n  - name: p/" + s + "\n"))
	require.EqualError(t, err, p+"providers[0].name: must not contain a slash: targets are <provider>/<model>")
	for _, tc := range []struct {
		p    gwtransport.Provider
		want string
	}{
		{gwtransport.Provider{Auth: s}, `gwtransport: provider "p": unknown auth scheme (want bearer, api-key or none)`},
		{gwtransport.Provider{Style: s}, `gwtransport: provider "p": unknown URL style (want openai, azure or azure-v1)`},
	} {
		tc.p.Name, tc.p.BaseURL, tc.p.APIKey = "p", "https://p.test/v1", "k"
		_, err := gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithProvider(tc.p))
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "SECRET")
	}
}

// The preference header is the gateway's in every spelling of its name:
// it is honoured and never reaches a provider, whether the request is
// intercepted (own provider or another) or passed through.
func TestPreferHeaderInAnySpellingNeverReachesAProvider(t *testing.T) {
	for _, name := range []string{gwtransport.HeaderPrefer, "x-gwtransport-prefer", "X-GWTRANSPORT-PREFER", "x-Gwtransport-prefer"} {
		for _, tc := range []struct {
			name, model, prefer string
			wantP, wantQ        int
		}{
			{"own provider", "gateway", "p/m", 1, 0},
			{"other provider", "gateway", "q/m", 0, 1},
			{"passed through", "not-a-route", "q/m", 1, 0},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				p := newRecServer(t, nil)
				q := newRecServer(t, nil)
				hc := &http.Client{}
				mustInit(t, hc, []string{"p/m", "q/m"}, noEnv(),
					gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: p.URL + "/v1", APIKey: "sk-p"}),
					gwtransport.WithProvider(gwtransport.Provider{Name: "q", BaseURL: q.URL + "/v1", APIKey: "sk-q"}))
				req, err := http.NewRequest("POST", p.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"`+tc.model+`","messages":[]}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer sk-p")
				req.Header[name] = []string{tc.prefer}
				res, err := hc.Do(req)
				require.NoError(t, err)
				res.Body.Close()
				assert.Equal(t, []string{tc.prefer}, req.Header[name], "the caller's request is not modified")
				for _, s := range []*recServer{p, q} {
					s.mu.Lock()
					for _, r := range s.reqs {
						for k := range r.Header {
							assert.False(t, strings.EqualFold(k, gwtransport.HeaderPrefer), "%s reached a provider", k)
						}
					}
					s.mu.Unlock()
				}
				p.mu.Lock()
				q.mu.Lock()
				defer p.mu.Unlock()
				defer q.mu.Unlock()
				assert.Len(t, p.reqs, tc.wantP)
				assert.Len(t, q.reqs, tc.wantQ)
			})
		}
	}
}

// go-openai's Azure config puts the request's model in the deployment
// path as is: a target name ("b/gpt-4o") makes a deployment of two
// segments. The operation is the known one at the end, so the fallback to
// b goes to b's chat/completions.
func TestGoOpenAIAzureTargetAsModelRoutesToTheOperation(t *testing.T) {
	az := server(t, "az", "az-key")
	b := server(t, "b", "sk-b")
	az.SetFault(&gatewaytest.Fault{Status: 503})
	hc := &http.Client{}
	tr, err := gwtransport.NewTransport(nil, []string{"azure/gpt-4o", "b/gpt-4o"},
		provider("b", b, "sk-b"), noEnv(), gwtransport.WithMaxRetries(0))
	require.NoError(t, err)
	hc.Transport = tr
	cfg := goopenai.DefaultAzureConfig("az-key", az.URL)
	cfg.HTTPClient = hc
	c := goopenai.NewClientWithConfig(cfg)
	_, err = c.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model: "b/gpt-4o", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
	})
	require.NoError(t, err)
	require.Len(t, b.Journal(), 1)
	assert.Equal(t, "/v1/chat/completions", b.Journal()[0].Path)
	assert.Equal(t, "gpt-4o", b.Journal()[0].Model)
}

// Every spelling of a provider's base URL is that provider's: the
// attempt at it is the caller's own, with the caller's key, not the
// configured one.
func TestOriginSpellingsKeepTheCallersKey(t *testing.T) {
	p := newRecServer(t, nil)
	host := strings.TrimPrefix(p.URL, "http://")
	port := strings.TrimPrefix(host, "127.0.0.1")
	cases := []struct{ name, base, reqURL, wantPath string }{
		{"upper scheme+trailing slash", "HTTP://" + host + "/v1/", p.URL + "/v1/chat/completions", "/v1/chat/completions"},
		{"request trailing slash", "http://" + host + "/v1", p.URL + "/v1/chat/completions/", "/v1/chat/completions"},
		{"upper host", "http://localhost" + port + "/v1", "http://LOCALHOST" + port + "/v1/chat/completions", "/v1/chat/completions"},
		{"trailing dot host", "http://localhost" + port + "/v1", "http://localhost." + port + "/v1/chat/completions", "/v1/chat/completions"},
		{"trailing dot base", "http://localhost." + port + "/v1", "http://localhost" + port + "/v1/chat/completions", "/v1/chat/completions"},
		{"double slash", "http://" + host + "/v1", p.URL + "/v1//chat/completions", "/v1//chat/completions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every host name dials p: "localhost." need not resolve here.
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, host)
				}}}
			mustInit(t, hc, []string{"p/m"}, noEnv(),
				gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: tc.base, APIKey: "sk-CONFIGURED"}))
			p.mu.Lock()
			p.reqs = nil
			p.mu.Unlock()
			res := postChat(t, hc, tc.reqURL, map[string]string{"Authorization": "Bearer sk-CALLER"})
			require.Equal(t, 200, res.StatusCode)
			p.mu.Lock()
			defer p.mu.Unlock()
			require.Len(t, p.reqs, 1)
			assert.Equal(t, "Bearer sk-CALLER", p.reqs[0].Header.Get("Authorization"))
			assert.Equal(t, tc.wantPath, p.reqs[0].Path)
			assert.Equal(t, "m", p.reqs[0].Model)
		})
	}
}
