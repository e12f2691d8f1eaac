package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Attacks that held (these pass), kept as evidence.

// The same keys in another order on two replicas (a rotation in
// progress, a list edited by hand): a rest names the key, not its place.
func TestReview2HeldKeyPoolsInOtherOrder(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	t.Cleanup(p.Close)
	mk := func(keys ...string) *rvReplica {
		return rvNew(t, r.Addr(), clock, []string{"p0/m"}, []redisstore.Option{generous},
			gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p.URL, APIKeys: keys}))
	}
	a := mk("sk-first-key-1111", "sk-second-key-2222")
	b := mk("sk-second-key-2222", "sk-first-key-1111")
	require.Equal(t, a.st.l.Fingerprint, b.st.l.Fingerprint)
	p.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}})
	_, _ = a.send(context.Background(), p.URL)
	require.Equal(t, "resting", a.stat("p0/m").Keys[0].State)
	require.Eventually(t, func() bool { return b.stat("p0/m").Keys[1].State == "resting" }, 3*time.Second, time.Millisecond)
	assert.Equal(t, "active", b.stat("p0/m").Keys[0].State)
}

// The same key in two providers: a rest of one is not a rest of the
// other (facts name the provider and the key).
func TestReview2HeldSameKeyTwoProviders(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p0 := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	p1 := gatewaytest.NewServer(gatewaytest.WithName("p1"))
	t.Cleanup(p0.Close)
	t.Cleanup(p1.Close)
	opts := []gwtransport.Option{
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p0.URL, APIKeys: []string{"sk-shared-key-9999"}}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: p1.URL, APIKeys: []string{"sk-shared-key-9999"}})}
	a := rvNew(t, r.Addr(), clock, []string{"p0/m", "p1/m"}, []redisstore.Option{generous}, opts...)
	b := rvNew(t, r.Addr(), clock, []string{"p0/m", "p1/m"}, []redisstore.Option{generous}, opts...)
	p0.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}})
	got, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Keys[0].State == "resting" }, 3*time.Second, time.Millisecond)
	assert.Equal(t, "active", b.stat("p1/m").Keys[0].State)
	got, err = b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got)
}

// A prober whose caller gives up: its release frees the lease on every
// replica, and the next probe is the other replica's, once.
func TestReview2HeldCancelledProbeFreesOthers(t *testing.T) {
	w := r2NewWorld(t)
	a := w.mk(t)
	b := w.mk(t)
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	_, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	w.clock.Advance(11 * time.Second)
	w.p0.SetFault(&gatewaytest.Fault{Delay: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = a.send(ctx, w.p0.URL)
	cancel()
	require.Error(t, err)
	w.p0.SetFault(nil)
	require.Eventually(t, func() bool {
		st := b.stat("p0/m")
		return st.Breaker == gwtransport.BreakerHalfOpen && st.BreakerUntil.IsZero()
	}, 3*time.Second, time.Millisecond, "B heard the release: %+v", b.stat("p0/m"))
	got, err := b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p0/m", got, "B probes at once")
	require.Eventually(t, func() bool { return a.stat("p0/m").Breaker == gwtransport.BreakerClosed }, 3*time.Second, time.Millisecond)
}

// A wrong password, Redis refusing commands, Redis killed and back: the
// logs (debug level) never show the password or the API key.
func TestReview2HeldNoSecretInLogs(t *testing.T) {
	r := startRedis(t, "--requirepass", "right-pw-7777")
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	t.Cleanup(p.Close)
	clock := newFakeClock()
	for _, pw := range []string{"wrong-pw-hunter2", "right-pw-7777"} {
		st, err := redisstore.New(redisstore.WithAddr(r.Addr()), redisstore.WithPassword(pw), redisstore.WithRetry(20*time.Millisecond))
		require.NoError(t, err)
		logs := &syncBuffer{}
		tr, err := gwtransport.NewTransport(nil, []string{"p0/m"}, gwtransport.WithClock(clock), gwtransport.WithStore(st),
			gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
			gwtransport.WithStrategy(gwtransport.StrategyRoundRobin),
			gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p.URL, APIKeys: []string{"sk-secret-api-key-5555"}}),
			gwtransport.WithLogger(newDebugLogger(logs)))
		require.NoError(t, err)
		rep := &rvReplica{tr: tr}
		for i := 0; i < 5; i++ {
			_, _ = rep.send(context.Background(), p.URL)
			time.Sleep(30 * time.Millisecond)
		}
		require.NoError(t, st.Close())
		out := logs.String() + fmtAll(st)
		for _, secret := range []string{"hunter2", "right-pw-7777", "sk-secret-api-key-5555"} {
			assert.NotContains(t, out, secret)
		}
	}
}
