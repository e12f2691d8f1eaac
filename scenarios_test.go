package gwtransport_test

// The 16 fault scenarios of a public crash-test suite for LLM gateways, each
// through the real openai-go client against local providers, with an
// injected clock: no test waits for a backoff or a Retry-After for real.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// pair is a primary served by the openai-go client's own base URL and a
// fallback on another provider.
type pair struct {
	primary, fallback *gatewaytest.Server
	client            *openai.Client
	clock             *fakeClock
}

func newPair(t *testing.T, opts ...gwtransport.Option) *pair {
	t.Helper()
	p := &pair{
		primary:  server(t, "primary", "key-p"),
		fallback: server(t, "fallback", "key-f"),
		clock:    newFakeClock(),
	}
	p.client = openaiClient(p.primary, "key-p")
	base := []gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(p.clock), provider("fb", p.fallback, "key-f")}
	mustInit(t, p.client, []string{"openai/gpt-4o", "fb/fallback-model"}, append(base, opts...)...)
	return p
}

// each runs a subtest for the non-streamed and the streamed request.
func each(t *testing.T, f func(t *testing.T, stream bool)) {
	for _, stream := range []bool{false, true} {
		name := "non-streamed"
		if stream {
			name = "streamed"
		}
		t.Run(name, func(t *testing.T) { f(t, stream) })
	}
}

// ask sends one chat request, streamed or not, and returns the text, the
// model that answered, the raw response and the error.
func (p *pair) ask(t *testing.T, ctx context.Context, stream bool, opts ...option.RequestOption) (text, model string, raw *http.Response, err error) {
	t.Helper()
	opts = append(opts, option.WithResponseInto(&raw))
	if !stream {
		res, err := p.client.Chat.Completions.New(ctx, chatParams("gateway"), opts...)
		if err != nil {
			return "", "", raw, err
		}
		return res.Choices[0].Message.Content, res.Model, raw, nil
	}
	s := p.client.Chat.Completions.NewStreaming(ctx, chatParams("gateway"), opts...)
	defer s.Close()
	for s.Next() {
		c := s.Current()
		model = c.Model
		for _, ch := range c.Choices {
			text += ch.Delta.Content
		}
	}
	return text, model, raw, s.Err()
}

const fullAnswer = "Hello from primary tok2 tok3 tok4 tok5 "

func answer(stream bool, who string) string {
	if stream {
		return "Hello from " + who + " tok2 tok3 tok4 tok5 "
	}
	return "Hello from " + who
}

// Scenario 1: 429 with Retry-After: 2, then healthy: wait at least 2 s (on
// the injected clock) and retry; never a tight loop.
func TestScenario01RateLimitedWithRetryAfter(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "2"}})
		text, model, raw, err := p.ask(t, context.Background(), stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "primary"), text)
		assert.Equal(t, "gpt-4o", model)
		assert.Equal(t, []time.Duration{2 * time.Second}, p.clock.Sleeps())
		assert.Equal(t, 2, p.primary.Count())
		assert.Zero(t, p.fallback.Count())
		assert.Equal(t, "2", raw.Header.Get(gwtransport.HeaderAttempts))
	})
}

// Scenario 2: 429 forever without a header: jittered exponential backoff,
// bounded attempts, then the fallback.
func TestScenario02RateLimitedForever(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t, gwtransport.WithMaxRetries(3))
		p.primary.SetFault(&gatewaytest.Fault{Status: 429})
		text, _, _, err := p.ask(t, context.Background(), stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "fallback"), text)
		assert.Equal(t, 4, p.primary.Count(), "1 attempt + 3 retries")
		sleeps := p.clock.Sleeps()
		require.Len(t, sleeps, 3, "no sleep after the target's last attempt, none between targets")
		for i, base := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
			assert.InDelta(t, float64(base), float64(sleeps[i]), 0.25*float64(base), "wait %d", i)
			assert.NotEqual(t, base, sleeps[i], "wait %d is jittered", i)
		}
	})
}

// Scenario 3: 500 once, then healthy: one same-target retry succeeds.
func TestScenario03ServerErrorOnce(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.Enqueue(gatewaytest.Fault{Status: 500})
		text, _, raw, err := p.ask(t, context.Background(), stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "primary"), text)
		assert.Equal(t, 2, p.primary.Count())
		assert.Zero(t, p.fallback.Count())
		assert.Equal(t, "openai/gpt-4o#1 500 server_error", raw.Header.Get(gwtransport.HeaderFallbackReason))
		assert.Len(t, p.clock.Sleeps(), 1)
	})
}

// Scenario 4: 503 forever: bounded attempts, fail over; with nowhere to go
// the caller sees the provider's own error, and the SDK does not retry it.
func TestScenario04UnavailableForever(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.SetFault(&gatewaytest.Fault{Status: 503, Message: "primary overloaded"})
		p.fallback.SetFault(&gatewaytest.Fault{Status: 503, Message: "fallback overloaded"})
		_, _, raw, err := p.ask(t, context.Background(), stream)
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Equal(t, "fallback overloaded", apiErr.Message)
		assert.Equal(t, 3, p.primary.Count())
		assert.Equal(t, 3, p.fallback.Count(), "3 attempts each, not multiplied by the SDK's retries")
		assert.Equal(t, "false", raw.Header.Get("X-Should-Retry"))
		assert.Equal(t, "6", raw.Header.Get(gwtransport.HeaderAttempts))
		assert.Len(t, p.clock.Sleeps(), 4)
	})
}

// Scenario 5: TCP reset before the headers: retried, and answered.
func TestScenario05ConnectionReset(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.Enqueue(gatewaytest.Fault{Reset: true})
		text, _, _, err := p.ask(t, context.Background(), stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "primary"), text)
		assert.Equal(t, 2, p.primary.Count())
	})
}

// Scenario 6: the provider accepts and never answers: the attempt timeout
// fires and the gateway fails over at once instead of waiting again.
func TestScenario06SilentProvider(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t, gwtransport.WithModelTimeout(map[string]time.Duration{"openai/gpt-4o": 50 * time.Millisecond}))
		p.primary.SetFault(&gatewaytest.Fault{Hang: true})
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		text, _, _, err := p.ask(t, ctx, stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "fallback"), text)
		assert.Equal(t, 1, p.primary.Count(), "no second wait on a silent target")
		at := trail.Attempts()
		require.Len(t, at, 2)
		assert.Equal(t, gwtransport.NextTarget, at[0].Action)
		assert.Contains(t, at[0].Err.Error(), "timed out after 50ms")
		assert.Empty(t, p.clock.Sleeps())
	})
}

// Scenario 7: headers at once, first token after 20 s: the first-event
// limit fails over.
func TestScenario07SlowFirstToken(t *testing.T) {
	p := newPair(t, gwtransport.WithStreamTimeouts(50*time.Millisecond, time.Second))
	p.primary.SetFault(&gatewaytest.Fault{FirstEventDelay: 20 * time.Second})
	text, model, raw, err := p.ask(t, context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, answer(true, "fallback"), text)
	assert.Equal(t, "fallback-model", model)
	assert.Equal(t, 1, p.primary.Count())
	assert.Contains(t, raw.Header.Get(gwtransport.HeaderFallbackReason), "openai/gpt-4o#1 attempt timed out")
}

// Scenario 8: the stream dies after 40 of 60 tokens: an error, never a
// successful truncated answer.
func TestScenario08StreamCut(t *testing.T) {
	a := server(t, "primary", "key-p", gatewaytest.WithStreamChunks(60))
	a.SetFault(&gatewaytest.Fault{CutAfter: 40})
	c := openaiClient(a, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv())
	text, _, err := streamChat(t, context.Background(), c, "gateway")
	require.Error(t, err)
	assert.True(t, strings.HasSuffix(text, " tok40 "), "the 40 tokens before the cut were delivered: %q", text)
	assert.NotContains(t, text, "tok41")

	// Read at the byte level, the stream ends in ErrStreamTruncated.
	body := rawStream(t, a, []string{"openai/gpt-4o"})
	_, err = io.ReadAll(body)
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
}

// rawStream sends a streamed gateway request through a plain http.Client
// and returns the response body.
func rawStream(t *testing.T, s *gatewaytest.Server, targets []string, opts ...gwtransport.Option) io.ReadCloser {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, targets, append([]gwtransport.Option{noEnv()}, opts...)...)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","stream":true,"messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return res.Body
}

// Scenario 9: the stream stalls for 30 s: the idle limit ends it with an
// error, and the client stays healthy for the next request.
func TestScenario09StreamStall(t *testing.T) {
	p := newPair(t, gwtransport.WithStreamTimeouts(0, 50*time.Millisecond))
	p.primary.Enqueue(gatewaytest.Fault{StallAfter: 2})
	text, _, _, err := p.ask(t, context.Background(), true)
	require.Error(t, err)
	assert.Equal(t, "Hello from primary tok2 ", text)

	text, _, _, err = p.ask(t, context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, fullAnswer, text)

	p.primary.Enqueue(gatewaytest.Fault{StallAfter: 2})
	_, err = io.ReadAll(rawStream(t, p.primary, []string{"openai/gpt-4o"}, gwtransport.WithStreamTimeouts(0, 50*time.Millisecond)))
	assert.ErrorIs(t, err, gwtransport.ErrStreamIdle)
}

// Scenario 10: one malformed SSE event: no garbage presented as success. At
// the start of the stream it fails over; after the commit it ends in an
// error.
func TestScenario10MalformedEvent(t *testing.T) {
	p := newPair(t)
	p.primary.Enqueue(gatewaytest.Fault{MalformedAt: 1})
	text, _, raw, err := p.ask(t, context.Background(), true)
	require.NoError(t, err)
	assert.Equal(t, answer(true, "fallback"), text)
	assert.Contains(t, raw.Header.Get(gwtransport.HeaderFallbackReason), gwtransport.ErrStreamMalformed.Error())

	p.primary.Enqueue(gatewaytest.Fault{MalformedAt: 3})
	text, _, _, err = p.ask(t, context.Background(), true)
	require.Error(t, err)
	assert.Equal(t, "Hello from primary tok2 ", text)

	p.primary.Enqueue(gatewaytest.Fault{MalformedAt: 3})
	_, err = io.ReadAll(rawStream(t, p.primary, []string{"openai/gpt-4o"}))
	assert.ErrorIs(t, err, gwtransport.ErrStreamMalformed)
}

// Scenario 11: a complete stream without [DONE] ends promptly and cleanly,
// whether the provider closes the connection or holds it open.
func TestScenario11NoDoneSentinel(t *testing.T) {
	for _, hold := range []bool{false, true} {
		p := newPair(t, gwtransport.WithStreamFinishGrace(20*time.Millisecond), gwtransport.WithStreamTimeouts(0, time.Minute))
		p.primary.Enqueue(gatewaytest.Fault{NoDone: true, HoldOpen: hold})
		text, _, _, err := p.ask(t, context.Background(), true)
		require.NoError(t, err, "hold open: %v", hold)
		assert.Equal(t, fullAnswer, text)
	}
}

// Scenario 12: 400 context_length_exceeded: no same-model retry; the next
// (larger) target answers.
func TestScenario12ContextLengthExceeded(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "context_length_exceeded", Message: "This model's maximum context length is 8192 tokens."})
		text, _, _, err := p.ask(t, context.Background(), stream)
		require.NoError(t, err)
		assert.Equal(t, answer(stream, "fallback"), text)
		assert.Equal(t, 1, p.primary.Count())
		assert.Empty(t, p.clock.Sleeps())
	})
}

// Scenario 13: 400 content_policy_violation: no retry, no fallback; the
// caller sees the provider's reason.
func TestScenario13ContentPolicy(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t)
		p.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "content_policy_violation", Message: "Your request was rejected by the safety system."})
		_, _, raw, err := p.ask(t, context.Background(), stream)
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, "content_policy_violation", apiErr.Code)
		assert.Equal(t, "Your request was rejected by the safety system.", apiErr.Message)
		assert.Equal(t, 1, p.primary.Count())
		assert.Zero(t, p.fallback.Count())
		assert.Equal(t, "false", raw.Header.Get("X-Should-Retry"))
	})
}

// Scenario 14: the fallback rejects the request (an assistant prefill it
// does not support): the caller sees the primary's real failure, and the
// reason header names both.
func TestScenario14FallbackRejectsPrefill(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		p := newPair(t, gwtransport.WithMaxRetries(0))
		p.primary.SetFault(&gatewaytest.Fault{Status: 503, Message: "primary overloaded"})
		p.fallback.SetFault(&gatewaytest.Fault{Status: 400, Message: "assistant prefill is not supported"})
		_, _, raw, err := p.ask(t, context.Background(), stream)
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Equal(t, "primary overloaded", apiErr.Message)
		assert.Equal(t, "openai/gpt-4o", raw.Header.Get(gwtransport.HeaderTarget))
		assert.Equal(t, "openai/gpt-4o#1 503 server_error; fb/fallback-model#1 400 invalid_request_error", raw.Header.Get(gwtransport.HeaderFallbackReason))
	})
}

// Scenario 15: the primary answers 503 for 60 s, then recovers; a request
// every 4 s is served by the fallback meanwhile and by the primary again
// within 30 s of its recovery. (With the circuit breaker off here; see
// TestScenario15WithBreaker for the default.)
func TestScenario15PrimaryOutageAndRecovery(t *testing.T) {
	p := newPair(t, gwtransport.WithMaxRetries(1), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	recovered, attemptsWhileDown := outage(t, p)
	assert.LessOrEqual(t, recovered, 30*time.Second)
	assert.Equal(t, 30, attemptsWhileDown, "without a breaker, 15 requests try the primary twice each")
}

// outage runs scenario 15 on the injected clock: a request every 4 s for
// 2 minutes, the primary down for the first 60 s. It returns how long
// after its recovery the primary served again, and the attempts the
// primary received while it was down.
func outage(t *testing.T, p *pair) (recovered time.Duration, attemptsWhileDown int) {
	t.Helper()
	start := p.clock.Now()
	recovered = -1
	for tick := time.Duration(0); tick <= 120*time.Second; tick += 4 * time.Second {
		_ = p.clock.Sleep(context.Background(), start.Add(tick).Sub(p.clock.Now()))
		down := tick < 60*time.Second
		if down {
			p.primary.SetFault(&gatewaytest.Fault{Status: 503})
		} else {
			p.primary.SetFault(nil)
		}
		_, model, _, err := p.ask(t, context.Background(), false)
		require.NoError(t, err, "at %s", tick)
		switch {
		case down:
			assert.Equal(t, "fallback-model", model, "at %s", tick)
			attemptsWhileDown = p.primary.Count()
		case model == "gpt-4o" && recovered < 0:
			recovered = tick - 60*time.Second
		}
	}
	require.GreaterOrEqual(t, recovered, time.Duration(0), "the primary was used again")
	return recovered, attemptsWhileDown
}

// Scenario 16: primary 503, fallback answers: the caller sees the
// fallback's model name and usage.
func TestScenario16FallbackModelAndUsage(t *testing.T) {
	p := newPair(t, gwtransport.WithMaxRetries(0))
	p.primary.SetFault(&gatewaytest.Fault{Status: 503})
	var raw *http.Response
	res, err := p.client.Chat.Completions.New(context.Background(), chatParams("gateway"), option.WithResponseInto(&raw))
	require.NoError(t, err)
	assert.Equal(t, "fallback-model", res.Model)
	assert.Equal(t, int64(12), res.Usage.TotalTokens)
	assert.Equal(t, "fb/fallback-model", raw.Header.Get(gwtransport.HeaderTarget))
}

// The attempts of a request that fails at the network level come back as
// an *Error naming each of them.
func TestNetworkFailureErrorNamesEveryAttempt(t *testing.T) {
	a := server(t, "a", "")
	b := server(t, "b", "")
	a.SetFault(&gatewaytest.Fault{Reset: true})
	b.SetFault(&gatewaytest.Fault{Reset: true})
	clock := newFakeClock()
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m1", "pb/m2"}, noEnv(), gwtransport.WithClock(clock), seeded(3),
		gwtransport.WithMaxRetries(1),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, Auth: gwtransport.AuthNone}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	_, err = tr.RoundTrip(req)
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	require.Len(t, gerr.Attempts, 4)
	for i, want := range []struct {
		target string
		try    int
	}{{"pa/m1", 1}, {"pa/m1", 2}, {"pb/m2", 1}, {"pb/m2", 2}} {
		assert.Equal(t, want.target, gerr.Attempts[i].Target)
		assert.Equal(t, want.try, gerr.Attempts[i].Try)
		assert.Zero(t, gerr.Attempts[i].Status)
		assert.Error(t, gerr.Attempts[i].Err)
	}
	assert.Contains(t, err.Error(), `"gateway" failed after 4 attempt(s): pa/m1#1`)
	assert.Len(t, clock.Sleeps(), 2)
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}
