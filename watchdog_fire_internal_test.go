package gwtransport

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWatchdogFireEndsTheContextBeforeDisarmSeesIt: however late the
// firing goroutine is between marking the attempt's limit as fired and
// ending its context, an attempt loop that learns of the fire (disarm
// reports false) finds the context ended, so attemptContext never hands
// it to the next attempt (whose late cancel would end that attempt,
// blamed on its own target). Without the order, disarm returned while
// the context was alive.
func TestWatchdogFireEndsTheContextBeforeDisarmSeesIt(t *testing.T) {
	marked := make(chan struct{})
	watchdogFiring = func() {
		close(marked)
		time.Sleep(20 * time.Millisecond) // the firing goroutine descheduled
	}
	defer func() { watchdogFiring = nil }()
	var w watchdog
	defer w.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.arm(time.Now(), time.Millisecond, 0, cancel)
	select {
	case <-marked:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "the limit never fired")
	}
	assert.False(t, w.disarm(), "the limit fired")
	assert.Error(t, ctx.Err(), "disarm saw the fire while the attempt's context was alive")
	r := &run{mark: &attemptCtx{context.Background()}}
	r.actx, r.actxCancel, r.actxMark = ctx, cancel, r.mark
	next, _ := r.attemptContext(r.mark)
	assert.NotSame(t, ctx, next, "the fired attempt's context is not reused")
	assert.NoError(t, next.Err())
	r.endAttempts()
}
