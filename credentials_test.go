package gwtransport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// recorded is one request as a recServer received it.
type recorded struct {
	Path, Query, Model string
	Header             http.Header
}

// reply is what a recServer does with one request.
type reply struct {
	status int               // 0 means 200
	header map[string]string // added to the response
	reset  bool              // drop the connection
}

// recServer is a provider that records every request exactly (no masking)
// and answers as its respond function says.
type recServer struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []recorded
	respond func(model string) reply
}

func newRecServer(t *testing.T, respond func(model string) reply) *recServer {
	t.Helper()
	s := &recServer{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &b)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{Path: r.URL.Path, Query: r.URL.RawQuery, Model: b.Model, Header: r.Header.Clone()})
		s.mu.Unlock()
		rep := reply{}
		if s.respond != nil {
			rep = s.respond(b.Model)
		}
		if rep.reset {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		for k, v := range rep.header {
			w.Header().Add(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		if rep.status != 0 && rep.status != 200 {
			w.WriteHeader(rep.status)
			fmt.Fprintf(w, `{"error":{"message":"down","type":"server_error","code":"down"}}`)
			return
		}
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`, b.Model)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recServer) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

// netHTTPHeaders are the headers net/http itself adds to a request.
var netHTTPHeaders = map[string]bool{"Content-Length": true, "Accept-Encoding": true, "User-Agent": true}

// headerNames returns the sorted names of h.
func headerNames(h http.Header) []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func postJSON(t *testing.T, hc *http.Client, u string, h http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestCrossProviderHeadersDenyByDefault: the caller's client carries the
// credentials of its own provider and of everything around it (an
// API-management subscription key, an observability vendor's key, a
// gateway key, cookies, under any spelling). The fallback provider receives
// exactly the allowlisted headers, its own key and its configured header;
// the caller's own provider receives everything but the gateway's
// preference header.
func TestCrossProviderHeadersDenyByDefault(t *testing.T) {
	a := newRecServer(t, func(string) reply { return reply{status: 503} })
	b := newRecServer(t, nil)
	caller := http.Header{
		"Authorization":             {"Bearer key-a"},
		"Api-Key":                   {"key-a-azure"},
		"Ocp-Apim-Subscription-Key": {"apim-secret"},
		"X-Honeycomb-Team":          {"honeycomb-secret"},
		"Dd-Api-Key":                {"datadog-secret"},
		"X-Gateway-Key":             {"gateway-secret"},
		"x-portkey-api-key":         {"portkey-secret"}, // not canonical: set by map assignment
		"Cookie":                    {"session=cookie-secret"},
		"Openai-Organization":       {"org-a"},
		"Baggage":                   {"user=alice"},
		"X-Tenant-Id":               {"tenant-7"},
		"X-My-Trace-Span":           {"span-9"},
		gwtransport.HeaderPrefer:    {"b/m"},
		// allowlisted
		"Content-Type":            {"application/json"},
		"Accept":                  {"application/json"},
		"accept-language":         {"fr"}, // not canonical
		"User-Agent":              {"my-app/1.0"},
		"Traceparent":             {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Tracestate":              {"congo=t61rcWkgMzE"},
		"X-B3-Traceid":            {"80f198ee56343ba864fe8b2a57d3eff7"},
		"X-Amzn-Trace-Id":         {"Root=1-5759e988-bd862e3fe1be46a994272793"},
		"X-Stainless-Lang":        {"go"},
		"x-stainless-retry-count": {"0"}, // not canonical
		"Idempotency-Key":         {"idem-1"},
		"Openai-Beta":             {"assistants=v2"},
	}
	for _, extend := range []bool{false, true} {
		t.Run(fmt.Sprintf("extended=%t", extend), func(t *testing.T) {
			a.reqs, b.reqs = nil, nil
			opts := []gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(0),
				gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL + "/v1", APIKey: "key-a"}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL + "/v1", APIKey: "key-b", Headers: map[string]string{"X-B-Conf": "b-conf"}}),
				gwtransport.WithClientProvider("pa")}
			if extend {
				opts = append(opts, gwtransport.WithForwardHeaders("x-tenant-id", "X-My-Trace-*"))
			}
			tr, err := gwtransport.NewTransport(nil, []string{"pa/ma", "pb/mb"}, opts...)
			require.NoError(t, err)
			res := postJSON(t, &http.Client{Transport: tr}, a.URL+"/v1/chat/completions", caller, `{"model":"gateway","messages":[]}`)
			require.Equal(t, 200, res.StatusCode)
			require.Equal(t, "pb/mb", res.Header.Get(gwtransport.HeaderTarget))

			ra, rb := a.requests(), b.requests()
			require.Len(t, ra, 1)
			require.Len(t, rb, 1)
			// The caller's own provider: everything but the preference.
			for k, v := range caller {
				if k == gwtransport.HeaderPrefer {
					assert.Empty(t, ra[0].Header.Values(k))
					continue
				}
				assert.Equal(t, v, ra[0].Header.Values(k), "own provider, %s", k)
			}
			// The other provider: exactly this.
			want := http.Header{
				"Authorization":           {"Bearer key-b"},
				"X-B-Conf":                {"b-conf"},
				"Content-Type":            {"application/json"},
				"Accept":                  {"application/json"},
				"Accept-Language":         {"fr"},
				"User-Agent":              {"my-app/1.0"},
				"Traceparent":             caller["Traceparent"],
				"Tracestate":              caller["Tracestate"],
				"X-B3-Traceid":            caller["X-B3-Traceid"],
				"X-Amzn-Trace-Id":         caller["X-Amzn-Trace-Id"],
				"X-Stainless-Lang":        {"go"},
				"X-Stainless-Retry-Count": {"0"},
				"Idempotency-Key":         {"idem-1"},
				"Openai-Beta":             {"assistants=v2"},
				"Content-Length":          rb[0].Header["Content-Length"],
				"Accept-Encoding":         {"gzip"},
			}
			if extend {
				want["X-Tenant-Id"] = []string{"tenant-7"}
				want["X-My-Trace-Span"] = []string{"span-9"}
			}
			assert.Equal(t, headerNames(want), headerNames(rb[0].Header))
			assert.Equal(t, want, rb[0].Header)
			assert.Empty(t, rb[0].Query)
		})
	}
}

// TestForwardHeadersOption: the default list is a copy nobody can change
// under the gateway, and names that would forward a credential are
// refused with an error naming them.
func TestForwardHeadersOption(t *testing.T) {
	d := gwtransport.DefaultForwardHeaders()
	require.Contains(t, d, "X-Stainless-*")
	d[0] = "Authorization"
	assert.NotContains(t, gwtransport.DefaultForwardHeaders(), "Authorization", "the default list is a fresh copy")

	hc := &http.Client{}
	conf := gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: "https://p.test/v1", APIKey: "k", Headers: map[string]string{"X-P-Token": "t"}})
	tests := []struct {
		name    string
		opts    []gwtransport.Option
		wantErr string
	}{
		{"Authorization", []gwtransport.Option{gwtransport.WithForwardHeaders("authorization")}, "covers Authorization"},
		{"api-key", []gwtransport.Option{gwtransport.WithForwardHeaders("api-key")}, "covers Api-Key"},
		{"cookie", []gwtransport.Option{gwtransport.WithForwardHeaders("Cookie")}, "covers Cookie"},
		{"prefix covering X-Api-Key", []gwtransport.Option{gwtransport.WithForwardHeaders("X-*")}, "covers X-Api-Key"},
		{"prefix covering Authorization", []gwtransport.Option{gwtransport.WithForwardHeaders("Auth*")}, "covers Authorization"},
		{"gateway header", []gwtransport.Option{gwtransport.WithForwardHeaders("X-Gwtransport-Prefer")}, "X-Gwtransport-"},
		{"framing", []gwtransport.Option{gwtransport.WithForwardHeaders("Content-Length")}, "covers Content-Length"},
		{"empty", []gwtransport.Option{gwtransport.WithForwardHeaders("")}, "empty name"},
		{"bare star", []gwtransport.Option{gwtransport.WithForwardHeaders("*")}, "empty name"},
		{"space", []gwtransport.Option{gwtransport.WithForwardHeaders("X Bad")}, "not a header name"},
		{"inner star", []gwtransport.Option{gwtransport.WithForwardHeaders("X-*-Y")}, "not a header name"},
		{"a provider's configured header", []gwtransport.Option{conf, gwtransport.WithForwardHeaders("x-p-token")}, `configured for provider p`},
		{"a prefix covering a configured header", []gwtransport.Option{conf, gwtransport.WithForwardHeaders("X-P-*")}, `covers X-P-Token`},
		{"inside a route", []gwtransport.Option{gwtransport.WithRoute("other", []string{"openai/a"}, gwtransport.WithForwardHeaders("X-Tenant"))}, `route "other": WithForwardHeaders applies to the whole gateway`},
		{"fine", []gwtransport.Option{gwtransport.WithForwardHeaders("X-Tenant", "X-Trace-*")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gwtransport.Init(hc, []string{"openai/gpt-4o"}, append([]gwtransport.Option{noEnv()}, tc.opts...)...)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.NotContains(t, err.Error(), `"t"`, "never the configured value")
		})
	}
}

// TestCrossProviderCookies: a provider other than the caller's never sets
// a cookie in the caller's jar, neither on success nor in a failure handed
// back; the caller's own provider still does. (Both servers are on
// 127.0.0.1: a cookie jar ignores ports, so a leaked cookie would be sent
// to the caller's provider next.)
func TestCrossProviderCookies(t *testing.T) {
	tests := []struct {
		name       string
		a, b       reply
		wantTarget string
		wantStatus int
		wantCookie []string // cookies in the jar for the caller's URL
	}{
		{"fallback succeeds", reply{status: 503, header: map[string]string{"Set-Cookie": "own=1; Path=/"}}, reply{header: map[string]string{"Set-Cookie": "other=1; Path=/", "Set-Cookie2": "other2=1"}}, "pb/mb", 200, nil},
		{"fallback's failure handed back", reply{status: 401, header: map[string]string{"Set-Cookie": "own=1; Path=/"}}, reply{status: 500, header: map[string]string{"Set-Cookie": "other=1; Path=/"}}, "pb/mb", 500, nil},
		{"own provider's cookie kept", reply{header: map[string]string{"Set-Cookie": "own=1; Path=/"}}, reply{header: map[string]string{"Set-Cookie": "other=1; Path=/"}}, "pa/ma", 200, []string{"own=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newRecServer(t, func(string) reply { return tc.a })
			b := newRecServer(t, func(string) reply { return tc.b })
			jar, err := cookiejar.New(nil)
			require.NoError(t, err)
			hc := &http.Client{Jar: jar}
			mustInit(t, hc, []string{"pa/ma", "pb/mb"}, noEnv(), gwtransport.WithMaxRetries(0), gwtransport.WithClientProvider("pa"),
				gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, APIKey: "key-a"}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, APIKey: "key-b"}))
			res := postJSON(t, hc, a.URL+"/chat/completions", nil, `{"model":"gateway","messages":[]}`)
			assert.Equal(t, tc.wantStatus, res.StatusCode)
			assert.Equal(t, tc.wantTarget, res.Header.Get(gwtransport.HeaderTarget))
			if tc.wantTarget == "pb/mb" {
				assert.Empty(t, res.Header.Values("Set-Cookie"))
				assert.Empty(t, res.Header.Values("Set-Cookie2"))
			}
			u, _ := url.Parse(a.URL)
			var got []string
			for _, c := range jar.Cookies(u) {
				got = append(got, c.String())
			}
			assert.Equal(t, tc.wantCookie, got)
			// The next request to the caller's provider carries no cookie
			// of the other provider's.
			postJSON(t, hc, a.URL+"/chat/completions", nil, `{"model":"pa/ma","messages":[]}`)
			ra := a.requests()
			assert.NotContains(t, ra[len(ra)-1].Header.Get("Cookie"), "other")
		})
	}
}

// logCapture is a slog handler writing every record, attributes included,
// to a buffer.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{c: c}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

type lockedWriter struct{ c *logCapture }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.buf.Write(p)
}

// TestQueryStringsNeverLeak: an openai-go client whose URL carries a
// secret query parameter (an Azure Functions "code", say) meets connection
// failures, which http.Client reports with the full URL. The secret
// appears in no attempt, no error, no reason header, no event and no log
// line; errors.As still reaches the *url.Error (redacted) and the
// *gwtransport.Error.
func TestQueryStringsNeverLeak(t *testing.T) {
	const secret = "qs-s3cret-42"
	for _, recover := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback_succeeds=%t", recover), func(t *testing.T) {
			a := server(t, "a", "")
			b := server(t, "b", "")
			a.SetFault(&gatewaytest.Fault{Reset: true})
			if !recover {
				b.SetFault(&gatewaytest.Fault{Reset: true})
			}
			logs := &logCapture{}
			var events []string
			var mu sync.Mutex
			client := openaiClient(a, "key-a", option.WithQuery("code", secret), option.WithMaxRetries(0))
			mustInit(t, client, []string{"openai/gpt-4o", "pb/m"}, noEnv(), gwtransport.WithMaxRetries(1), gwtransport.WithBackoff(gwtransport.Backoff{}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL + "?tenant=" + secret, Auth: gwtransport.AuthNone}),
				gwtransport.WithLogger(logs.logger()),
				gwtransport.WithOnEvent(func(e gwtransport.Event) {
					mu.Lock()
					defer mu.Unlock()
					if e.Attempt != nil {
						events = append(events, e.Attempt.String())
						if e.Attempt.Err != nil {
							events = append(events, e.Attempt.Err.Error(), fmt.Sprintf("%v %+v", e.Attempt.Err, e.Attempt.Err))
						}
					}
				}))
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			var raw *http.Response
			_, err := client.Chat.Completions.New(ctx, chatParams("gateway"), option.WithResponseInto(&raw))
			var texts []string
			if recover {
				require.NoError(t, err)
				reason := raw.Header.Get(gwtransport.HeaderFallbackReason)
				assert.Contains(t, reason, "openai/gpt-4o#1")
				assert.Contains(t, reason, "?REDACTED", "the URL is shown, its query is not")
				texts = append(texts, reason)
			} else {
				require.Error(t, err)
				var ge *gwtransport.Error
				require.ErrorAs(t, err, &ge)
				texts = append(texts, err.Error(), fmt.Sprintf("%v", ge))
				var oe *net.OpError
				require.ErrorAs(t, err, &oe, "errors.As still reaches the last cause")
			}
			at := trail.Attempts()
			require.GreaterOrEqual(t, len(at), 2)
			var sawURLError bool
			for _, x := range at {
				texts = append(texts, x.String())
				if x.Err != nil {
					texts = append(texts, x.Err.Error())
					var ue *url.Error
					if errors.As(x.Err, &ue) {
						sawURLError = true
						assert.Contains(t, ue.URL, "/chat/completions?REDACTED")
					}
				}
			}
			assert.True(t, sawURLError, "the own provider's failure went through http.Client, whose error names the URL")
			mu.Lock()
			texts = append(texts, events...)
			mu.Unlock()
			texts = append(texts, logs.String())
			require.NotEmpty(t, logs.String())
			for _, s := range texts {
				assert.NotContains(t, s, secret)
			}
		})
	}
}

// TestCrossProviderCookiesSameHost: an openai-go client with a cookie jar
// addresses one of two providers on the same host ("/v1"; the other is at
// "/"). The attempt at the other provider goes neither through the client's
// HTTP client nor its jar: it carries none of the caller's cookies, and its
// Set-Cookie lands nowhere.
func TestCrossProviderCookiesSameHost(t *testing.T) {
	s := newRecServer(t, func(model string) reply {
		if model == "m-v1" {
			return reply{status: 503, header: map[string]string{"Set-Cookie": "own=1; Path=/"}}
		}
		return reply{header: map[string]string{"Set-Cookie": "other=1; Path=/"}}
	})
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := openai.NewClient(option.WithBaseURL(s.URL+"/v1"), option.WithAPIKey("key-client"), option.WithHTTPClient(&http.Client{Jar: jar}), option.WithMaxRetries(0))
	mustInit(t, &c, []string{"v1/m-v1", "root/m-root"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "v1", BaseURL: s.URL + "/v1", APIKey: "key-v1"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "root", BaseURL: s.URL, APIKey: "key-root"}))
	var raw *http.Response
	_, err = c.Chat.Completions.New(context.Background(), chatParams("gateway"), option.WithResponseInto(&raw))
	require.NoError(t, err)
	assert.Equal(t, "root/m-root", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Empty(t, raw.Header.Values("Set-Cookie"))
	reqs := s.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/v1/chat/completions", reqs[0].Path)
	assert.Equal(t, []string{"Bearer key-client"}, reqs[0].Header.Values("Authorization"))
	assert.Equal(t, "/chat/completions", reqs[1].Path)
	assert.Equal(t, []string{"Bearer key-root"}, reqs[1].Header.Values("Authorization"))
	assert.Empty(t, reqs[1].Header.Values("Cookie"), "the client's jar never feeds another provider")
	u, _ := url.Parse(s.URL)
	for _, ck := range jar.Cookies(u) {
		assert.NotEqual(t, "other", ck.Name, "another provider's cookie in the client's jar")
	}
}
