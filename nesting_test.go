package gwtransport_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// nestedSend sends one chat request for "gateway" through a client chain in
// which two gwtransport layers sit one inside the other. It returns the
// X-Gwtransport-Attempts header of the answer and whether the call failed.
type nestedSend func(t *testing.T) (attempts string, failed bool)

// nestings builds every way two gwtransport layers can end up nested in
// one client chain, all with the same targets and options. Provider a is
// the caller's (the client's base URL).
func nestings(a, b *gatewaytest.Server) map[string]func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
	viaOpenAI := func(c *openai.Client) nestedSend {
		return func(t *testing.T) (string, bool) {
			_, raw, err := chat(t, c, "gateway")
			if raw == nil {
				return "", err != nil
			}
			return raw.Header.Get(gwtransport.HeaderAttempts), err != nil
		}
	}
	viaHTTP := func(hc *http.Client) nestedSend {
		return func(t *testing.T) (string, bool) {
			req, err := http.NewRequest(http.MethodPost, a.URL+"/chat/completions",
				strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer sk-a")
			res, err := hc.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.Header.Get(gwtransport.HeaderAttempts), res.StatusCode != http.StatusOK
		}
	}
	client := func(hc *http.Client) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(a.URL), option.WithAPIKey("sk-a"), option.WithHTTPClient(hc))
		return &c
	}
	newTransport := func(t *testing.T, base http.RoundTripper, targets []string, opts []gwtransport.Option) *gwtransport.Transport {
		tr, err := gwtransport.NewTransport(base, targets, opts...)
		require.NoError(t, err)
		return tr
	}
	return map[string]func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend{
		"Init([]any{&client, its http.Client})": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{}
			c := client(hc)
			mustInit(t, []any{c, hc}, targets, opts...)
			return viaOpenAI(c)
		},
		"Init([]any{its http.Client, &client})": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{}
			c := client(hc)
			mustInit(t, []any{hc, c}, targets, opts...)
			return viaOpenAI(c)
		},
		"Init(&client), then Init(its http.Client)": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{}
			c := client(hc)
			mustInit(t, c, targets, opts...)
			mustInit(t, hc, targets, opts...)
			return viaOpenAI(c)
		},
		"Init(its http.Client), then Init(&client)": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{}
			c := client(hc)
			mustInit(t, hc, targets, opts...)
			mustInit(t, c, targets, opts...)
			return viaOpenAI(c)
		},
		"Init(&client) over an http.Client whose Transport is NewTransport": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{Transport: newTransport(t, nil, targets, opts)}
			c := client(hc)
			mustInit(t, c, targets, opts...)
			return viaOpenAI(c)
		},
		"NewTransport over NewTransport": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			inner := newTransport(t, nil, targets, opts)
			return viaHTTP(&http.Client{Transport: newTransport(t, inner, targets, opts)})
		},
		"Init(http.Client whose Transport is NewTransport)": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{Transport: newTransport(t, nil, targets, opts)}
			mustInit(t, hc, targets, opts...)
			return viaHTTP(hc)
		},
		"Init(http.Client) twice": func(t *testing.T, targets []string, opts []gwtransport.Option) nestedSend {
			hc := &http.Client{}
			mustInit(t, hc, targets, opts...)
			mustInit(t, hc, targets, opts...)
			return viaHTTP(hc)
		},
	}
}

// TestNestedGatewayLayersRouteOnce: whatever way two gwtransport layers are
// nested in one client chain, a request is routed once, by the outermost:
// exactly the upstream requests the gateway alone makes, each carrying its
// target's model. The targets are chosen so that the first target's model
// ("b/m") is itself the name of the second target, which an inner layer
// would otherwise re-route to provider b.
func TestNestedGatewayLayersRouteOnce(t *testing.T) {
	targets := []string{"a/b/m", "b/m"}
	scenarios := []struct {
		name         string
		opts         []gwtransport.Option
		aFault       *gatewaytest.Fault
		wantA, wantB []string
		wantAttempts string
		wantFailed   bool
	}{
		{name: "no retries, every target fails", opts: []gwtransport.Option{gwtransport.WithMaxRetries(0)},
			aFault: &gatewaytest.Fault{Status: 503}, wantA: []string{"b/m"}, wantB: []string{"m"}, wantAttempts: "2", wantFailed: true},
		{name: "default retries, every target fails", aFault: &gatewaytest.Fault{Status: 503},
			wantA: []string{"b/m", "b/m", "b/m"}, wantB: []string{"m", "m", "m"}, wantAttempts: "6", wantFailed: true},
		{name: "first target answers", wantA: []string{"b/m"}, wantB: []string{}, wantAttempts: "1"},
	}
	for _, sc := range scenarios {
		for _, name := range []string{
			"Init([]any{&client, its http.Client})",
			"Init([]any{its http.Client, &client})",
			"Init(&client), then Init(its http.Client)",
			"Init(its http.Client), then Init(&client)",
			"Init(&client) over an http.Client whose Transport is NewTransport",
			"NewTransport over NewTransport",
			"Init(http.Client whose Transport is NewTransport)",
			"Init(http.Client) twice",
		} {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				a := server(t, "a", "sk-a")
				b := server(t, "b", "sk-b")
				a.SetFault(sc.aFault)
				b.SetFault(&gatewaytest.Fault{Status: 503})
				opts := append([]gwtransport.Option{provider("a", a, "sk-a"), provider("b", b, "sk-b"), noEnv(),
					gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxAttempts(20)}, sc.opts...)
				build, ok := nestings(a, b)[name]
				require.True(t, ok, name)
				send := build(t, targets, opts)
				attempts, failed := send(t)
				assert.Equal(t, sc.wantA, models(a.Journal()), "models reaching provider a")
				assert.Equal(t, sc.wantB, models(b.Journal()), "models reaching provider b")
				assert.Equal(t, sc.wantAttempts, attempts, gwtransport.HeaderAttempts)
				assert.Equal(t, sc.wantFailed, failed)
			})
		}
	}
	assert.Len(t, nestings(nil, nil), 8, "every nesting is in the table above")
}

// TestMaxRetryWaitZeroIsBoundedByMaxRest: a single wait before a retry is
// always bounded. WithMaxRetryWait(0) (max_retry_wait: 0s in a
// configuration) sets no cap of its own; WithMaxRest then bounds the wait,
// and a longer Retry-After fails over at once instead of sleeping.
func TestMaxRetryWaitZeroIsBoundedByMaxRest(t *testing.T) {
	cases := []struct {
		name         string
		opts         []gwtransport.Option
		retryAfter   string
		wantSleeps   []time.Duration
		wantA, wantB []string
	}{
		{name: "a year, default max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(0)},
			retryAfter: "31536000", wantA: []string{"m"}, wantB: []string{"m"}},
		{name: "just over the default max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(0)},
			retryAfter: "301", wantA: []string{"m"}, wantB: []string{"m"}},
		{name: "exactly the default max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(0)},
			retryAfter: "300", wantSleeps: []time.Duration{300 * time.Second}, wantA: []string{"m", "m"}, wantB: []string{}},
		{name: "under the default max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(0)},
			retryAfter: "120", wantSleeps: []time.Duration{120 * time.Second}, wantA: []string{"m", "m"}, wantB: []string{}},
		{name: "over a smaller max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(0), gwtransport.WithMaxRest(time.Minute)},
			retryAfter: "120", wantA: []string{"m"}, wantB: []string{"m"}},
		{name: "a max retry wait of its own still caps below max rest", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(90 * time.Second)},
			retryAfter: "120", wantA: []string{"m"}, wantB: []string{"m"}},
		{name: "a max retry wait above max rest is its own cap", opts: []gwtransport.Option{gwtransport.WithMaxRetryWait(time.Hour)},
			retryAfter: "600", wantSleeps: []time.Duration{600 * time.Second}, wantA: []string{"m", "m"}, wantB: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := server(t, "a", "sk-a")
			b := server(t, "b", "sk-b")
			a.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": tc.retryAfter}})
			c := openaiClient(a, "sk-a")
			clock := newFakeClock()
			mustInit(t, c, []string{"a/m", "b/m"}, append([]gwtransport.Option{provider("a", a, "sk-a"), provider("b", b, "sk-b"),
				noEnv(), gwtransport.WithClock(clock)}, tc.opts...)...)
			_, err := c.Chat.Completions.New(context.Background(), chatParams("gateway"))
			require.NoError(t, err)
			assert.Equal(t, tc.wantSleeps, clock.Sleeps())
			assert.Equal(t, tc.wantA, models(a.Journal()))
			assert.Equal(t, tc.wantB, models(b.Journal()))
		})
	}
}

// TestMaxRetryWaitZeroInConfig: the configuration's max_retry_wait: 0s is
// the same bounded wait.
func TestMaxRetryWaitZeroInConfig(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	a.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "31536000"}})
	cfg, err := gwtransport.LoadConfig([]byte(`route: gateway
models: [{target: a/m}, {target: b/m}]
defaults: {max_retry_wait: 0s}
providers:
  - {name: a, base_url_env: A_URL, api_key_env: A_KEY}
  - {name: b, base_url_env: B_URL, api_key_env: B_KEY}
`))
	require.NoError(t, err)
	c := openaiClient(a, "sk-a")
	clock := newFakeClock()
	mustInit(t, c, gwtransport.FromConfig, gwtransport.WithConfig(cfg), gwtransport.WithClock(clock),
		envOf(map[string]string{"A_URL": a.URL, "A_KEY": "sk-a", "B_URL": b.URL, "B_KEY": "sk-b"}))
	_, err = c.Chat.Completions.New(context.Background(), chatParams("gateway"))
	require.NoError(t, err)
	assert.Empty(t, clock.Sleeps())
	assert.Equal(t, []string{"m"}, models(a.Journal()))
	assert.Equal(t, []string{"m"}, models(b.Journal()))
}

// TestCaseVariantModelKeysRewritten: every top-level member whose name is
// "model" in any case (Go's encoding/json, used by Go providers, matches
// names case-insensitively) is rewritten with the exact "model", so no
// provider, whatever its decoder, serves a model other than the target's.
// The exact "model" alone decides interception.
func TestCaseVariantModelKeysRewritten(t *testing.T) {
	cases := []struct {
		name, body string
		// wantBody is the exact body the provider receives.
		wantBody    string
		intercepted bool
	}{
		{"Model after model", `{"model":"gateway","Model":"other-model","messages":[]}`,
			`{"model":"m","Model":"m","messages":[]}`, true},
		{"MODEL before model", `{"MODEL":"other-model","model":"gateway","messages":[]}`,
			`{"MODEL":"m","model":"m","messages":[]}`, true},
		{"mixed case, three of them", `{"mOdEl":1,"model":"gateway","moDEL":{"x":["y"]},"messages":[]}`,
			`{"mOdEl":"m","model":"m","moDEL":"m","messages":[]}`, true},
		{"escaped variant", `{"model":"gateway","MOD\u0045L":"other-model","messages":[]}`,
			`{"model":"m","MOD\u0045L":"m","messages":[]}`, true},
		{"variant null", `{"model":"gateway","Model":null}`, `{"model":"m","Model":"m"}`, true},
		{"nested variants are not top-level", `{"model":"gateway","metadata":{"Model":"x"}}`,
			`{"model":"m","metadata":{"Model":"x"}}`, true},
		{"longer and shorter names are not variants", `{"model":"gateway","Models":"x","Mode":"y","modeI":"z"}`,
			`{"model":"m","Models":"x","Mode":"y","modeI":"z"}`, true},
		// Interception is decided by the exact "model", the last one.
		{"Model alone is not intercepted", `{"Model":"gateway","messages":[]}`,
			`{"Model":"gateway","messages":[]}`, false},
		{"model not a route, Model a route: passed through", `{"model":"other","Model":"gateway"}`,
			`{"model":"other","Model":"gateway"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newBodyRecorder(t)
			hc := &http.Client{}
			mustInit(t, hc, []string{"p/m"}, gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: p.URL, APIKey: "sk-p"}), noEnv())
			res, err := hc.Post(p.URL+"/chat/completions", "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			res.Body.Close()
			p.mu.Lock()
			defer p.mu.Unlock()
			require.Len(t, p.bodies, 1)
			assert.Equal(t, tc.wantBody, p.bodies[0])
			if !tc.intercepted {
				return
			}
			var goProvider struct {
				Model any `json:"model"`
			}
			require.NoError(t, json.Unmarshal([]byte(p.bodies[0]), &goProvider))
			var exact map[string]any
			require.NoError(t, json.Unmarshal([]byte(p.bodies[0]), &exact))
			assert.Equal(t, exact["model"], goProvider.Model, "a case-insensitive decoder sees the exact model")
		})
	}
}

// bodyRecorder is a provider that records every body exactly and answers
// 200 with a chat completion.
type bodyRecorder struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newBodyRecorder(t *testing.T) *bodyRecorder {
	t.Helper()
	h := &bodyRecorder{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(h.Close)
	return h
}
