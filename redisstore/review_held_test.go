package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Attacks that held (these pass): kept as evidence.

// Two replicas, same prefix, different breaker configurations: nothing is
// shared between them.
func TestReviewHeldDifferentBreakersApart(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	a := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous}, append(provs, oneFailureOpens)...)
	b := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous}, append(provs,
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 3, Cooldown: gwtransport.Duration(10 * time.Second)}))...)
	require.NotEqual(t, a.st.l.Fingerprint, b.st.l.Fingerprint)
	p0.Enqueue(gatewaytest.Fault{Status: 500})
	_, err := a.send(context.Background(), p0.URL)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, gwtransport.BreakerClosed, b.stat("p0/m").Breaker)
}

// Junk on the channel that does not parse, or names indexes out of range,
// or unknown kinds: ignored, no panic, requests succeed.
func TestReviewHeldMalformedMessages(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), keys: []string{"k1"}, store: []redisstore.Option{generous}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	fp := c.replicas[0].store.l.Fingerprint
	for _, m := range []string{"", "|||", "garbage", fp + "|x|1|-1|0|0|0|99999999999999999|0", fp + "|x|1|999|0|0|0|99999999999999999|0",
		fp + "|x|4|0|-1|0|0|1|0", fp + "|x|4|0|0|99|0|1|0", fp + "|x|3|0|5|-7|0|1|0", fp + "|x|77|0|0|0|0|0|0", fp + "|x|100|-5|0|0|0|0|0",
		fp + "|x|5|0|0|0|0|0|-5", fp + "|x|1|0|0|0|abc|1|0", fp + "|x|1|0|0|0|0|1|0|extra"} {
		require.NoError(t, cl.Publish(context.Background(), "gwtransport:events:0", m).Err())
	}
	require.NoError(t, cl.Set(context.Background(), "gwtransport:"+fp+":b:1", "garbage", time.Minute).Err())
	require.NoError(t, cl.LPush(context.Background(), "gwtransport:"+fp+":b:0", "x").Err())
	require.NoError(t, cl.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err())
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 10; i++ {
		_, err := c.send(t, 0)
		require.NoError(t, err)
	}
}

// The prober dies (its request hangs, its replica never releases): past
// the lease another replica probes.
func TestReviewHeldDeadProberLeaseLapses(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 2, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous},
		gateway: []gwtransport.Option{oneFailureOpens, gwtransport.WithTimeout(5 * time.Second)}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	_, err := c.send(t, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.breakerOf(1, "p0/m") == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	c.clock.Advance(11 * time.Second)
	// replica 0 takes the lease straight from the session, as a probe would, and "dies"
	ok, _ := c.replicas[0].store.sess.AcquireProbe(0, c.clock.Now().Add(5*time.Second))
	require.True(t, ok)
	got, err := c.send(t, 1)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got, "the lease is held")
	c.clock.Advance(6 * time.Second)
	got, err = c.send(t, 1)
	require.NoError(t, err)
	assert.Equal(t, "p0/m", got, "the lease lapsed: replica 1 probes")
}
