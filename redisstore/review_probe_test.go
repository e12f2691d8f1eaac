package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// gatedPipelines holds the Store's background writes while its gate is
// set (a slow link to Redis, made deterministic): the request path's
// scripts are not pipelined and go through.
type gatedPipelines struct {
	mu   sync.Mutex
	gate chan struct{}
}

func (h *gatedPipelines) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
}

func (h *gatedPipelines) let() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gate)
	h.gate = nil
}

func (h *gatedPipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *gatedPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *gatedPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		g := h.gate
		h.mu.Unlock()
		if g != nil {
			<-g
		}
		return next(context.WithoutCancel(ctx), cmds)
	}
}

// A probe cancelled by its caller queues the release of its lease; the
// next request on the same replica probes again at once (the lease in
// Redis is still its own, so it is granted). Then the queued release
// runs: it deletes the replica's NEW lease and tells every replica the
// probe is free, so another replica probes while the second probe is
// still out: two probes at a time.
func TestReviewQueuedReleaseFreesTheNextProbe(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	opts := append([]gwtransport.Option{oneFailureOpens}, provs...)
	gate := &gatedPipelines{}
	a := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous, redisstore.WithHook(gate)}, opts...)
	b := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous}, opts...)

	p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	clock.Advance(11 * time.Second)

	p0.SetFault(&gatewaytest.Fault{Delay: 2 * time.Second}) // probes are slow (and succeed)
	gate.hold()                                             // A's writes wait (slow link)
	// A's first probe: its caller gives up after 100 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = a.send(ctx, p0.URL)
	cancel()
	require.Error(t, err)
	// A's next request probes again (its lease in Redis is still its own).
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), p0.URL)
	}()
	require.Eventually(t, func() bool { return p0.Count() == 3 }, 2*time.Second, time.Millisecond, "A's second probe is out")
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	pkey := "gwtransport:" + a.st.l.Fingerprint + ":p:0"
	require.EqualValues(t, 1, cl.Exists(context.Background(), pkey).Val(), "A's second probe holds the lease")
	gate.let() // the queued release is written
	require.Eventually(t, func() bool { return a.st.Stats().Published >= 1 }, 2*time.Second, time.Millisecond, "the queued release ran")
	time.Sleep(100 * time.Millisecond)
	require.EqualValues(t, 1, cl.Exists(context.Background(), pkey).Val(), "the stale release names the first lease: the second probe's lease stays")
	got, err = b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got, "A's second probe is out: B must fall back, not probe too")
	wg.Wait()
	assert.Equal(t, "p0/m", aGot)
	assert.Equal(t, 3, p0.Count(), "the failure, the cancelled probe, one probe at a time")
}

// Clock skew: replica A's clock is 15 s behind B's (cooldown 10 s). A
// opens the breaker of p0; the fact's instant is A's now+10 s, already past
// on B's clock, so B ignores it and keeps sending to the failing target.
func TestReviewSkewedReplicaOpeningIgnored(t *testing.T) {
	r := startRedis(t)
	base := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	opts := append([]gwtransport.Option{oneFailureOpens}, provs...)
	a := rvNew(t, r.Addr(), &rvSkewClock{base: base, skew: -15 * time.Second}, models, []redisstore.Option{generous}, opts...)
	b := rvNew(t, r.Addr(), base, models, []redisstore.Option{generous}, opts...)

	p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Equal(t, gwtransport.BreakerOpen, a.stat("p0/m").Breaker)
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, gwtransport.BreakerOpen, b.stat("p0/m").Breaker, "a breaker opened by one replica is open on every replica")
}

// Clock skew: replica A's clock is 10 s behind B's, the probe lease is
// 5 s (attempt timeout). A takes the lease and probes (slowly); B, past
// the cooldown too, reads A's lease as lapsed on its own clock and probes
// as well: two probes at a time.
func TestReviewSkewedReplicaTwoProbes(t *testing.T) {
	r := startRedis(t)
	base := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	opts := append([]gwtransport.Option{oneFailureOpens, gwtransport.WithTimeout(5 * time.Second)}, provs...)
	a := rvNew(t, r.Addr(), &rvSkewClock{base: base, skew: -10 * time.Second}, models, []redisstore.Option{generous}, opts...)
	b := rvNew(t, r.Addr(), base, models, []redisstore.Option{generous}, opts...)

	// A sees p0 fail: open on A, and (A's fact) on B, whose requests go
	// to p1.
	p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	got, err = b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	base.Advance(time.Minute) // past every cooldown, on both clocks

	p0.SetFault(&gatewaytest.Fault{Delay: 700 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), p0.URL)
	}()
	require.Eventually(t, func() bool { return p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	got, err = b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got, "A probes: B falls back")
	wg.Wait()
	assert.Equal(t, "p0/m", aGot)
	assert.Equal(t, 2, p0.Count(), "the failure, then one probe")
}

// Clock skew the other way: replica A's clock is an hour ahead. Its
// opening of p0 (cooldown 10 s) keeps p0 out of B for an hour and 10 s on
// B's clock: a remote fact is applied uncapped (not bounded by Cooldown or
// WithMaxRest, 5 min).
func TestReviewSkewedReplicaAheadOpensForAnHour(t *testing.T) {
	r := startRedis(t)
	base := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	opts := append([]gwtransport.Option{oneFailureOpens}, provs...)
	a := rvNew(t, r.Addr(), &rvSkewClock{base: base, skew: time.Hour}, models, []redisstore.Option{generous}, opts...)
	b := rvNew(t, r.Addr(), base, models, []redisstore.Option{generous}, opts...)
	p0.Enqueue(gatewaytest.Fault{Status: 500})
	_, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	until := b.stat("p0/m").BreakerUntil
	assert.LessOrEqual(t, until.Sub(base.Now()), gwtransport.DefaultMaxRest, "B keeps p0 out until %s (B's now %s)", until, base.Now())
}
