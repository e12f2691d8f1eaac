package gwtransport_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// ProbeHeld (a lease read at a resynchronisation): a closed breaker whose
// last change is older than the opening becomes half-open and waits for
// the other replica's probe, at most this replica's own lease; a breaker
// that changed after that opening is left alone; junk is ignored.
func TestMirrorProbeHeld(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st), gwtransport.WithTimeout(20*time.Second))
	m := st.layouts[0].Mirror
	now := f.clock.Now()
	m.ProbeHeld(0, now.Add(-time.Minute), -time.Second) // junk
	m.ProbeHeld(9, now.Add(-time.Minute), time.Second)  // no such target
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker)
	m.ProbeHeld(0, now.Add(-time.Minute), time.Hour)
	s := f.tr.Stats()[0]
	require.Equal(t, gwtransport.BreakerHalfOpen, s.Breaker)
	require.Equal(t, now.Add(20*time.Second), s.BreakerUntil, "at most this replica's own lease")
	require.Equal(t, "p1/m", served(t, f), "the other replica's probe is out")
	st.mu.Lock()
	require.Zero(t, st.acquires)
	st.mu.Unlock()

	// A closing after the opening the lease probes: left closed.
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerOpen, Target: 1, At: now, Until: now.Add(time.Minute)})
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerClosed, Target: 1, At: now})
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[1].Breaker)
	m.ProbeHeld(1, now.Add(-time.Second), time.Minute)
	assert.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[1].Breaker, "the breaker changed after that opening")
}

// The standing facts carry when the breaker opened, not when they are
// listed: an old opening never counts as newer than a later closing.
func TestMirrorFactsAtWhenOpened(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st))
	m := st.layouts[0].Mirror
	opened := f.clock.Now()
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	require.Equal(t, "p1/m", served(t, f))
	f.clock.mu.Lock()
	f.clock.now = f.clock.now.Add(4 * time.Second)
	f.clock.mu.Unlock()
	facts := m.Facts()
	require.Len(t, facts, 1)
	assert.Equal(t, gwtransport.FactBreakerOpen, facts[0].Kind)
	assert.Equal(t, opened, facts[0].At, "when it opened")
	assert.Equal(t, f.tr.Stats()[0].BreakerUntil, facts[0].Until)
}

// A latency sample beyond the attempt timeout is cut to it: junk from the
// Store never starves a lowest-latency target.
func TestMirrorLatencyBounded(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, gwtransport.WithStore(st), gwtransport.WithTimeout(20*time.Second))
	m := st.layouts[0].Mirror
	require.Zero(t, f.tr.Stats()[1].Latency)
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactLatency, Target: 1, Latency: 1<<63 - 1})
	assert.Equal(t, 20*time.Second, f.tr.Stats()[1].Latency, "the first sample, cut to the attempt timeout")
}
