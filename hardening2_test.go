package gwtransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// This file holds the regression tests of the second adversarial review:
// secrets across the code cut and in stream errors, the caller's own
// header values, trailers of the caller's own provider, in-band refusals
// and the breaker, a fallback's refusal after a network failure, dot
// segments, environment variable names, configured headers next to the
// caller's credentials, Azure without an endpoint, ambiguous conversation
// members.

// gw sends body to url through tr with the given caller headers.
func gw(t *testing.T, tr http.RoundTripper, url, body string, h map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	ctx, _ := gwtransport.WithTrail(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = []string{v}
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// TestSecretsNeverCrossTheCodeCut: a key echoed so that it straddles the
// 128-byte cut of a code, or longer than the cut, never shows in part.
func TestSecretsNeverCrossTheCodeCut(t *testing.T) {
	long := "sk-proj-" + strings.Repeat("AbCdEfGhIj", 16)
	for _, c := range []struct{ name, key, pad string }{
		{"straddling", "sk-fb-SECRET-0123456789abcdef", strings.Repeat("x", 110)},
		{"longer than the cut", long, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(failing503))
			defer prim.Close()
			fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(503)
				fmt.Fprintf(w, `{"error":{"code":%q}}`, c.pad+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			}))
			defer fb.Close()
			var logs strings.Builder
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0),
				gwtransport.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), fbProvider(fb, c.key))
			require.NoError(t, err)
			res, _, err := gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer key-p"})
			require.NoError(t, err)
			reason := res.Header.Get(gwtransport.HeaderReason)
			assert.Contains(t, reason, "fb/m#1 503 "+c.pad+"[REDACTED]")
			for _, out := range []string{reason, logs.String()} {
				assert.NotContains(t, out, c.key[:12])
			}
		})
	}
}

// TestStreamErrorsMaskSecrets: an in-band error after the commit that
// echoes the fallback's key, the caller's key or its API-management key
// reaches the caller's read error masked.
func TestStreamErrorsMaskSecrets(t *testing.T) {
	const fbKey, callerKey, apimKey = "sk-fb-STREAM-SECRET-424242", "sk-caller-SECRET-987654321", "apim-SECRET-0123456789"
	prim := httptest.NewServer(http.HandlerFunc(failing503))
	defer prim.Close()
	fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ev(c0))
		io.WriteString(w, ev(fmt.Sprintf(`{"error":{"message":"key %s revoked; you are %s, %s","code":%q,"type":"auth"}}`, r.Header.Get("Authorization"), callerKey, apimKey, r.Header.Get("Authorization"))))
	}))
	defer fb.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0), fbProvider(fb, fbKey))
	require.NoError(t, err)
	_, _, err = gw(t, tr, prim.URL+"/chat/completions", chatBody, map[string]string{"Authorization": "bearer " + callerKey, "Ocp-Apim-Subscription-Key": apimKey})
	require.ErrorIs(t, err, gwtransport.ErrStreamFailed)
	var se *gwtransport.StreamError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "key Bearer [REDACTED] revoked; you are [REDACTED], [REDACTED]", se.Message)
	assert.Equal(t, "Bearer [REDACTED]", se.Code)
	for _, k := range []string{fbKey, callerKey, apimKey} {
		assert.NotContains(t, err.Error(), k)
	}
}

// TestCallerHeaderValuesMasked: the caller's credentials in any scheme
// spelling, and any header of its that would not cross to another
// provider (an API-management or observability key), are masked when a
// provider echoes them in a code; allowlisted values are not.
func TestCallerHeaderValuesMasked(t *testing.T) {
	for _, c := range []struct{ header, value string }{
		{"Authorization", "bearer sk-caller-SECRET-987654"},
		{"Authorization", "BEARER sk-caller-SECRET-987654"},
		{"Ocp-Apim-Subscription-Key", "apim-SECRET-0123456789"},
		{"Helicone-Auth", "Bearer sk-helicone-SECRET-1"},
		{"X-Portkey-Api-Key", "portkey-SECRET-0123"},
	} {
		t.Run(c.header+" "+c.value[:6], func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(503)
				fmt.Fprintf(w, `{"error":{"code":"bad %s"}}`, r.Header.Get(c.header))
			}))
			defer prim.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0))
			require.NoError(t, err)
			h := map[string]string{c.header: c.value, "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			if c.header != "Authorization" {
				h["Authorization"] = "Bearer key-p"
			}
			res, _, err := gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, h)
			require.NoError(t, err)
			reason := res.Header.Get(gwtransport.HeaderReason)
			assert.NotContains(t, reason, "SECRET")
			assert.Contains(t, reason, "[REDACTED]")
		})
	}
}

// TestOwnProviderCannotForgeGatewayTrailers: the caller's own provider's
// X-Gwtransport-* trailers never reach the caller; its other trailers do.
func TestOwnProviderCannotForgeGatewayTrailers(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		stream bool
	}{{"success", 200, false}, {"stream", 200, true}, {"failure handed back", 400, false}} {
		t.Run(c.name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.stream {
					w.Header().Set("Content-Type", "text/event-stream")
				}
				w.WriteHeader(c.status)
				switch {
				case c.stream:
					io.WriteString(w, ev(c0)+ev(c0stop)+done)
				case c.status == 200:
					// A success (an error object in a 200, even as the
					// text/plain net/http sniffs, is an error in band).
					io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[]}`)
				default:
					io.WriteString(w, `{"error":{"message":"no"}}`)
				}
				w.(http.Flusher).Flush() // chunked, undeclared trailers
				w.Header().Set(http.TrailerPrefix+"X-Gwtransport-Target", "forged/target")
				w.Header().Set(http.TrailerPrefix+"X-Gwtransport-Attempts", "99")
				w.Header().Set(http.TrailerPrefix+"X-Checksum", "abc")
			}))
			defer prim.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
			require.NoError(t, err)
			body := `{"model":"gateway","messages":[]}`
			if c.stream {
				body = chatBody
			}
			res, _, err := gw(t, tr, prim.URL+"/chat/completions", body, map[string]string{"Authorization": "Bearer key-p"})
			require.NoError(t, err)
			require.Equal(t, c.status, res.StatusCode)
			assert.Equal(t, http.Header{"X-Checksum": {"abc"}}, res.Trailer)
		})
	}
}

// TestInBandRefusalsDoNotOpenTheBreaker: a stream whose first event
// refuses the request itself (content filter, context length) says nothing
// about the target's availability: its breaker stays closed.
func TestInBandRefusalsDoNotOpenTheBreaker(t *testing.T) {
	for _, code := range []string{"content_filter", "context_length_exceeded"} {
		t.Run(code, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, ev(`{"error":{"message":"no","code":"`+code+`"}}`))
			}))
			defer prim.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
			require.NoError(t, err)
			for i := 0; i < 7; i++ {
				_, _, err := gw(t, tr, prim.URL+"/chat/completions", chatBody, map[string]string{"Authorization": "Bearer key-p"})
				require.NoError(t, err)
			}
			st := tr.Stats()[0]
			assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
			assert.Zero(t, st.Failures)
		})
	}
}

// TestFallbackRefusalNeverHidesNetworkFailure: the primary resets the
// connection, the fallback refuses the request (400): the caller gets the
// error naming the reset, not the fallback's refusal.
func TestFallbackRefusalNeverHidesNetworkFailure(t *testing.T) {
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}))
	defer prim.Close()
	var fbHits atomic.Int32
	fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fbHits.Add(1)
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"prefill unsupported","type":"invalid_request_error"}}`)
	}))
	defer fb.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0), fbProvider(fb, "key-fb"))
	require.NoError(t, err)
	_, _, err = gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer key-p"})
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	require.Len(t, gerr.Attempts, 2)
	assert.Equal(t, 400, gerr.Attempts[1].Status)
	assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF"), "%v", err)
	assert.EqualValues(t, 1, fbHits.Load())
}

// TestDotSegmentsAreNotRouted: a path with . or .. segments could resolve
// to another provider's base on the server: it is never routed (and no
// configured key goes with it).
func TestDotSegmentsAreNotRouted(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"a/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "a", BaseURL: srv.URL + "/tenant-a/v1", APIKey: "sk-tenant-A-secret"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: srv.URL + "/tenant-b/v1", APIKey: "sk-tenant-B-secret"}))
	require.NoError(t, err)
	for _, p := range []string{"/tenant-a/v1/../../tenant-b/v1/chat/completions", "/tenant-a/v1/./chat/completions", "/tenant-a/v1/%2e%2e/chat/completions"} {
		_, _, err := gw(t, tr, srv.URL+p, `{"model":"gateway","messages":[]}`, nil)
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), "segment")
		assert.NotContains(t, err.Error(), "secret")
	}
	assert.Zero(t, hits.Load())
}

// TestEnvNamesMustBeNames: a key pasted where an environment variable's
// name belongs is refused at Init and by the config loader, never echoed
// (it used to be printed as "(set sk-...)" on every request).
func TestEnvNamesMustBeNames(t *testing.T) {
	const pasted = "sk-proj-REVIEWSECRET0123456789"
	_, err := gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: "https://p.example/v1", APIKeyEnv: pasted}))
	require.Error(t, err)
	assert.Equal(t, `gwtransport: provider "p": api_key_env is not an environment variable name (want letters, digits and _, not starting with a digit; the value itself is never written here)`, err.Error())
	_, err = gwtransport.LoadConfig([]byte("providers:\n  - name: p\n    base_url: https://p.example/v1\n    api_keys_env: [OK_NAME, " + pasted + "]\n"))
	require.Error(t, err)
	assert.Equal(t, "gwtransport: config: providers[0].api_keys_env[1]: is not an environment variable name (want letters, digits and _, not starting with a digit)", err.Error())
	_, err = gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: "https://p.example/v1", APIKeyEnv: "P_KEY_2"}))
	require.NoError(t, err)
}

// TestConfiguredHeadersNotMixedWithCallerCredentials: a request that
// brings its own credentials to its own provider gets neither the
// configured key nor the configured headers.
func TestConfiguredHeadersNotMixedWithCallerCredentials(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, okChat)
	}))
	defer srv.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: srv.URL + "/v1", APIKey: "sk-configured",
		Headers: map[string]string{"X-Tenant-Token": "configured-tenant-secret"}}))
	require.NoError(t, err)
	_, _, err = gw(t, tr, srv.URL+"/v1/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer sk-callers-own"})
	require.NoError(t, err)
	assert.Equal(t, "Bearer sk-callers-own", got.Get("Authorization"))
	assert.Empty(t, got.Get("X-Tenant-Token"))
	_, _, err = gw(t, tr, srv.URL+"/v1/chat/completions", `{"model":"gateway","messages":[]}`, nil)
	require.NoError(t, err)
	assert.Equal(t, "Bearer sk-configured", got.Get("Authorization"))
	assert.Equal(t, "configured-tenant-secret", got.Get("X-Tenant-Token"))
}

// TestAzureWithoutEndpointNamesItsVariable: an Azure target with no
// endpoint is skipped unsent, like a missing key, naming the variable.
func TestAzureWithoutEndpointNamesItsVariable(t *testing.T) {
	b := newScriptedProvider(t)
	b.set(nil, "200")
	tr, err := gwtransport.NewTransport(nil, []string{"azure/gpt-4o", "b/m"}, envOf(map[string]string{"AZURE_OPENAI_API_KEY": "az-key-123"}),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: b.srv.URL, APIKeys: []string{"key-b"}}))
	require.NoError(t, err)
	ctx, trail := gwtransport.WithTrail(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	as := trail.Attempts()
	require.Len(t, as, 2)
	assert.ErrorIs(t, as[0].Err, gwtransport.ErrMissingCredentials)
	assert.Contains(t, as[0].Err.Error(), "AZURE_OPENAI_ENDPOINT")
	assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
}

// TestAmbiguousConversationMembersRefused: a body with two "messages" (or
// "input") members, or one in another case, is ambiguous: decoders would
// disagree on where the model messages went. A route that prepends model
// messages refuses it before anything is sent.
func TestAmbiguousConversationMembersRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, okChat) }))
	defer srv.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithModelMessages(map[string][]gwtransport.Message{"openai/gpt-4o": {{Role: "system", Content: "POLICY"}}}))
	require.NoError(t, err)
	for _, body := range []string{
		`{"model":"gateway","messages":[],"Messages":[{"role":"user","content":"a"}]}`,
		`{"model":"gateway","messages":[],"messages":[{"role":"user","content":"a"}]}`,
		`{"model":"gateway","messages":[],"MESSAGES":[]}`,
		`{"model":"gateway","messages":[],"me\u017f\u017fages":[]}`,
		`{"model":"gateway","input":"x","Input":"y"}`,
	} {
		_, _, err := gw(t, tr, srv.URL+"/chat/completions", body, map[string]string{"Authorization": "Bearer k"})
		require.ErrorIs(t, err, gwtransport.ErrMalformedBody, body)
	}
	assert.Zero(t, hits.Load())
	// Not the gateway's: passed through untouched, ambiguity and all.
	_, _, err = gw(t, tr, srv.URL+"/chat/completions", `{"model":"gpt-4o","messages":[],"Messages":[]}`, map[string]string{"Authorization": "Bearer k"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, hits.Load())
	// A route with no model messages has nothing to prepend: it routes
	// the body as it is.
	plain, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	_, _, err = gw(t, plain, srv.URL+"/chat/completions", `{"model":"gateway","messages":[],"Messages":[]}`, map[string]string{"Authorization": "Bearer k"})
	require.NoError(t, err)
	assert.EqualValues(t, 2, hits.Load())
}

// TestSingleKey429IsRetried: a 429 without Retry-After from a provider
// whose one key is configured is retried after the backoff, as the failure
// table says (the key is not rested past the backoff into a failover).
func TestSingleKey429IsRetried(t *testing.T) {
	a := newScriptedProvider(t)
	a.set([]string{"429"}, "200")
	b := newScriptedProvider(t)
	b.set(nil, "200")
	clock := newFakeClock()
	tr, err := gwtransport.NewTransport(nil, []string{"a/m", "b/m"}, noEnv(), gwtransport.WithClock(clock), seeded(1),
		gwtransport.WithProvider(gwtransport.Provider{Name: "a", BaseURL: a.srv.URL, APIKey: "key-a"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: b.srv.URL, APIKey: "key-b"}))
	require.NoError(t, err)
	res, _, err := gw(t, tr, a.srv.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, nil)
	require.NoError(t, err)
	assert.Equal(t, "a/m", res.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "2", res.Header.Get(gwtransport.HeaderAttempts))
	na, _ := a.counts()
	nb, _ := b.counts()
	assert.Equal(t, 2, na)
	assert.Zero(t, nb)
	require.Len(t, clock.Sleeps(), 1)
	assert.InDelta(t, 500, clock.Sleeps()[0].Milliseconds(), 125)
}

// TestFailureHandedBackMasksEscapedAndHeaderKeys: another provider's
// failure handed back never carries its key, whether its JSON body escapes
// it ("sk-fb\/..." as PHP writes "/", or "\u0073k-...") or a header
// echoes it.
func TestFailureHandedBackMasksEscapedAndHeaderKeys(t *testing.T) {
	const key = "sk-fb/SECRET/0123456789"
	for name, esc := range map[string]string{
		"solidus escaped": `sk-fb\/SECRET\/0123456789`,
		"unicode escaped": `\u0073k-fb/SECRET/0123456789`,
		"plain":           key,
	} {
		t.Run(name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(failing503))
			defer prim.Close()
			fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Debug-Authorization", r.Header.Get("Authorization"))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(401)
				io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+esc+`","type":"invalid_request_error","code":"invalid_api_key"}}`)
			}))
			defer fb.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, key))
			require.NoError(t, err)
			res, body, err := gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer key-p"})
			require.NoError(t, err)
			require.Equal(t, 401, res.StatusCode)
			var e struct {
				Error struct{ Message, Code string }
			}
			require.NoError(t, json.Unmarshal(body, &e))
			assert.Equal(t, "Incorrect API key provided: [REDACTED]", e.Error.Message)
			assert.Equal(t, "invalid_api_key", e.Error.Code)
			assert.Equal(t, fmt.Sprint(len(body)), res.Header.Get("Content-Length"))
			assert.Equal(t, "Bearer [REDACTED]", res.Header.Get("X-Debug-Authorization"))
		})
	}
}

// TestCaseVariantStreamAndNAreRead: a case-insensitive provider streams on
// "Stream": true (and reads "N"): the gateway guards that stream too, and
// refuses a body whose variants disagree.
func TestCaseVariantStreamAndNAreRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ev(c0)) // cut: no finish, no [DONE]
	}))
	defer srv.Close()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0))
	require.NoError(t, err)
	for _, body := range []string{
		`{"model":"gateway","Stream":true,"messages":[]}`,
		`{"model":"gateway","STREAM":true,"messages":[]}`,
	} {
		_, _, err := gw(t, tr, srv.URL+"/chat/completions", body, map[string]string{"Authorization": "Bearer k"})
		require.ErrorIs(t, err, gwtransport.ErrStreamTruncated, body)
	}
	for _, body := range []string{
		`{"model":"gateway","stream":false,"Stream":true,"messages":[]}`,
		`{"model":"gateway","stream":true,"n":1,"N":2,"messages":[]}`,
	} {
		_, _, err := gw(t, tr, srv.URL+"/chat/completions", body, map[string]string{"Authorization": "Bearer k"})
		require.ErrorIs(t, err, gwtransport.ErrMalformedBody, body)
	}
}

// TestNullErrorMemberFailsOver: openai-go fails on a stream event with any
// "error" member, null included (and go-openai on any line starting with
// one): such a first event fails over rather than commit a stream the SDK
// will reject.
func TestNullErrorMemberFailsOver(t *testing.T) {
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ev(`{"error":null,"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`)+ev(c0stop)+done)
	}))
	defer prim.Close()
	fb, hits := hostileFallback(t)
	c := openai.NewClient(option.WithBaseURL(prim.URL), option.WithAPIKey("key-p"), option.WithHTTPClient(&http.Client{}))
	mustInit(t, &c, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, "key-fb"))
	text, raw, err := streamChat(t, context.Background(), &c, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hi", text) // the fallback's stream (c0)
	assert.Equal(t, "fb/m", raw.Header.Get(gwtransport.HeaderTarget))
	assert.EqualValues(t, 1, hits.Load())
}

// TestHTTP2TrailersGated: over HTTP/2 a response with a Content-Length still
// gets trailers, declared or not: another provider's never reach the
// caller, the own provider's lose their X-Gwtransport-* ones.
func TestHTTP2TrailersGated(t *testing.T) {
	newH2 := func(name string, status int) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(okChat)))
			w.WriteHeader(status)
			io.WriteString(w, okChat)
			w.Header().Set(http.TrailerPrefix+"Set-Cookie", "session=evil")
			w.Header().Set(http.TrailerPrefix+"X-Gwtransport-Target", "forged/target")
			w.Header().Set(http.TrailerPrefix+"X-Checksum", name)
		}))
		s.EnableHTTP2 = true
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	own := newH2("own", 200)
	require.Equal(t, "HTTP/2.0", func() string {
		res, err := own.Client().Get(own.URL)
		require.NoError(t, err)
		res.Body.Close()
		return res.Proto
	}())
	for _, c := range []struct {
		name string
		fb   int // the primary's status when the fallback serves, else 0
		want http.Header
	}{
		{"own provider", 0, http.Header{"X-Checksum": {"own"}, "Set-Cookie": {"session=evil"}}},
		{"other provider", 503, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			prim := own
			opts := []gwtransport.Option{noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxRetries(0)}
			models := []string{"openai/gpt-4o"}
			if c.fb != 0 {
				prim = newH2("primary", c.fb)
				fb := newH2("fb", 200)
				opts = append(opts, fbProvider(fb, "key-fb"))
				models = append(models, "fb/m")
			}
			tr, err := gwtransport.NewTransport(own.Client().Transport, models, opts...)
			require.NoError(t, err)
			res, _, err := gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer key-p"})
			require.NoError(t, err)
			assert.Equal(t, c.want, res.Trailer)
		})
	}
}

// TestFailureBodyMaskedByteForByte: another provider's key in a failure
// body handed back is masked whatever the body's shape (several JSON
// documents, text around JSON, escapes, across the 1 MiB cut), and every
// other byte stays as the provider wrote it.
func TestFailureBodyMaskedByteForByte(t *testing.T) {
	const key = "sk-fb/SECRET/0123456789"
	filler := strings.Repeat("x", (1<<20)-10)
	for _, c := range []struct{ name, body, want string }{
		{"ndjson", `{"error":{"message":"bad sk-fb\/SECRET\/0123456789"}}` + "\n" + `{"x":1}`, `{"error":{"message":"bad [REDACTED]"}}` + "\n" + `{"x":1}`},
		{"text around json", `error: {"message":"key \u0073k-fb/SECRET/0123456789"} (retry)`, `error: {"message":"key [REDACTED]"} (retry)`},
		{"kept bytes", `{"z":"a<b>&c","a":1,"a":2,"error":{"message":"\u0073k-fb/SECRET/0123456789 and \u00e9"}}`, `{"z":"a<b>&c","a":1,"a":2,"error":{"message":"[REDACTED] and é"}}`},
		{"across the cut", filler + key + "tail", (filler + "[REDACTED]")[:1<<20]},
	} {
		t.Run(c.name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(failing503))
			defer prim.Close()
			fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Seen-"+strings.ReplaceAll(key, "/", "-"), "1")
				w.Header().Set("Link", "<https://x/?auth="+url.QueryEscape(key)+">")
				w.WriteHeader(401)
				io.WriteString(w, c.body)
			}))
			defer fb.Close()
			tr, err := gwtransport.NewTransport(nil, []string{"fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), fbProvider(fb, key),
				gwtransport.WithProvider(gwtransport.Provider{Name: "other", BaseURL: "https://other.example/v1", APIKey: "sk-fb-SECRET-0123456789"}))
			require.NoError(t, err)
			res, body, err := gw(t, tr, prim.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, map[string]string{"Authorization": "Bearer key-p"})
			require.NoError(t, err)
			assert.Equal(t, c.want, string(body))
			assert.Equal(t, fmt.Sprint(len(body)), res.Header.Get("Content-Length"))
			assert.Equal(t, "<https://x/?auth=[REDACTED]>", res.Header.Get("Link"))
			for k := range res.Header {
				assert.NotContains(t, strings.ToLower(k), "secret", k)
			}
		})
	}
}

// TestKeyEventOnlyWhenTheKeyRests: a 429 without Retry-After does not rest
// the key, and no event says it does; with Retry-After, it rests and says
// so.
func TestKeyEventOnlyWhenTheKeyRests(t *testing.T) {
	for _, ra := range []string{"", "30"} {
		p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.Header.Get("Authorization"), "k0") {
				if ra != "" {
					w.Header().Set("Retry-After", ra)
				}
				w.WriteHeader(429)
				return
			}
			io.WriteString(w, okChat)
		}))
		var states []string
		tr, err := gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
			gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: p.URL, APIKeys: []string{"k0", "k1"}}),
			gwtransport.WithOnEvent(func(e gwtransport.Event) {
				if e.Kind == gwtransport.EventKey {
					states = append(states, e.State)
				}
			}))
		require.NoError(t, err)
		_, _, err = gw(t, tr, p.URL+"/chat/completions", `{"model":"gateway","messages":[]}`, nil)
		require.NoError(t, err)
		ks := tr.Stats()[0].Keys[0]
		if ra == "" {
			assert.Empty(t, states)
			assert.Equal(t, "active", ks.State)
		} else {
			assert.Equal(t, []string{"resting"}, states)
			assert.Equal(t, "resting", ks.State)
		}
		p.Close()
	}
}
