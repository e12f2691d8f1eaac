package gwtransport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// While a breaker is open, failures reported by requests that were already
// in flight extend the cooldown when they ask for a longer wait, and never
// shorten it.
func TestBreakerCooldownOnlyExtends(t *testing.T) {
	b := newBreaker(Breaker{ConsecutiveFailures: 1, Cooldown: Duration(10 * time.Second)})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at         time.Duration
		retryAfter time.Duration
		want       time.Duration // openUntil - t0
	}{
		{0, 60 * time.Second, 60 * time.Second},               // trips: the Retry-After beats the cooldown
		{time.Second, 5 * time.Second, 60 * time.Second},      // shorter: kept
		{2 * time.Second, 0, 60 * time.Second},                // plain cooldown, shorter: kept
		{3 * time.Second, 90 * time.Second, 93 * time.Second}, // longer: extended
	}
	for _, s := range steps {
		st, _ := b.record(t0.Add(s.at), verdictFailure, s.retryAfter)
		assert.Equal(t, BreakerOpen, st)
		_, until := b.snapshot(t0.Add(s.at))
		assert.Equal(t, t0.Add(s.want), until, "after the failure at +%s", s.at)
	}
	blocked, _, _ := b.blocked(t0.Add(92 * time.Second))
	assert.True(t, blocked)
	blocked, _, _ = b.blocked(t0.Add(93 * time.Second))
	assert.False(t, blocked, "a probe may go at the end of the cooldown")
	ok, probe, halfOpened := b.admit(t0.Add(93*time.Second), time.Minute)
	assert.True(t, ok)
	assert.True(t, halfOpened)
	assert.NotZero(t, probe.id)
	blocked, _, _ = b.blocked(t0.Add(93 * time.Second))
	assert.True(t, blocked, "one probe at a time")
	st, changed := b.record(t0.Add(94*time.Second), verdictSuccess, 0)
	assert.True(t, changed)
	assert.Equal(t, BreakerClosed, st)
}
