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

// rvProbeSetup: replicas a and b, p0's breaker open on both and past its
// cooldown, p0 slow (700 ms) and healthy; a sends the probe, in the
// background; it returns when the probe is out.
func rvProbeSetup(t *testing.T, storeOpts ...redisstore.Option) (r *redisServer, a, b *rvReplica, p0 *gatewaytest.Server, wait func() string) {
	r = startRedis(t)
	clock := newFakeClock()
	p0 = gatewaytest.NewServer(gatewaytest.WithName("p0"))
	p1 := gatewaytest.NewServer(gatewaytest.WithName("p1"))
	t.Cleanup(p0.Close)
	t.Cleanup(p1.Close)
	opts := []gwtransport.Option{oneFailureOpens,
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p0.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: p1.URL, Auth: gwtransport.AuthNone})}
	models := []string{"p0/m", "p1/m"}
	so := append([]redisstore.Option{generous}, storeOpts...)
	a = rvNew(t, r.Addr(), clock, models, so, opts...)
	b = rvNew(t, r.Addr(), clock, models, so, opts...)
	p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	clock.Advance(11 * time.Second)
	p0.SetFault(&gatewaytest.Fault{Delay: 700 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	var aGot string
	go func() {
		defer wg.Done()
		aGot, _ = a.send(context.Background(), p0.URL)
	}()
	require.Eventually(t, func() bool { return p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	return r, a, b, p0, func() string { wg.Wait(); return aGot }
}

// The subscription (only it) drops: Redis answers commands all along. The
// subscriber's error marks the whole Store down, so the request path stops
// asking Redis for the probe lease and grants it locally: B probes while
// A's probe is out.
func TestReviewSubscriptionDropGrantsSecondProbe(t *testing.T) {
	r, _, b, p0, wait := rvProbeSetup(t, redisstore.WithRetry(time.Second))
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	require.NoError(t, cl.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err())
	time.Sleep(50 * time.Millisecond)
	got, err := b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got, "A's probe is out (its lease is in Redis, which answers): B falls back")
	assert.Equal(t, "p0/m", wait())
	assert.Equal(t, 2, p0.Count(), "the failure, one probe")
}

// FLUSHALL while A probes: the lease is gone from Redis, and nothing
// writes it back (no replica reconnected, so none resynchronises): B
// takes a lease of its own and probes too.
func TestReviewFlushAllGrantsSecondProbe(t *testing.T) {
	r, _, b, p0, wait := rvProbeSetup(t)
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	require.NoError(t, cl.FlushAll(context.Background()).Err())
	got, err := b.send(context.Background(), p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got, "A's probe is out: B falls back")
	assert.Equal(t, "p0/m", wait())
	assert.Equal(t, 2, p0.Count(), "the failure, one probe")
}
