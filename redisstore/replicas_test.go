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

// generous is the request-path bound of the tests that check what is
// shared (not how fast): a loaded machine under -race must not turn a
// slow answer into a local one.
var generous = redisstore.WithTimeout(500 * time.Millisecond)

// A breaker opened by one replica is open for all, within milliseconds,
// and the others stop sending to the target at once.
func TestReplicasShareBreakerOpen(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 3, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous}, gateway: []gwtransport.Option{oneFailureOpens}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	got, err := c.send(t, 0)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Equal(t, gwtransport.BreakerOpen, c.breakerOf(0, "p0/m"))
	for i := 1; i < 3; i++ {
		require.Eventually(t, func() bool { return c.breakerOf(i, "p0/m") == gwtransport.BreakerOpen }, 2*time.Second, time.Millisecond, "replica %d", i)
		assert.Equal(t, c.clock.Now().Add(10*time.Second), c.stat(i, "p0/m").BreakerUntil, "replica %d", i)
	}
	for i := 0; i < 6; i++ {
		got, err := c.send(t, i%3)
		require.NoError(t, err)
		require.Equal(t, "p1/m", got)
	}
	require.Equal(t, 1, c.servers[0].Count(), "no replica sends to the open target")
	require.Equal(t, 7, c.servers[1].Count())
}

// Past the cooldown exactly one replica probes: concurrent requests at
// three replicas send one probe, the others fall back; its success closes
// the breaker everywhere.
func TestReplicasOneProbeAtATime(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 3, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous}, gateway: []gwtransport.Option{oneFailureOpens}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	_, err := c.send(t, 0)
	require.NoError(t, err)
	for i := 1; i < 3; i++ {
		require.Eventually(t, func() bool { return c.breakerOf(i, "p0/m") == gwtransport.BreakerOpen }, 2*time.Second, time.Millisecond)
	}
	c.clock.Advance(11 * time.Second)
	c.servers[0].SetFault(&gatewaytest.Fault{Delay: 400 * time.Millisecond}) // the probe is slow, and succeeds
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for i := 0; i < 15; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.send(t, i%3)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				served[err.Error()]++
				return
			}
			served[got]++
		}()
	}
	wg.Wait()
	require.Equal(t, map[string]int{"p0/m": 1, "p1/m": 14}, served)
	require.Equal(t, 2, c.servers[0].Count(), "the failure, then one probe")
	for i := 0; i < 3; i++ {
		require.Eventually(t, func() bool { return c.breakerOf(i, "p0/m") == gwtransport.BreakerClosed }, 2*time.Second, time.Millisecond, "replica %d %+v", i, c.stat(i, "p0/m"))
	}
}

// Round-robin positions are one shared counter: N requests spread over the
// replicas, concurrently, give each target N/targets exactly. (Each
// replica counting on its own gives 4, 3, 3 per replica here: 12, 9, 9.)
func TestReplicasRoundRobinEven(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 3, providers: 3, addr: r.Addr(), store: []redisstore.Option{generous},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.send(t, i%3)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				got = err.Error()
			}
			served[got]++
		}()
	}
	wg.Wait()
	require.Equal(t, map[string]int{"p0/m": 10, "p1/m": 10, "p2/m": 10}, served)
}

// A key rested by one replica (429 with Retry-After) is skipped by all.
func TestReplicasKeyRestSkippedByAll(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 3, providers: 1, addr: r.Addr(), keys: []string{"key-one", "key-two"},
		store: []redisstore.Option{generous}, gateway: []gwtransport.Option{gwtransport.WithMaxRetries(1)}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "60"}})
	_, err := c.send(t, 0)
	require.NoError(t, err)
	j := c.servers[0].Journal()
	require.Len(t, j, 2)
	rested := j[0].Header.Get("Authorization")
	require.Equal(t, gatewaytest.Mask("Bearer key-one"), rested)
	for i := 1; i < 3; i++ {
		require.Eventually(t, func() bool {
			ks := c.stat(i, "p0/m").Keys
			return len(ks) == 2 && ks[0].State == "resting"
		}, 2*time.Second, time.Millisecond, "replica %d", i)
		assert.Equal(t, c.clock.Now().Add(time.Minute), c.stat(i, "p0/m").Keys[0].Until)
	}
	for i := 0; i < 6; i++ {
		_, err := c.send(t, i%3)
		require.NoError(t, err)
	}
	for _, req := range c.servers[0].Journal()[2:] {
		require.Equal(t, gatewaytest.Mask("Bearer key-two"), req.Header.Get("Authorization"))
	}
}

// Reconfigure with the same configuration keeps the shared state: the new
// configuration's mirror reads it back from Redis (in memory alone a
// Reconfigure starts afresh); a different configuration shares nothing
// with it.
func TestReconfigureKeepsSharedState(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous}, gateway: []gwtransport.Option{oneFailureOpens}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	_, err := c.send(t, 0)
	require.NoError(t, err)
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	require.Eventually(t, func() bool {
		keys, _ := cl.Keys(context.Background(), "gwtransport:*:b:0").Result()
		return len(keys) == 1
	}, 5*time.Second, time.Millisecond)
	opts := func(extra ...gwtransport.Option) []gwtransport.Option {
		o := []gwtransport.Option{
			gwtransport.WithEnv(func(string) (string, bool) { return "", false }), gwtransport.WithClock(c.clock),
			gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0), gwtransport.WithStore(c.replicas[0].store), oneFailureOpens,
			gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: c.servers[0].URL, Auth: gwtransport.AuthNone}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: c.servers[1].URL, Auth: gwtransport.AuthNone}),
		}
		return append(o, extra...)
	}
	require.NoError(t, gwtransport.Reconfigure(c.replicas[0].tr, []string{"p0/m", "p1/m"}, opts()...))
	require.Eventually(t, func() bool { return c.breakerOf(0, "p0/m") == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	// Read back through Redis's clock: the time left, less the real time
	// between the write and the read.
	until := c.stat(0, "p0/m").BreakerUntil
	assert.WithinDuration(t, c.clock.Now().Add(10*time.Second), until, time.Second)
	assert.False(t, until.After(c.clock.Now().Add(10*time.Second)), "never longer")

	require.NoError(t, gwtransport.Reconfigure(c.replicas[0].tr, []string{"p0/m", "p1/m"}, opts(gwtransport.WithRouteName("other"))...))
	time.Sleep(50 * time.Millisecond) // a resync would have happened
	require.Equal(t, gwtransport.BreakerClosed, c.breakerOf(0, "p0/m"), "another configuration, another namespace")
}
