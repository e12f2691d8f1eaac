package gwtransport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewCallerDeadlineNeverBlamesTarget: body stalls, slow first token,
// hangs, stream stalls: each ended by the caller's 80 ms deadline (limits
// are all 1 s) returns context.DeadlineExceeded and leaves the breaker
// (ConsecutiveFailures 1) closed with no failure counted.
func TestReviewCallerDeadlineNeverBlamesTarget(t *testing.T) {
	faults := []gatewaytest.Fault{
		{BodyStallAfter: 30}, {Hang: true}, {FirstEventDelay: time.Second}, {StallAfter: 2},
	}
	for i, f := range faults {
		p := server(t, "primary", "key-p")
		c := openaiClient(p, "key-p")
		mgr := mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(),
			gwtransport.WithTimeout(time.Second), gwtransport.WithStreamTimeouts(time.Second, time.Second), gwtransport.WithBodyIdle(time.Second),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Minute)}))
		p.SetFault(&f)
		stream := f.FirstEventDelay > 0 || f.StallAfter > 0
		for k := 0; k < 2; k++ {
			ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
			var err error
			if stream {
				_, _, err = streamChat(t, ctx, c, "gateway")
			} else {
				_, err = c.Chat.Completions.New(ctx, chatParams("gateway"))
			}
			cancel()
			assert.True(t, errors.Is(err, context.DeadlineExceeded), "fault %d: %v", i, err)
		}
		st := mgr.Stats()[0]
		assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "fault %d", i)
		assert.Zero(t, st.Failures, "fault %d", i)
	}
}
