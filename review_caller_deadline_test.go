package gwtransport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRVCallerDeadlineNeverBlamesTheTarget: a caller deadline shorter than
// the first-event limit (streamed) or ending inside a verified body read
// (not streamed), and a cancellation there: the caller gets its context's
// error, one request is sent, and the target's breaker and failures are
// untouched.
func TestRVCallerDeadlineNeverBlamesTheTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream bool
		fault  gatewaytest.Fault
		cancel bool
	}{
		{"stream-first-event-deadline", true, gatewaytest.Fault{FirstEventDelay: 3 * time.Second}, false},
		{"stream-first-event-cancel", true, gatewaytest.Fault{FirstEventDelay: 3 * time.Second}, true},
		{"verified-body-deadline", false, gatewaytest.Fault{BodyStallAfter: 5}, false},
		{"verified-body-cancel", false, gatewaytest.Fault{BodyStallAfter: 5}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := server(t, "primary", "key-p")
			b := server(t, "second", "key-b")
			a.Enqueue(tc.fault)
			c := openaiClient(a, "key-p")
			m := mustInit(t, c, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()), provider("fb", b, "key-b"),
				gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Hour)}))
			var ctx context.Context
			var cancel context.CancelFunc
			if tc.cancel {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(time.Second, cancel)
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), time.Second)
			}
			defer cancel()
			var err error
			if tc.stream {
				_, _, err = streamChat(t, ctx, c, "gateway")
			} else {
				_, err = c.Chat.Completions.New(ctx, chatParams("gateway"))
			}
			require.Error(t, err)
			if tc.cancel {
				assert.True(t, errors.Is(err, context.Canceled), "%v", err)
			} else {
				assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
			}
			assert.Equal(t, 1, a.Count())
			assert.Zero(t, b.Count())
			st := m.Stats()
			assert.Equal(t, gwtransport.BreakerClosed, st[0].Breaker)
			assert.Zero(t, st[0].Failures)
		})
	}
}
