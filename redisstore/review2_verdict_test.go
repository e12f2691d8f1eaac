package redisstore_test

import (
	"context"
	"net"
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

// B's subscription drops while A probes (a network blip, a proxy's idle
// cut: "a dropped subscription alone is no outage"). A's probe succeeds
// and A publishes the closing while B is not subscribed. B resubscribes
// and resynchronises, but the resynchronisation reads only open-untils
// and rests: a closing is the absence of a key, so B never learns it.
// B keeps the healthy target out, waiting for A's lease (the attempt
// timeout, 60 s by default) although the probe's verdict is in.
func TestReview2ClosingLostAcrossResubscription(t *testing.T) {
	w := r2NewWorld(t, r2ShortCooldown)
	w.real = true // Redis keeps facts in its own (real) clock
	a := w.mk(t)
	dials := &r2GatedDials{}
	b := w.mk(t, redisstore.WithHook(dials))
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	time.Sleep(600 * time.Millisecond) // past the cooldown
	w.p0.SetFault(&gatewaytest.Fault{Delay: 700 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), w.p0.URL)
	}()
	require.Eventually(t, func() bool { return w.p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerHalfOpen }, 2*time.Second, time.Millisecond, "B heard the announcement")

	cl := redis.NewClient(&redis.Options{Addr: w.r.Addr()})
	defer cl.Close()
	resyncs := b.st.Stats().Resyncs
	dials.hold() // B's reconnection takes a moment (a slow network)
	require.NoError(t, cl.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err())
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // A's closing is published
	dials.let()
	require.Equal(t, "p0/m", aGot, "A's probe succeeded")
	require.Equal(t, gwtransport.BreakerClosed, a.stat("p0/m").Breaker)
	require.Eventually(t, func() bool { return b.st.Stats().Resyncs > resyncs && b.st.Connected() }, 5*time.Second, time.Millisecond, "B resubscribed and resynchronised")
	time.Sleep(100 * time.Millisecond)
	st := b.stat("p0/m")
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "the probe's verdict closes the breaker on every replica; B keeps p0 out for %s more", time.Until(st.BreakerUntil).Round(time.Second))
	got, err = b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p0/m", got, "p0 is healthy and its breaker closed: B sends to it")
}

// r2GatedDials holds the client's new connections while its gate is set.
type r2GatedDials struct {
	mu   sync.Mutex
	gate chan struct{}
}

func (h *r2GatedDials) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
}

func (h *r2GatedDials) let() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gate)
	h.gate = nil
}

func (h *r2GatedDials) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.mu.Lock()
		g := h.gate
		h.mu.Unlock()
		if g != nil {
			<-g
		}
		return next(ctx, network, addr)
	}
}
func (h *r2GatedDials) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *r2GatedDials) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A configuration reloaded while a probe is out (a gwproxy SIGHUP, a
// Reconfigure with the same models and options: same fingerprint, same
// namespace). The probe's request keeps the configuration it started with
// and its session; the Store dropped that session's changes when the new
// configuration was bound. The probe succeeds, the closing is never
// published: the other replica keeps the healthy target out for the
// lease (the attempt timeout, 60 s by default) though the verdict is in.
func TestReview2ProbeVerdictLostAcrossReconfigure(t *testing.T) {
	w := r2NewWorld(t, r2ShortCooldown)
	w.real = true
	a := w.mk(t)
	b := w.mk(t)
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	time.Sleep(600 * time.Millisecond) // past the cooldown
	w.p0.SetFault(&gatewaytest.Fault{Delay: 700 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), w.p0.URL)
	}()
	require.Eventually(t, func() bool { return w.p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerHalfOpen }, 2*time.Second, time.Millisecond, "B heard the announcement")

	// A reloads the same configuration.
	same := append([]gwtransport.Option{
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithClock(r2RealClock{}), gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0),
		gwtransport.WithStore(a.st)}, w.opts...)
	fp := a.st.l.Fingerprint
	require.NoError(t, gwtransport.Reconfigure(a.tr, w.models, same...))
	require.Equal(t, fp, a.st.l.Fingerprint, "the same configuration")
	wg.Wait()
	require.Equal(t, "p0/m", aGot, "A's probe succeeded")
	time.Sleep(300 * time.Millisecond) // the closing would have reached B
	st := b.stat("p0/m")
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "the probe's verdict closes the breaker on every replica; B keeps p0 out for %s more", time.Until(st.BreakerUntil).Round(time.Second))
	got, err = b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p0/m", got, "p0 is healthy: B sends to it")
}

// Redis is down a while (an outage: each replica goes on alone). B opens
// p0's breaker, A opens it 5 s later, B's probe succeeds 6 s after that:
// B's closing is the latest change. Redis returns, and each replica
// writes back what it has: A's opening goes out as its standing fact,
// stamped "now" rather than when it happened, so it counts as newer than
// B's closing: B reopens p0 on an old failure ("a fact older than the
// breaker's last change is ignored").
func TestReview2StaleOpeningReopensAfterOutage(t *testing.T) {
	w := r2NewWorld(t)
	a := w.mk(t)
	b := w.mk(t)
	w.r.kill()
	require.Eventually(t, func() bool { return !a.st.Connected() && !b.st.Connected() }, 5*time.Second, time.Millisecond)

	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	w.clock.Advance(5 * time.Second)
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err = a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	w.clock.Advance(6 * time.Second) // B's cooldown is over, A's is not
	got, err = b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p0/m", got, "B's probe succeeds")
	require.Equal(t, gwtransport.BreakerClosed, b.stat("p0/m").Breaker)

	w.r.restart()
	require.Eventually(t, func() bool { return a.st.Connected() && b.st.Connected() }, 5*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the writes and their messages
	st := b.stat("p0/m")
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "A's opening (5 s before B's closing) is older than B's last change: B keeps p0 closed (until %s)", st.BreakerUntil)
	got, err = b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p0/m", got, "p0 is healthy and was closed last")
}

// Redis restarted mid-probe (a failover, a crash): every replica loses its
// subscription and resynchronises. A (which tries Redis again every
// 20 ms) is back first, and its probe's closing goes out before B (every
// 800 ms) has resubscribed; B's resynchronisation reads no closing (a
// closing is a deleted key), so B keeps waiting on A's lease, 60 s,
// with p0 healthy and closed on A.
func TestReview2RedisRestartedMidProbeLosesVerdict(t *testing.T) {
	w := r2NewWorld(t)
	a := w.mk(t)
	b := w.mk(t, redisstore.WithRetry(800*time.Millisecond))
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	w.clock.Advance(11 * time.Second)
	w.p0.SetFault(&gatewaytest.Fault{Delay: 500 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), w.p0.URL)
	}()
	require.Eventually(t, func() bool { return w.p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerHalfOpen }, 2*time.Second, time.Millisecond, "B heard the announcement")
	w.r.kill()
	time.Sleep(100 * time.Millisecond)
	w.r.restart()
	wg.Wait()
	require.Equal(t, "p0/m", aGot, "A's probe succeeded")
	require.Equal(t, gwtransport.BreakerClosed, a.stat("p0/m").Breaker)
	require.Eventually(t, func() bool { return a.st.Connected() && b.st.Connected() }, 5*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	st := b.stat("p0/m")
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "the probe's verdict closes the breaker on every replica; B keeps p0 out for %s more", st.BreakerUntil.Sub(w.clock.Now()))
}
