package gwtransport_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// wire is one raw HTTP/1.1 answer: written as is on the connection, then
// the connection is closed (reset when rst), or held open until the client
// closes it (stall).
type wire struct {
	raw   string
	rst   bool
	stall bool
}

// rawServer answers the i-th request (from 0) with answer(i), written raw
// on the hijacked connection. It counts requests.
type rawServer struct {
	*httptest.Server
	n     atomic.Int32
	mu    sync.Mutex
	conns []net.Conn
}

func newRawServer(t *testing.T, answer func(i int) wire) *rawServer {
	t.Helper()
	s := &rawServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(s.n.Add(1)) - 1
		a := answer(i)
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.mu.Unlock()
		_, _ = bw.WriteString(a.raw)
		_ = bw.Flush()
		switch {
		case a.stall:
			_, _ = io.Copy(io.Discard, conn) // until the client gives up
		case a.rst:
			_ = conn.(*net.TCPConn).SetLinger(0)
		}
		conn.Close()
	}))
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

// okBody is a healthy chat completion from "who".
func okBody(who string) string {
	return `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from ` +
		who + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}`
}

// withLength is a 200 announcing the full length of body, of which only
// the first n bytes are sent.
func withLength(ct, body string, n int) string {
	h := "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	if ct != "" {
		h += "Content-Type: " + ct + "\r\n"
	}
	return h + "\r\n" + body[:n]
}

// chunked is a chunked 200 whose body is sent in chunks of size step.
func chunked(ct, body string, step int, end bool) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: " + ct + "\r\n\r\n")
	for i := 0; i < len(body); i += step {
		j := min(i+step, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", j-i, body[i:j])
	}
	if end {
		b.WriteString("0\r\n\r\n")
	}
	return b.String()
}

// closeDelimited is a 200 with neither length nor chunking: its end is
// the connection's.
func closeDelimited(ct, body string) string {
	h := "HTTP/1.1 200 OK\r\nConnection: close\r\n"
	if ct != "" {
		h += "Content-Type: " + ct + "\r\n"
	}
	return h + "\r\n" + body
}

const jsonCT = "application/json"

// verifySetup is an openai-go client whose own provider (openai) is a raw
// server, with a healthy gatewaytest fallback "fb".
type verifySetup struct {
	raw      *rawServer
	fallback *gatewaytest.Server
	client   *openai.Client
	hc       *http.Client // a plain http.Client through the gateway
	clock    *fakeClock
	mgr      *gwtransport.RetryManager
}

func newVerifySetup(t *testing.T, answer func(i int) wire, opts ...gwtransport.Option) *verifySetup {
	t.Helper()
	v := &verifySetup{raw: newRawServer(t, answer), fallback: server(t, "fallback", "key-f"), clock: newFakeClock()}
	c := openai.NewClient(option.WithBaseURL(v.raw.URL+"/v1"), option.WithAPIKey("key-p"), option.WithHTTPClient(&http.Client{}))
	v.client = &c
	v.hc = &http.Client{}
	base := []gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(v.clock), provider("fb", v.fallback, "key-f"),
		gwtransport.WithBodyIdle(50 * time.Millisecond)}
	v.mgr = mustInit(t, []any{v.client, v.hc}, []string{"openai/gpt-4o", "fb/fallback-model"}, append(base, opts...)...)
	return v
}

// post sends a non-streamed chat request for the route through the plain
// client and returns the response with its body read.
func (v *verifySetup) post(t *testing.T, ctx context.Context) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.raw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"Hello!"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := v.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// brokenBodies is every wire form of a broken non-streamed 2xx body, and
// the error it must be classified as.
func brokenBodies() []struct {
	name string
	w    wire
	want error
} {
	b := okBody("primary")
	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	return []struct {
		name string
		w    wire
		want error
	}{
		{"cut at byte 0", wire{raw: withLength(jsonCT, b, 0)}, gwtransport.ErrResponseTruncated},
		{"cut at byte 1", wire{raw: withLength(jsonCT, b, 1)}, gwtransport.ErrResponseTruncated},
		{"cut in the middle", wire{raw: withLength(jsonCT, b, len(b)/2)}, gwtransport.ErrResponseTruncated},
		{"cut before the last byte", wire{raw: withLength(jsonCT, b, len(b)-1)}, gwtransport.ErrResponseTruncated},
		{"reset in the middle", wire{raw: withLength(jsonCT, b, len(b)/2), rst: true}, gwtransport.ErrResponseTruncated},
		{"chunked, cut between chunks", wire{raw: chunked(jsonCT, b, 16, false)}, gwtransport.ErrResponseTruncated},
		{"chunked, cut inside a chunk", wire{raw: chunked(jsonCT, b, 16, true)[:len(chunked(jsonCT, b, 16, true))/2]}, gwtransport.ErrResponseTruncated},
		{"octet-stream cut", wire{raw: withLength("application/octet-stream", strings.Repeat("\x00\xff", 100), 150)}, gwtransport.ErrResponseTruncated},
		{"audio cut", wire{raw: withLength("audio/mpeg", strings.Repeat("ID3", 100), 10)}, gwtransport.ErrResponseTruncated},
		{"stall at the start", wire{raw: withLength(jsonCT, b, 0), stall: true}, gwtransport.ErrResponseIdle},
		{"stall in the middle", wire{raw: withLength(jsonCT, b, len(b)/2), stall: true}, gwtransport.ErrResponseIdle},
		{"chunked stall", wire{raw: chunked(jsonCT, b, 16, false), stall: true}, gwtransport.ErrResponseIdle},
		{"truncated object, close-delimited", wire{raw: closeDelimited(jsonCT, b[:len(b)/2])}, gwtransport.ErrResponseMalformed},
		{"truncated object, no Content-Type", wire{raw: closeDelimited("", b[:len(b)-1])}, gwtransport.ErrResponseMalformed},
		{"trailing garbage", wire{raw: withLength(jsonCT, b+"garbage", len(b)+7)}, gwtransport.ErrResponseMalformed},
		{"two objects", wire{raw: withLength(jsonCT, b+b, 2*len(b))}, gwtransport.ErrResponseMalformed},
		{"HTML page as JSON", wire{raw: withLength(jsonCT, html, len(html))}, gwtransport.ErrResponseMalformed},
		{"HTML page as +json", wire{raw: withLength("application/vnd.api+json; charset=utf-8", html, len(html))}, gwtransport.ErrResponseMalformed},
		{"empty JSON 200", wire{raw: withLength(jsonCT, "", 0)}, gwtransport.ErrResponseMalformed},
		{"in-band server_error", wire{raw: withLength(jsonCT, `{"error":{"message":"boom","type":"server_error"}}`, 50)}, gwtransport.ErrResponseFailed},
		{"in-band case-variant Error", wire{raw: withLength(jsonCT, `{"Error":"boom"}`, 16)}, gwtransport.ErrResponseFailed},
	}
}

// TestBrokenBodiesRetriedThenFailOver: each broken body is an attempt
// failure like a 5xx: retried at the same target (with a backoff wait),
// then the fallback answers; the caller's text is the fallback's, through
// openai-go and through a plain http.Client, and the trail names every
// attempt with its cause.
func TestBrokenBodiesRetriedThenFailOver(t *testing.T) {
	for _, tc := range brokenBodies() {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return tc.w })
			ctx, trail := gwtransport.WithTrail(context.Background())
			res, raw, err := chatInto(ctx, v.client)
			require.NoError(t, err)
			assert.Equal(t, "Hello from fallback", res.Choices[0].Message.Content)
			assert.Equal(t, "fb/fallback-model", raw.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, "4", raw.Header.Get(gwtransport.HeaderAttempts))
			as := trail.Attempts()
			require.Len(t, as, 4)
			for i, a := range as[:3] {
				assert.Equal(t, "openai/gpt-4o", a.Target)
				assert.Equal(t, i+1, a.Try)
				assert.Equal(t, 200, a.Status, "the status the provider sent")
				assert.ErrorIs(t, a.Err, tc.want)
			}
			// The policy's verdict each time; the third used up the retries.
			assert.Equal(t, []gwtransport.Action{gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.Succeed},
				[]gwtransport.Action{as[0].Action, as[1].Action, as[2].Action, as[3].Action})
			assert.Equal(t, "fb/fallback-model", as[3].Target)
			assert.Len(t, v.clock.Sleeps(), 2, "a backoff wait before each retry")
			assert.Equal(t, 3, int(v.raw.n.Load()))
			assert.Equal(t, 1, v.fallback.Count())

			// A plain http.Client gets the fallback's bytes, complete.
			hres, body, err := v.post(t, context.Background())
			require.NoError(t, err)
			assert.Equal(t, 200, hres.StatusCode)
			assert.Contains(t, string(body), `"Hello from fallback"`)
			assert.Equal(t, int64(len(body)), hres.ContentLength)
			assert.Equal(t, strconv.Itoa(len(body)), hres.Header.Get("Content-Length"))
		})
	}
}

func chatInto(ctx context.Context, c *openai.Client) (*openai.ChatCompletion, *http.Response, error) {
	var raw *http.Response
	res, err := c.Chat.Completions.New(ctx, chatParams("gateway"), option.WithResponseInto(&raw))
	return res, raw, err
}

// TestBrokenBodyThenHealthy: a broken body once, then the same target is
// retried and answers: the caller gets the primary's complete answer.
func TestBrokenBodyThenHealthy(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(i int) wire {
		if i == 0 {
			return wire{raw: withLength(jsonCT, b, 10)}
		}
		return wire{raw: withLength(jsonCT, b, len(b))}
	})
	res, raw, err := chatInto(context.Background(), v.client)
	require.NoError(t, err)
	assert.Equal(t, "Hello from primary", res.Choices[0].Message.Content)
	assert.Equal(t, "2", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, "openai/gpt-4o#1 200 "+gwtransport.ErrResponseTruncated.Error()+" after 10 of "+strconv.Itoa(len(b))+" bytes: unexpected EOF",
		raw.Header.Get(gwtransport.HeaderReason))
	assert.Zero(t, v.fallback.Count())
}

// TestBrokenBodiesEverywhereEndWithError: when every target's body is
// broken, the caller gets a *gwtransport.Error naming every attempt, with
// errors.Is reaching the cause, never a partial body.
func TestBrokenBodiesEverywhereEndWithError(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, len(b)/2)} })
	v.fallback.SetFault(&gatewaytest.Fault{BodyCutAfter: 20})
	_, _, err := chatInto(context.Background(), v.client)
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	assert.ErrorIs(t, err, gwtransport.ErrResponseTruncated)
	require.Len(t, gerr.Attempts, 6)
	for _, a := range gerr.Attempts {
		assert.ErrorIs(t, a.Err, gwtransport.ErrResponseTruncated)
	}
	assert.Equal(t, 3, v.fallback.Count())

	_, body, err := v.post(t, context.Background())
	require.ErrorAs(t, err, &gerr)
	assert.Nil(t, body)
}

// TestInBandContentPolicyFailsFast: a 200 whose JSON body is a
// content-policy refusal is final: the caller gets exactly that body, as a
// 400, no retry, no fallback, and the breaker does not count it.
func TestInBandContentPolicyFailsFast(t *testing.T) {
	refusal := `{"error":{"message":"refused","type":"invalid_request_error","code":"content_policy_violation"}}`
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, refusal, len(refusal))} },
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Minute)}))
	ctx, trail := gwtransport.WithTrail(context.Background())
	res, body, err := v.post(t, ctx)
	require.NoError(t, err)
	assert.Equal(t, 400, res.StatusCode, "an error in band is handed over with the status it implies")
	assert.Equal(t, "400 Bad Request", res.Status)
	assert.Equal(t, "200", res.Header.Get(gwtransport.HeaderStatusRewritten))
	assert.Equal(t, refusal, string(body))
	assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
	as := trail.Attempts()
	require.Len(t, as, 1)
	assert.Equal(t, gwtransport.FailFast, as[0].Action)
	assert.Equal(t, "content_policy_violation", as[0].Code)
	assert.ErrorIs(t, as[0].Err, gwtransport.ErrResponseFailed)
	assert.Zero(t, v.fallback.Count())
	for _, st := range v.mgr.Stats() {
		assert.Equal(t, "closed", string(st.Breaker), st.Target)
	}
}

// TestInBandErrorsClassified: an error in a 200's body is judged by its
// code as the same error with a 5xx status would be.
func TestInBandErrorsClassified(t *testing.T) {
	for _, tc := range []struct {
		body    string
		actions []gwtransport.Action
	}{
		{`{"error":{"message":"boom","type":"server_error"}}`, []gwtransport.Action{gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.Succeed}},
		{`{"error":{"message":"too long","code":"context_length_exceeded"}}`, []gwtransport.Action{gwtransport.NextTarget, gwtransport.Succeed}},
		{`{"error":{"message":"no","code":"model_not_found"}}`, []gwtransport.Action{gwtransport.NextTarget, gwtransport.Succeed}},
		{`{"error":{"code":"content_filter"}}`, []gwtransport.Action{gwtransport.FailFast}},
		{`{"error":42}`, []gwtransport.Action{gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.RetrySame, gwtransport.Succeed}},
		// A null error is a success's: the Responses API sends one.
		{`{"id":"r","object":"response","error":null,"choices":[]}`, []gwtransport.Action{gwtransport.Succeed}},
		// Nested errors are content, not the answer's failure.
		{`{"id":"c","choices":[{"message":{"content":"x","error":"not mine"}}]}`, []gwtransport.Action{gwtransport.Succeed}},
	} {
		t.Run(tc.body, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, tc.body, len(tc.body))} })
			ctx, trail := gwtransport.WithTrail(context.Background())
			_, _, err := v.post(t, ctx)
			require.NoError(t, err)
			var got []gwtransport.Action
			for _, a := range trail.Attempts() {
				got = append(got, a.Action)
			}
			assert.Equal(t, tc.actions, got)
		})
	}
}

// TestBrokenBodiesCountForTheBreaker: a truncated body is an availability
// failure: the breaker opens after its consecutive failures.
func TestBrokenBodiesCountForTheBreaker(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, 3)} },
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 3, Cooldown: gwtransport.Duration(time.Minute)}))
	_, body, err := v.post(t, context.Background())
	require.NoError(t, err)
	assert.Contains(t, string(body), "Hello from fallback")
	st := statsOf(v.mgr.Stats(), "openai/gpt-4o")
	assert.Equal(t, "open", string(st.Breaker))
	assert.Equal(t, int64(3), st.Failures)
	assert.Equal(t, int64(0), st.Successes)
	// Open: the next request goes to the fallback without touching it.
	_, _, err = v.post(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, int(v.raw.n.Load()))
}

// TestVerifiedHandover: a complete body is handed over in memory with an
// exact Content-Length, no chunking, every byte as the provider sent it,
// and the own provider's trailers (less the gateway's names) already
// there.
func TestVerifiedHandover(t *testing.T) {
	b := okBody("primary")
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"content-length", withLength(jsonCT, b, len(b))},
		{"chunked", chunked(jsonCT, b, 7, true)},
		{"chunked with trailers", strings.Replace(chunked(jsonCT, b, 7, true), "0\r\n\r\n", "0\r\nX-Checksum: abc\r\nX-Gwtransport-Target: forged\r\n\r\n", 1)},
		{"close-delimited", closeDelimited(jsonCT, b)},
		{"no content type", closeDelimited("", b)},
		{"octet-stream", withLength("application/octet-stream", "not json {", 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return wire{raw: tc.raw} })
			res, body, err := v.post(t, context.Background())
			require.NoError(t, err)
			want := b
			if tc.name == "octet-stream" {
				want = "not json {"
			}
			assert.Equal(t, want, string(body))
			assert.Equal(t, int64(len(want)), res.ContentLength)
			assert.Equal(t, strconv.Itoa(len(want)), res.Header.Get("Content-Length"))
			assert.Empty(t, res.TransferEncoding)
			assert.Empty(t, res.Header.Values("Transfer-Encoding"))
			assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
			if tc.name == "chunked with trailers" {
				assert.Equal(t, "abc", res.Trailer.Get("X-Checksum"))
				assert.Empty(t, res.Trailer.Values(gwtransport.HeaderTarget))
			}
		})
	}
}

// TestCrossProviderTrailersOfVerifiedBody: another provider's trailers
// never reach the caller, verified or not.
func TestCrossProviderTrailersOfVerifiedBody(t *testing.T) {
	b := okBody("other")
	other := newRawServer(t, func(int) wire {
		return wire{raw: strings.Replace(chunked(jsonCT, b, 9, true), "0\r\n\r\n", "0\r\nSet-Cookie: s=1\r\n\r\n", 1)}
	})
	hc := &http.Client{}
	mustInit(t, hc, []string{"o/m"}, noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "o", BaseURL: other.URL + "/v1", APIKey: "key-o"}))
	req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(`{"model":"gateway"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, b, string(got))
	assert.Nil(t, res.Trailer)
	assert.Equal(t, int64(len(b)), res.ContentLength)
}

// TestLargerThanTheBoundPassesThrough: a body over WithMaxVerifiedBody is
// handed over unverified and complete: every byte once, in order, whether
// its length is announced or found while reading; a cut in it reaches the
// caller's read as an error, never a clean end.
func TestLargerThanTheBoundPassesThrough(t *testing.T) {
	big := `{"data":"` + strings.Repeat("abcdefghij", 500) + `"}`
	for _, tc := range []struct {
		name   string
		raw    string
		length int64
		cut    bool
	}{
		{"content-length over the bound", withLength(jsonCT, big, len(big)), int64(len(big)), false},
		{"chunked, found over the bound", chunked(jsonCT, big, 300, true), -1, false},
		{"chunked in odd steps", chunked(jsonCT, big, 1023, true), -1, false},
		{"content-length over the bound, cut", withLength(jsonCT, big, 3000), int64(len(big)), true},
		{"chunked over the bound, cut", chunked(jsonCT, big, 700, false), -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return wire{raw: tc.raw} }, gwtransport.WithMaxVerifiedBody(1024))
			res, body, err := v.post(t, context.Background())
			assert.Equal(t, tc.length, res.ContentLength)
			assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
			if tc.cut {
				assert.Error(t, err, "a cut reaches the caller's read")
				assert.True(t, strings.HasPrefix(big, string(body)))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, big, string(body))
		})
	}
}

// TestVerificationOff: WithMaxVerifiedBody(0) hands a 2xx over at its
// headers, as before: a cut body reaches the caller's read.
func TestVerificationOff(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, 10)} }, gwtransport.WithMaxVerifiedBody(0))
	res, body, err := v.post(t, context.Background())
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, b[:10], string(body))
	assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
	assert.Zero(t, v.fallback.Count())
}

// TestAttemptTimeoutCoversTheBody: the attempt's own timeout keeps running
// while the body is verified: a body that trickles past it fails over at
// once (a silent target is not waited on twice), without body idle.
func TestAttemptTimeoutCoversTheBody(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, 5), stall: true} },
		gwtransport.WithBodyIdle(0), gwtransport.WithTimeout(60*time.Millisecond))
	ctx, trail := gwtransport.WithTrail(context.Background())
	_, body, err := v.post(t, ctx)
	require.NoError(t, err)
	assert.Contains(t, string(body), "Hello from fallback")
	as := trail.Attempts()
	require.Len(t, as, 2)
	assert.Equal(t, gwtransport.NextTarget, as[0].Action)
	assert.Contains(t, as[0].Err.Error(), "attempt timed out after 60ms")
}

// TestCallerDeadlineDuringVerification: the caller's own deadline while the
// body is read ends the request with the deadline's error and says nothing
// about the target: its breaker does not count it.
func TestCallerDeadlineDuringVerification(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, 5), stall: true} },
		gwtransport.WithBodyIdle(0), gwtransport.WithTimeout(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	_, _, err := v.post(t, ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	st := statsOf(v.mgr.Stats(), "openai/gpt-4o")
	assert.Equal(t, int64(0), st.Failures)
	assert.Zero(t, v.fallback.Count())
}

// TestGatewaytestBodyFaultsThroughTheGateway: the gatewaytest faults users
// prove their configuration with: a cut or stalled body at the primary,
// the fallback's answer for the caller, through openai-go.
func TestGatewaytestBodyFaultsThroughTheGateway(t *testing.T) {
	for _, f := range []gatewaytest.Fault{{BodyCutAfter: 1}, {BodyCutAfter: 40}, {BodyStallAfter: 1}, {BodyStallAfter: 40}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			p := newPair(t, gwtransport.WithBodyIdle(30*time.Millisecond), gwtransport.WithMaxRetries(1))
			p.primary.SetFault(&f)
			ctx, trail := gwtransport.WithTrail(context.Background())
			text, model, raw, err := p.ask(t, ctx, false)
			require.NoError(t, err)
			assert.Equal(t, "Hello from fallback", text)
			assert.Equal(t, "fallback-model", model)
			assert.Equal(t, "3", raw.Header.Get(gwtransport.HeaderAttempts))
			want := gwtransport.ErrResponseTruncated
			if f.BodyStallAfter > 0 {
				want = gwtransport.ErrResponseIdle
			}
			as := trail.Attempts()
			require.Len(t, as, 3)
			assert.ErrorIs(t, as[0].Err, want)
			assert.ErrorIs(t, as[1].Err, want)
			assert.Equal(t, 2, p.primary.Count())
		})
	}
}

// TestVerifiedBodiesProperty: random bodies, random wire forms, random cut
// points: a success always carries exactly the bytes the provider meant to
// send; a cut body is never a success (the fallback answers instead).
func TestVerifiedBodiesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var cur atomic.Pointer[wire]
	v := newVerifySetup(t, func(int) wire { return *cur.Load() },
		gwtransport.WithMaxRetries(0), gwtransport.WithMaxVerifiedBody(4096), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	seen := map[string]int{}
	for i := 0; i < 300; i++ {
		body := randomJSON(rng)
		cut := len(body)
		if rng.IntN(3) > 0 {
			cut = rng.IntN(len(body)) // cut before the end
		}
		form := rng.IntN(3)
		var raw string
		switch form {
		case 0:
			raw = withLength(jsonCT, body, cut)
		case 1:
			full := chunked(jsonCT, body, 1+rng.IntN(64), true)
			if cut < len(body) {
				full = full[:rng.IntN(len(full)-4)] // never the whole terminating chunk
			}
			raw = full
		default:
			raw = closeDelimited(jsonCT, body[:cut])
		}
		// A reset may discard bytes already sent: only for cut bodies.
		w := wire{raw: raw, rst: cut < len(body) && rng.IntN(2) == 0}
		cur.Store(&w)
		ctx, trail := gwtransport.WithTrail(context.Background())
		res, got, err := v.post(t, ctx)
		if err != nil {
			// Only a body over the bound is handed over unverified, and
			// then its cut reaches the caller's read, after a prefix.
			require.Greater(t, len(body), 4096, "case %d form %d: %v", i, form, err)
			require.True(t, strings.HasPrefix(body, string(got)), "case %d", i)
			require.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
			seen["unverified cut"]++
			continue
		}
		if res.Header.Get(gwtransport.HeaderTarget) == "openai/gpt-4o" {
			require.Equal(t, body, string(got), "case %d form %d cut %d: a success is the whole body", i, form, cut)
			if len(body) <= 4096 {
				require.Equal(t, int64(len(body)), res.ContentLength)
				seen["verified"]++
			} else {
				seen["unverified whole"]++
			}
			continue
		}
		require.Contains(t, string(got), "Hello from fallback", "case %d", i)
		seen["failed over"]++
		if form != 1 {
			require.Less(t, cut, len(body), "case %d form %d: a whole body never fails over: %v", i, form, trail.Attempts())
		}
	}
	for _, k := range []string{"verified", "unverified whole", "unverified cut", "failed over"} {
		assert.Positive(t, seen[k], "the random cases reach %q: %v", k, seen)
	}
}

// randomJSON is a JSON object of random size (past the verification
// bound at times) that ends without white space.
func randomJSON(rng *rand.Rand) string {
	var b bytes.Buffer
	b.WriteString(`{"id":"x"`)
	for n := rng.IntN(40); n > 0; n-- {
		fmt.Fprintf(&b, `,"k%d":%q`, n, strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(300)))
	}
	b.WriteString(`,"choices":[]}`)
	return b.String()
}

// TestVerifyOptionsRefused: negative settings are refused at Init.
func TestVerifyOptionsRefused(t *testing.T) {
	_, err := gwtransport.NewTransport(nil, []string{"openai/m"}, noEnv(), gwtransport.WithMaxVerifiedBody(-1))
	assert.EqualError(t, err, "gwtransport: max verified body must not be negative, got -1")
	_, err = gwtransport.NewTransport(nil, []string{"openai/m"}, noEnv(), gwtransport.WithBodyIdle(-time.Second))
	assert.EqualError(t, err, "gwtransport: body idle limit must not be negative, got -1s")
}

// TestPassThroughIsNotVerified: a request the gateway does not take is not
// read ahead: its response, cut or not, is the provider's as it comes.
func TestPassThroughIsNotVerified(t *testing.T) {
	b := okBody("primary")
	v := newVerifySetup(t, func(int) wire { return wire{raw: withLength(jsonCT, b, 10)} })
	req, _ := http.NewRequest(http.MethodPost, v.raw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini"}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := v.hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, b[:10], string(got))
	assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, 1, int(v.raw.n.Load()))
}

// TestFallbackRefusalNeverHidesBrokenBody: a fallback's refusal after the
// primary's broken or in-band failed body never replaces that failure:
// with no usable response to hand over, the caller gets the error naming
// it.
func TestFallbackRefusalNeverHidesBrokenBody(t *testing.T) {
	b := okBody("primary")
	for _, tc := range []struct {
		name string
		w    wire
		want error
	}{
		{"truncated", wire{raw: withLength(jsonCT, b, 9)}, gwtransport.ErrResponseTruncated},
		{"in-band server_error", wire{raw: withLength(jsonCT, `{"error":{"type":"server_error"}}`, 33)}, gwtransport.ErrResponseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return tc.w })
			v.fallback.SetFault(&gatewaytest.Fault{Status: 400, Message: "prefill not supported"})
			_, _, err := v.post(t, context.Background())
			var gerr *gwtransport.Error
			require.ErrorAs(t, err, &gerr)
			assert.ErrorIs(t, err, tc.want)
			require.Len(t, gerr.Attempts, 4)
			assert.Equal(t, 400, gerr.Attempts[3].Status)
		})
	}
}
