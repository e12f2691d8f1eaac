package gwtransport_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func slowScript() string {
	var b strings.Builder
	for _, w := range []string{"a ", "b ", "c ", "d ", "e"} {
		b.WriteString(`data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + w + `"},"finish_reason":null}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

// TestReviewWaitForStreamProbeEndsWithIt: one target, breaker open; after
// the cooldown, request 1 probes with a slow stream (~700 ms on the
// provider). Request 2 arrives while that probe is in flight: it waits
// ("half-open with another request's probe in flight"), and "a wait for a
// probe in flight ends as soon as the probe ends". So request 2 ends soon
// after request 1's stream, not at the probe lease (the attempt timeout, 3 s).
func TestReviewWaitForStreamProbeEndsWithIt(t *testing.T) {
	p := server(t, "primary", "key-p")
	c := openaiClient(p, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithTimeout(3*time.Second),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithMaxRetryWait(10*time.Second),
	)
	p.Enqueue(gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"},
		gatewaytest.Fault{Script: slowScript(), ScriptPause: 120 * time.Millisecond})
	_, _, err := chat(t, c, "gateway")
	require.Error(t, err)
	time.Sleep(80 * time.Millisecond)

	started := make(chan struct{})
	done1 := make(chan time.Time, 1)
	go func() {
		s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
		defer s.Close()
		first := true
		for s.Next() {
			if first {
				close(started)
				first = false
			}
		}
		done1 <- time.Now()
		if s.Err() != nil {
			t.Errorf("stream 1: %v", s.Err())
		}
	}()
	<-started
	t0 := time.Now()
	res, _, err := chat(t, c, "gateway")
	d := time.Since(t0)
	end1 := <-done1
	require.NoError(t, err)
	_ = res
	t.Logf("request 2 took %v; it ended %v after stream 1", d, time.Since(end1))
	assert.Less(t, d, 2500*time.Millisecond, "request 2 should end soon after the probe stream ends (~600ms), not at the 3s lease")
}

// TestReviewWaitForStreamProbeClosedEarly: the same, but the caller of
// request 1 closes its stream after the first chunk ("closed by the caller
// first, nothing"): the lease must be freed then, and request 2 go at once.
func TestReviewWaitForStreamProbeClosedEarly(t *testing.T) {
	p := server(t, "primary", "key-p")
	c := openaiClient(p, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithTimeout(3*time.Second),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithMaxRetryWait(10*time.Second),
	)
	p.Enqueue(gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"},
		gatewaytest.Fault{Script: slowScript(), ScriptPause: 300 * time.Millisecond})
	_, _, err := chat(t, c, "gateway")
	require.Error(t, err)
	time.Sleep(80 * time.Millisecond)

	s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
	require.True(t, s.Next(), "%v", s.Err())
	go func() { time.Sleep(100 * time.Millisecond); s.Close() }()
	t0 := time.Now()
	_, _, err = chat(t, c, "gateway")
	d := time.Since(t0)
	require.NoError(t, err)
	assert.Less(t, d, 1000*time.Millisecond, "closing the probe stream frees its lease; request 2 should not wait for the 3s lease")
	_, _ = io.Discard.Write(nil)
}
