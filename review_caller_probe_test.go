package gwtransport_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRVCallerContinuationProbeKeepsItsLease: a continuation admitted by
// a half-open breaker is that breaker's probe; while its stream runs, no
// other request is let through ("a half-open breaker lets one probe
// through under a lease"; "a half-open probe that is a stream closes the
// breaker only once complete"). An ordinary committed stream keeps its
// lease until its verdict; a continuation's lease is released as soon as
// it commits, and a second request probes the same target concurrently.
func TestRVCallerContinuationProbeKeepsItsLease(t *testing.T) {
	clock := newFakeClock()
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{},
		gwtransport.WithClock(clock),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	prefer := func() context.Context { return gwtransport.WithPreference(context.Background(), "fb/b-model") }

	// R0 opens fb's breaker.
	rig.b.Enqueue(gatewaytest.Fault{Status: 503})
	got := readSSE(rig.rawChat(t, prefer(), contBody).Body)
	require.NoError(t, got.err)
	require.Equal(t, 1, rig.b.Count())
	require.Equal(t, gwtransport.BreakerOpen, rig.tr.Stats()[1].Breaker)
	_ = clock.Sleep(context.Background(), 11*time.Second)

	// R1 breaks at the primary; its continuation at fb is fb's probe and
	// stays in flight (stalled after 3 tokens, well within the idle limit).
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{StallAfter: 3})
	res1 := rig.rawChat(t, context.Background(), contBody)
	go func() { _, _ = io.ReadAll(res1.Body) }()
	require.Eventually(t, func() bool { return rig.b.Count() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the continuation commits
	assert.Equal(t, gwtransport.BreakerHalfOpen, rig.tr.Stats()[1].Breaker)

	// R2 prefers fb: its probe is in flight, so R2 must not be sent there.
	got = readSSE(rig.rawChat(t, prefer(), contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, 2, rig.b.Count(), "a second probe went to the half-open target while the continuation's probe stream ran")
	res1.Body.Close()
}

// TestRVCallerOrdinaryStreamProbeKeepsItsLease: the same with an ordinary
// (not continued) probe stream: the second request is not let through.
func TestRVCallerOrdinaryStreamProbeKeepsItsLease(t *testing.T) {
	clock := newFakeClock()
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{},
		gwtransport.WithClock(clock),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	prefer := func() context.Context { return gwtransport.WithPreference(context.Background(), "fb/b-model") }
	rig.b.Enqueue(gatewaytest.Fault{Status: 503})
	got := readSSE(rig.rawChat(t, prefer(), contBody).Body)
	require.NoError(t, got.err)
	_ = clock.Sleep(context.Background(), 11*time.Second)
	rig.b.Enqueue(gatewaytest.Fault{StallAfter: 3})
	res1 := rig.rawChat(t, prefer(), contBody)
	go func() { _, _ = io.ReadAll(res1.Body) }()
	require.Equal(t, 2, rig.b.Count())
	time.Sleep(100 * time.Millisecond)
	got = readSSE(rig.rawChat(t, prefer(), contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, 2, rig.b.Count())
	res1.Body.Close()
}
