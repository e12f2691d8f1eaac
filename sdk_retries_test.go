package gwtransport_test

// The SDKs' own retries must not multiply the gateway's attempts: exact
// upstream request counts for every failure kind, under openai-go with its
// default settings, with a per-call option.WithMaxRetries, and under an
// Azure client whose token credential brings azcore's retry pipeline.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// upstream is a provider that fails the way it is told to and counts the
// requests that reach it.
type upstream struct {
	srv  *httptest.Server
	n    atomic.Int64
	mode string
	// script, when set, is the mode of each request in turn (its last
	// entry repeats), instead of mode.
	script []string
	auth   atomic.Value // the Authorization or api-key header of the last request
}

// Failure kinds an upstream can play.
const (
	modeOK         = "ok"
	modeSilent     = "silent"       // accepts the request and never answers
	modeReset      = "reset"        // TCP reset before any response
	mode503        = "503"          // 503 forever
	mode429        = "429"          // 429 forever
	mode500Then200 = "500-then-200" // one 500, then answers
	modeCut        = "cut"          // a 200 event stream cut before its first event
	mode500        = "500"          // in a script: one 500
)

func newUpstream(t *testing.T, name, mode string) *upstream {
	return newUpstreamTLS(t, name, mode, false)
}

// newUpstreamTLS starts an upstream, on HTTPS when tls is set (an Azure
// token credential is sent on HTTPS only).
func newUpstreamTLS(t *testing.T, name, mode string, tls bool) *upstream {
	return newScripted(t, name, mode, tls, nil)
}

// newScripted starts an upstream playing script (see upstream.script).
func newScripted(t *testing.T, name, mode string, tls bool, script []string) *upstream {
	t.Helper()
	u := &upstream{mode: mode, script: script}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := u.n.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.auth.Store(r.Header.Get("Authorization") + r.Header.Get("Api-Key"))
		stream := strings.Contains(string(body), `"stream":true`)
		mode := mode
		if len(u.script) > 0 {
			mode = u.script[min(int(n), len(u.script))-1]
			if mode == mode500 {
				mode, n = mode500Then200, 1
			}
		}
		switch {
		case mode == modeSilent:
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		case mode == modeReset:
			hijackClose(w, true)
			return
		case mode == mode503, mode == mode500Then200 && n == 1:
			status := http.StatusServiceUnavailable
			if mode == mode500Then200 {
				status = http.StatusInternalServerError
			}
			writeErr(w, status, "server_error", "the server had an error")
			return
		case mode == mode429:
			writeErr(w, http.StatusTooManyRequests, "rate_limit_exceeded", "slow down")
			return
		case mode == modeCut && stream:
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			hijackClose(w, false)
			return
		}
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello from %s\"},\"finish_reason\":null}]}\n\n", name)
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from %s"},"finish_reason":"stop"}]}`, name)
	}))
	if tls {
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int { return int(u.n.Load()) }

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"server_error","code":%q}}`, msg, code)
}

// hijackClose drops the connection: with a TCP reset when rst is set.
func hijackClose(w http.ResponseWriter, rst bool) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// staticToken is an azcore.TokenCredential with a fixed token, as an Azure
// identity would give.
type staticToken struct{ calls atomic.Int64 }

func (s *staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.calls.Add(1)
	return azcore.AccessToken{Token: "azure-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// sdkKind is a way of calling the gateway through openai-go: a client with
// default settings (MaxRetries 2), the same with a per-call
// option.WithMaxRetries(5), an Azure client with a token credential.
type sdkKind struct {
	name string
	// own is the target served by the client's own base URL.
	own    string
	tls    bool // the client's own upstream is on HTTPS
	client func(t *testing.T, own *upstream) *openai.Client
	call   []option.RequestOption
}

var sdkKinds = []sdkKind{
	{
		name: "openai-go defaults",
		own:  "openai/m1",
		client: func(t *testing.T, own *upstream) *openai.Client {
			c := openai.NewClient(option.WithBaseURL(own.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
			return &c
		},
	},
	{
		name: "openai-go per-call WithMaxRetries(5)",
		own:  "openai/m1",
		client: func(t *testing.T, own *upstream) *openai.Client {
			c := openai.NewClient(option.WithBaseURL(own.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
			return &c
		},
		call: []option.RequestOption{option.WithMaxRetries(5)},
	},
	{
		name: "azure token credential",
		own:  "azure/dep1",
		tls:  true,
		client: func(t *testing.T, own *upstream) *openai.Client {
			c := openai.NewClient(azure.WithEndpoint(own.srv.URL, "2024-06-01"), azure.WithTokenCredential(&staticToken{}), option.WithHTTPClient(own.srv.Client()))
			return &c
		},
	},
}

// sdkCase is one failure kind, with the upstream requests the gateway's
// policy allows for one call (default policy: 2 retries of a target).
type sdkCase struct {
	name         string
	stream       bool
	modeA, modeB string
	wantA, wantB int // per server, with two targets (wantA alone with one)
	ok           bool
	cause        string // in the caller's error text, when set
	status       int    // the final failure response's status; 0: no response
}

var sdkCases = []sdkCase{
	{name: "silent target", modeA: modeSilent, modeB: modeSilent, wantA: 1, wantB: 1, cause: "attempt timed out after 750ms"},
	{name: "connection reset forever", modeA: modeReset, modeB: modeReset, wantA: 3, wantB: 3, cause: "connection reset by peer"},
	{name: "503 forever", modeA: mode503, modeB: mode503, wantA: 3, wantB: 3, cause: "503", status: 503},
	{name: "429 forever", modeA: mode429, modeB: mode429, wantA: 3, wantB: 3, cause: "429", status: 429}, // a 429 without Retry-After is retried at every target, as the policy says
	{name: "500 then 200", modeA: mode500Then200, modeB: modeOK, wantA: 2, wantB: 0, ok: true},
	// The policy for this one is the stream reader's; the figures come from
	// the baseline, and the cause from the trail.
	{name: "stream cut before the first event", stream: true, modeA: modeCut, modeB: modeCut},
}

// silentTimeout is the attempt timeout in these tests: long enough for a
// TLS handshake on a loaded machine under -race, short enough to keep the
// silent cases quick.
const silentTimeout = 750 * time.Millisecond

// sdkSetup is one case under one client kind, installed.
type sdkSetup struct {
	a, b   *upstream
	client *openai.Client
	clock  *fakeClock
}

func setupSDK(t *testing.T, k sdkKind, tc sdkCase, targets int) sdkSetup {
	t.Helper()
	s := sdkSetup{a: newUpstreamTLS(t, "a", tc.modeA, k.tls), b: newUpstream(t, "b", tc.modeB), clock: newFakeClock()}
	s.client = k.client(t, s.a)
	models := []string{k.own, "bprov/m2"}[:targets]
	opts := []gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(s.clock),
		gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: s.b.srv.URL + "/v1", APIKey: "key-b"})}
	if tc.modeA == modeSilent {
		opts = append(opts, gwtransport.WithTimeout(silentTimeout))
	}
	mustInit(t, s.client, models, opts...)
	return s
}

// send makes one chat call, streamed or not, and returns the text.
func (s sdkSetup) send(ctx context.Context, stream bool, opts ...option.RequestOption) (string, error) {
	params := chatParams("gateway")
	if !stream {
		res, err := s.client.Chat.Completions.New(ctx, params, opts...)
		if err != nil {
			return "", err
		}
		return res.Choices[0].Message.Content, nil
	}
	st := s.client.Chat.Completions.NewStreaming(ctx, params, opts...)
	defer st.Close()
	text := ""
	for st.Next() {
		for _, ch := range st.Current().Choices {
			text += ch.Delta.Content
		}
	}
	return text, st.Err()
}

// baseline is the number of upstream requests the gateway alone makes for
// the case: the same configuration as a plain Transport, one request, no
// SDK around it.
func baseline(t *testing.T, k sdkKind, tc sdkCase, targets int) (a, b int) {
	t.Helper()
	a0, b0 := newUpstream(t, "a", tc.modeA), newUpstream(t, "b", tc.modeB)
	models := []string{"own/m1", "bprov/m2"}[:targets]
	opts := []gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "own", BaseURL: a0.srv.URL + "/v1", APIKey: "key-own"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: b0.srv.URL + "/v1", APIKey: "key-b"})}
	if tc.modeA == modeSilent {
		opts = append(opts, gwtransport.WithTimeout(silentTimeout))
	}
	tr, err := gwtransport.NewTransport(nil, models, opts...)
	require.NoError(t, err)
	body := `{"model":"gateway","messages":[{"role":"user","content":"Hello!"}]}`
	if tc.stream {
		body = `{"model":"gateway","stream":true,"messages":[{"role":"user","content":"Hello!"}]}`
	}
	req, err := http.NewRequest(http.MethodPost, a0.srv.URL+"/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer key-own") // the caller's own credentials, as the SDK clients send
	res, err := tr.RoundTrip(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	closeIdle(tr)
	return a0.count(), b0.count()
}

// TestSDKRetriesDoNotMultiply: for every failure kind, one target and two,
// under every openai-go client kind with its default settings, a call makes
// exactly the upstream requests the gateway's policy allows (the same as
// the gateway alone), and the caller's error names the real cause.
func TestSDKRetriesDoNotMultiply(t *testing.T) {
	for _, k := range sdkKinds {
		for _, tc := range sdkCases {
			for _, targets := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/%s/%d targets", k.name, tc.name, targets), func(t *testing.T) {
					wantA, wantB := baseline(t, k, tc, targets)
					if !tc.stream {
						// The policy's figures, spelled out.
						require.Equal(t, tc.wantA, wantA, "baseline of the first target")
						if targets == 2 {
							require.Equal(t, tc.wantB, wantB, "baseline of the second target")
						}
					}
					require.NotZero(t, wantA)
					s := setupSDK(t, k, tc, targets)
					ctx, trail := gwtransport.ContextWithTrail(context.Background())
					start := time.Now()
					text, err := s.send(ctx, tc.stream, k.call...)
					elapsed := time.Since(start)

					assert.Equal(t, wantA, s.a.count(), "requests at the first target")
					if targets == 2 {
						assert.Equal(t, wantB, s.b.count(), "requests at the second target")
					} else {
						assert.Zero(t, s.b.count())
					}
					assert.Equal(t, sent(trail.Attempts()), s.a.count()+s.b.count(), "the gateway ran once: its attempts are the upstream requests")
					assert.Less(t, elapsed, 5*time.Second, "no SDK retry sleeps")
					if k.tls && s.a.count() > 0 {
						assert.Equal(t, "Bearer azure-token", s.a.auth.Load(), "through azcore's pipeline")
					}
					if tc.ok {
						require.NoError(t, err)
						assert.Equal(t, "Hello from a", text)
						return
					}
					require.Error(t, err)
					if tc.cause != "" {
						assert.Contains(t, err.Error(), tc.cause)
					}
					at := trail.Attempts()
					require.NotEmpty(t, at)
					if tc.status == 0 {
						// No HTTP response at all: the gateway's own error
						// reaches the caller, naming every attempt.
						var gerr *gwtransport.Error
						require.ErrorAs(t, err, &gerr)
						assert.Len(t, gerr.Attempts, len(at))
						last := at[len(at)-1]
						require.Error(t, last.Err)
						assert.Contains(t, err.Error(), last.Err.Error())
						if tc.modeA == modeReset {
							assert.ErrorIs(t, err, syscall.ECONNRESET)
						}
						return
					}
					// The last failure response, marked as final.
					var aerr *openai.Error
					require.ErrorAs(t, err, &aerr)
					assert.Equal(t, tc.status, aerr.StatusCode)
					assert.Equal(t, fmt.Sprint(len(at)), aerr.Response.Header.Get(gwtransport.HeaderAttempts))
					assert.Equal(t, "false", aerr.Response.Header.Get("X-Should-Retry"))
				})
			}
		}
	}
}

// TestSDKRetriesCallerDeadline: when the caller's deadline ends the call,
// the target is waited on once and the error says the deadline.
func TestSDKRetriesCallerDeadline(t *testing.T) {
	for _, k := range sdkKinds {
		t.Run(k.name, func(t *testing.T) {
			silent := newUpstreamTLS(t, "silent", modeSilent, k.tls)
			c := k.client(t, silent)
			mustInit(t, c, []string{k.own}, noEnv(), gwtransport.WithTimeout(0))
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			_, err := sdkSetup{client: c}.send(ctx, false, k.call...)
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 1, silent.count())
		})
	}
}

// TestSDKPassThroughKeepsSDKRetries: a request the gateway does not route
// keeps openai-go's own retries (here, one 503 then an answer).
func TestSDKPassThroughKeepsSDKRetries(t *testing.T) {
	a := newUpstream(t, "a", mode500Then200)
	c := openai.NewClient(option.WithBaseURL(a.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
	mustInit(t, &c, []string{"openai/m1"}, noEnv())
	res, err := c.Chat.Completions.New(context.Background(), chatParams("gpt-4o"))
	require.NoError(t, err)
	assert.Equal(t, "Hello from a", res.Choices[0].Message.Content)
	assert.Equal(t, 2, a.count(), "the SDK retried the pass-through request itself")
}

// TestSDKReplayedAnswerUnderAzcore: a gateway request the hook cannot
// recognise before the call (the model set by a per-call option after the
// gateway's) still makes no more upstream requests under azcore's retries:
// the retries get the gateway's final answer again.
func TestSDKReplayedAnswerUnderAzcore(t *testing.T) {
	for _, tc := range []sdkCase{
		{name: "connection reset", modeA: modeReset, wantA: 3},
		{name: "silent", modeA: modeSilent, wantA: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setupSDK(t, sdkKinds[2], tc, 1)
			params := chatParams("gpt-4o")
			start := time.Now()
			_, err := s.client.Chat.Completions.New(context.Background(), params, option.WithJSONSet("model", "gateway"))
			require.Error(t, err)
			var gerr *gwtransport.Error
			require.ErrorAs(t, err, &gerr)
			assert.Equal(t, tc.wantA, s.a.count())
			assert.Less(t, time.Since(start), 5*time.Second, "azcore does not retry the gateway's error (NonRetriable)")
		})
	}
}

// TestSDKReplayedResponseUnderAzcore: azcore retries a 503 whatever
// x-should-retry says; for a gateway request the hook could not recognise
// before the call, each of its retries gets the gateway's final response
// again, and no new upstream request is made. (The caller's own azcore
// retry options keep its waits short here.)
func TestSDKReplayedResponseUnderAzcore(t *testing.T) {
	s := setupSDK(t, sdkKinds[2], sdkCase{modeA: mode503}, 1)
	var tries atomic.Int64
	ctx := policy.WithRetryOptions(context.Background(), policy.RetryOptions{
		MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond,
		ShouldRetry: func(res *http.Response, err error) bool {
			tries.Add(1)
			return res != nil && res.StatusCode == http.StatusServiceUnavailable
		},
	})
	_, err := s.client.Chat.Completions.New(ctx, chatParams("gpt-4o"), option.WithJSONSet("model", "gateway"))
	var aerr *openai.Error
	require.ErrorAs(t, err, &aerr)
	assert.Equal(t, http.StatusServiceUnavailable, aerr.StatusCode)
	assert.Equal(t, "3", aerr.Response.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, int64(4), tries.Load(), "azcore tried four times")
	assert.Equal(t, 3, s.a.count(), "but only the gateway's three attempts reached the provider")
}

// TestSDKErrorIsNonRetriable: azcore's retry policy looks for this method.
func TestSDKErrorIsNonRetriable(t *testing.T) {
	var err error = &gwtransport.Error{Route: "gateway"}
	var nr interface {
		error
		NonRetriable()
	}
	require.True(t, errors.As(fmt.Errorf("wrapped: %w", err), &nr))
}

// sent counts the attempts that were sent (not those refused before
// sending: no key, no credentials).
func sent(at []gwtransport.Attempt) int {
	n := 0
	for _, a := range at {
		if !errors.Is(a.Err, gwtransport.ErrNoTarget) && !errors.Is(a.Err, gwtransport.ErrMissingCredentials) {
			n++
		}
	}
	return n
}

// TestSDKRetriesProperty: random fault scripts per provider, random gateway
// retries, streamed or not, under every openai-go client kind: the gateway
// runs exactly once per call (no target is tried twice with the same try
// number) and each provider receives exactly the requests the gateway alone
// sends for the same script.
func TestSDKRetriesProperty(t *testing.T) {
	faults := []string{modeOK, modeReset, mode503, mode429, mode500, modeCut, modeSilent}
	r := rand.New(rand.NewPCG(3, 5))
	for i := 0; i < 30; i++ {
		k := sdkKinds[r.IntN(len(sdkKinds))]
		stream := r.IntN(2) == 0
		retries := r.IntN(4)
		script := func() []string {
			out := make([]string, 1+r.IntN(4))
			for j := range out {
				out[j] = faults[r.IntN(len(faults))]
				if out[j] == modeSilent && r.IntN(3) > 0 {
					out[j] = mode503 // keep the real waits few
				}
			}
			return out
		}
		sa, sb := script(), script()
		t.Run(fmt.Sprintf("%d/%s/stream=%t/retries=%d/%v/%v", i, k.name, stream, retries, sa, sb), func(t *testing.T) {
			opts := func(clock *fakeClock) []gwtransport.Option {
				return []gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(clock),
					gwtransport.WithMaxRetries(retries), gwtransport.WithTimeout(silentTimeout)}
			}
			// The gateway alone.
			a0, b0 := newScripted(t, "a", "", false, sa), newScripted(t, "b", "", false, sb)
			tr, err := gwtransport.NewTransport(nil, []string{"own/m1", "bprov/m2"}, append(opts(newFakeClock()),
				gwtransport.WithProvider(gwtransport.Provider{Name: "own", BaseURL: a0.srv.URL + "/v1", APIKey: "key-own"}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: b0.srv.URL + "/v1", APIKey: "key-b"}))...)
			require.NoError(t, err)
			body := fmt.Sprintf(`{"model":"gateway","stream":%t,"messages":[{"role":"user","content":"Hello!"}]}`, stream)
			req, err := http.NewRequest(http.MethodPost, a0.srv.URL+"/v1/chat/completions", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer key-own")
			if res, err := tr.RoundTrip(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			closeIdle(tr)

			// The same through the SDK.
			a, b := newScripted(t, "a", "", k.tls, sa), newScripted(t, "b", "", false, sb)
			c := k.client(t, a)
			mustInit(t, c, []string{k.own, "bprov/m2"}, append(opts(newFakeClock()),
				gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: b.srv.URL + "/v1", APIKey: "key-b"}))...)
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			_, _ = sdkSetup{client: c}.send(ctx, stream, k.call...)

			seen := map[string]bool{}
			for _, at := range trail.Attempts() {
				key := fmt.Sprintf("%s#%d", at.Target, at.Try)
				assert.False(t, seen[key], "%s tried twice: the gateway ran more than once", key)
				seen[key] = true
			}
			assert.Equal(t, a0.count(), a.count(), "requests at the first provider")
			assert.Equal(t, b0.count(), b.count(), "requests at the second provider")
		})
	}
}

// closeIdle closes the idle connections of a transport that can.
func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
