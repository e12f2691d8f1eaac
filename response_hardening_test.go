package gwtransport_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// This file attacks what the gateway hands back to the caller when a
// provider is hostile: a final answer with no response to keep, a body
// that is a raw connection, another provider's trailers, forged gateway
// headers, secrets echoed in error codes, error bodies too large to keep.

// okChat is a complete non-streamed chat completion.
const okChat = `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"OK"},"finish_reason":"stop"}]}`

// hostileFallback is a well-behaved fallback provider "fb" answering "OK",
// streamed or not; hits counts its requests.
func hostileFallback(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, ev(c0)+ev(c0stop)+done)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, okChat)
	}))
	t.Cleanup(fb.Close)
	return fb, &hits
}

func fbProvider(fb *httptest.Server, key string) gwtransport.Option {
	return gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fb.URL, APIKey: key})
}

// postChatVia sends body to url through tr with the caller's key.
func postChatVia(t *testing.T, tr http.RoundTripper, url, body, key string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	return res, got, err
}

// TestStreamStartRefusalIsHandedOver: a stream whose first event is a
// content-policy refusal is final (no other target is tried) and the
// caller gets the provider's own bytes, up to the error event: openai-go
// reads the provider's error from them. It used to panic (no response was
// kept for a fail-fast answer).
func TestStreamStartRefusalIsHandedOver(t *testing.T) {
	for name, first := range map[string]string{
		"error object":    ev(`{"error":{"message":"filtered","type":"invalid_request_error","code":"content_filter"}}`),
		"error event":     named("error", `{"code":"content_policy_violation","message":"no"}`),
		"response.failed": named("response.failed", `{"type":"response.failed","response":{"status":"failed","error":{"code":"content_filter","message":"no"}}}`),
	} {
		t.Run(name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, ": keep-alive\n\n"+first)
			}))
			defer prim.Close()
			fb, hits := hostileFallback(t)
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, "key-fb"))
			require.NoError(t, err)
			var res *http.Response
			var got []byte
			require.NotPanics(t, func() { res, got, err = postChatVia(t, tr, prim.URL, chatBody, "key-p") })
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, ": keep-alive\n\n"+first, string(got))
			assert.Equal(t, strconv.Itoa(len(got)), res.Header.Get("Content-Length"))
			assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
			assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
			assert.Zero(t, hits.Load(), "a content-policy refusal is final")
		})
	}
	t.Run("openai-go", func(t *testing.T) {
		prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, ev(`{"error":{"message":"filtered by policy","type":"invalid_request_error","code":"content_filter"}}`))
		}))
		defer prim.Close()
		fb, hits := hostileFallback(t)
		c := openai.NewClient(option.WithBaseURL(prim.URL), option.WithAPIKey("key-p"), option.WithHTTPClient(&http.Client{}))
		mustInit(t, &c, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, "key-fb"))
		var text string
		var err error
		require.NotPanics(t, func() { text, _, err = streamChat(t, context.Background(), &c, "gateway") })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "filtered by policy")
		assert.Empty(t, text)
		assert.Zero(t, hits.Load())
	})
}

// TestFailFastWithoutResponseEndsWithAttempts: a policy that fails fast on
// an outcome with no response to hand over (a connection reset) ends the
// request with the attempts, never a panic, and tries nothing else.
func TestFailFastWithoutResponseEndsWithAttempts(t *testing.T) {
	prim := httptest.NewServer(http.NotFoundHandler())
	url := prim.URL
	prim.Close() // connection refused
	fb, hits := hostileFallback(t)
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, "key-fb"),
		gwtransport.WithPolicy(func(o gwtransport.Outcome) gwtransport.Action {
			if o.Status == 0 {
				return gwtransport.FailFast
			}
			return gwtransport.DefaultPolicy(o)
		}))
	require.NoError(t, err)
	require.NotPanics(t, func() { _, _, err = postChatVia(t, tr, url, `{"model":"gateway","messages":[]}`, "key-p") })
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	require.Len(t, gerr.Attempts, 1)
	assert.Equal(t, "openai/gpt-4o", gerr.Attempts[0].Target)
	assert.Equal(t, gwtransport.FailFast, gerr.Attempts[0].Action)
	assert.Zero(t, hits.Load())
}

// TestUnsolicited101FailsOver: a provider that answers a POST with 101
// Switching Protocols and then stays silent holds the connection as the
// response body, which no deadline ends. The gateway never reads it: the
// target fails over at once.
func TestUnsolicited101FailsOver(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n")
		buf.Flush()
		<-release
	}))
	defer prim.Close()
	defer stop()
	fb, hits := hostileFallback(t)
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, "key-fb"))
	require.NoError(t, err)
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, prim.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err, "the request must not hang on the 101's body")
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.JSONEq(t, okChat, string(got))
	assert.Equal(t, "fb/m", res.Header.Get(gwtransport.HeaderTarget))
	assert.EqualValues(t, 1, hits.Load())
	as := trail.Attempts()
	require.Len(t, as, 2)
	assert.Equal(t, http.StatusSwitchingProtocols, as[0].Status)
	assert.Equal(t, gwtransport.NextTarget, as[0].Action)
}

// TestCrossProviderTrailersDropped: another provider's trailers (a
// Set-Cookie among them) never reach the caller, on a success, streamed or
// not, and on a failure handed back; the caller's own provider keeps its
// trailers.
func TestCrossProviderTrailersDropped(t *testing.T) {
	trailerServer := func(status int, stream bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Set-Cookie, Set-Cookie2, X-Checksum")
			if stream {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(status)
				io.WriteString(w, ev(c0)+ev(c0stop)+done)
			} else {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				if status == http.StatusOK {
					io.WriteString(w, okChat)
				} else {
					io.WriteString(w, `{"error":{"message":"down","type":"server_error"}}`)
				}
			}
			w.Header().Set("Set-Cookie", "session=evil; Path=/")
			w.Header().Set("Set-Cookie2", "s2=evil")
			w.Header().Set("X-Checksum", "abc")
		}))
	}
	for _, c := range []struct {
		name   string
		status int
		stream bool
	}{{"success", 200, false}, {"stream", 200, true}, {"failure handed back", 503, false}} {
		t.Run(c.name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(failing503))
			defer prim.Close()
			fb := trailerServer(c.status, c.stream)
			defer fb.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
				gwtransport.WithMaxRetries(0), fbProvider(fb, "key-fb"))
			require.NoError(t, err)
			body := `{"model":"gateway","messages":[]}`
			if c.stream {
				body = chatBody
			}
			res, _, err := postChatVia(t, tr, prim.URL, body, "key-p")
			require.NoError(t, err)
			require.Equal(t, c.status, res.StatusCode)
			require.Equal(t, "fb/m", res.Header.Get(gwtransport.HeaderTarget))
			assert.Empty(t, res.Header.Values("Set-Cookie"))
			assert.Empty(t, res.Trailer, "another provider's trailers reached the caller")
		})
	}
	t.Run("own provider keeps its trailers", func(t *testing.T) {
		prim := trailerServer(200, false)
		defer prim.Close()
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
		require.NoError(t, err)
		res, _, err := postChatVia(t, tr, prim.URL, `{"model":"gateway","messages":[]}`, "key-p")
		require.NoError(t, err)
		assert.Equal(t, "abc", res.Trailer.Get("X-Checksum"))
	})
}

// TestProviderCannotForgeGatewayHeaders: a provider's own X-Gwtransport-*
// headers, in any spelling, never reach the caller: on a first-try success
// the caller is told of exactly one attempt and no failure.
func TestProviderCannotForgeGatewayHeaders(t *testing.T) {
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(gwtransport.HeaderFallbackReason, "fb/m#1 401 invalid_api_key")
		w.Header()["x-gwtransport-attempts"] = []string{"7"}
		w.Header().Set("X-Gwtransport-Anything", "forged")
		io.WriteString(w, okChat)
	}))
	defer prim.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
	require.NoError(t, err)
	res, _, err := postChatVia(t, tr, prim.URL, `{"model":"gateway","messages":[]}`, "key-p")
	require.NoError(t, err)
	var gw []string
	for k, v := range res.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-gwtransport-") {
			gw = append(gw, k+"="+strings.Join(v, ","))
		}
	}
	assert.ElementsMatch(t, []string{gwtransport.HeaderTarget + "=openai/gpt-4o", gwtransport.HeaderAttempts + "=1"}, gw)
}

// TestEchoedSecretsMasked: providers that echo the key they were sent (or
// another provider's key, or the caller's) in their error code: no key
// reaches the reason header, the trail, Error() or the log.
func TestEchoedSecretsMasked(t *testing.T) {
	const fbKey, callerKey, poolKey = "sk-fb-SECRET-0123456789", "sk-caller-SECRET-987654", "sk-pool-SECRET-55555"
	echo := func(status int, code func(r *http.Request) string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"bad key","type":"invalid_request_error","code":%q}}`, code(r))
		}))
	}
	prim := echo(503, func(r *http.Request) string { return "you sent " + r.Header.Get("Authorization") })
	defer prim.Close()
	fb := echo(401, func(r *http.Request) string { return r.Header.Get("Authorization") + " and " + poolKey })
	defer fb.Close()
	var logs strings.Builder
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fb.URL, APIKey: fbKey}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pool", BaseURL: "https://pool.example/v1", APIKeys: []string{poolKey}}))
	require.NoError(t, err)
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, prim.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+callerKey)
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	reason := res.Header.Get(gwtransport.HeaderFallbackReason)
	assert.Equal(t, "openai/gpt-4o#1 503 you sent [REDACTED]; fb/m#1 401 Bearer [REDACTED] and [REDACTED]", reason)
	var all strings.Builder
	all.WriteString(reason + logs.String())
	for _, a := range trail.Attempts() {
		all.WriteString(a.String() + a.Code)
	}
	for _, k := range []string{fbKey, callerKey, poolKey} {
		assert.NotContains(t, all.String(), k)
	}
}

// TestLargeErrorBodyMarkedTruncated: an error body longer than the gateway
// keeps (1 MiB) is handed back cut, and says so: the caller is never given
// a cut body as if it were whole.
func TestLargeErrorBodyMarkedTruncated(t *testing.T) {
	big := `{"error":{"message":"` + strings.Repeat("x", 2<<20) + `","type":"invalid_request_error","code":"bad"}}`
	for _, c := range []struct {
		name string
		body string
		cut  bool
	}{{"over the bound", big, true}, {"exactly the bound", big[:1<<20], false}, {"small", `{"error":{"message":"no"}}`, false}} {
		t.Run(c.name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				io.WriteString(w, c.body)
			}))
			defer prim.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
			require.NoError(t, err)
			res, got, err := postChatVia(t, tr, prim.URL, `{"model":"gateway","messages":[]}`, "key-p")
			require.NoError(t, err)
			assert.Equal(t, 400, res.StatusCode)
			assert.Equal(t, strconv.Itoa(len(got)), res.Header.Get("Content-Length"))
			if c.cut {
				assert.Equal(t, c.body[:1<<20], string(got))
				assert.Equal(t, "1048576", res.Header.Get(gwtransport.HeaderBodyTruncated))
			} else {
				assert.Equal(t, c.body, string(got))
				assert.Empty(t, res.Header.Get(gwtransport.HeaderBodyTruncated))
			}
		})
	}
}

// failing503 answers every request 503.
func failing503(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"message":"down","type":"server_error","code":"overloaded"}}`)
}
