package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// rvSpread sends n requests through replica 0, one every gap, all of which
// must succeed.
func rvSpread(t *testing.T, c *cluster, n int, gap time.Duration) {
	t.Helper()
	for i := 0; i < n; i++ {
		_, err := c.send(t, 0)
		require.NoError(t, err)
		time.Sleep(gap)
	}
}

// Another writer puts a value of the wrong kind in the round-robin
// counter's key (no expiry). Redis is reachable the whole time, yet every
// request-path call fails, marks Redis "unreachable", the next ping marks
// it reachable, the next request fails again: the "outage" is logged over
// and over (and the shared state resynchronised each time).
func TestReviewJunkCounterFlapsOutageLog(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(),
		store:   []redisstore.Option{generous, redisstore.WithRetry(50 * time.Millisecond)},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	fp := c.replicas[0].store.l.Fingerprint
	require.NoError(t, cl.Set(context.Background(), "gwtransport:"+fp+":rr:0", "not-a-number", 0).Err())
	rvSpread(t, c, 100, 10*time.Millisecond)
	logs := c.logs[0].String()
	assert.LessOrEqual(t, strings.Count(logs, "Redis unreachable"), 1, "one outage at most, logged once:\n%s", logs)
}

// Redis is full (maxmemory, noeviction): every write script is refused
// with OOM. The same flapping: the "outage" is logged again after every
// successful ping.
func TestReviewFullRedisFlapsOutageLog(t *testing.T) {
	r := startRedis(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(),
		store:   []redisstore.Option{generous, redisstore.WithRetry(50 * time.Millisecond)},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	big := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		if err := cl.Set(context.Background(), "filler:"+string(rune('a'+i%26))+strings.Repeat("z", i/26), big, 0).Err(); err != nil {
			require.ErrorContains(t, err, "OOM")
			break
		}
		require.Less(t, i, 10000)
	}
	rvSpread(t, c, 100, 10*time.Millisecond)
	logs := c.logs[0].String()
	assert.LessOrEqual(t, strings.Count(logs, "Redis unreachable"), 1, "one outage, logged once:\n%s", logs)
}

// Another writer publishes, on the shared channel, a disablement no
// replica can produce (until the year 2262: a replica disables a key for
// 10 minutes). Every replica applies it as is (rests only extend, so it
// can never be undone): a provider's only key is out for centuries and
// every request fails.
func TestReviewJunkFactOnChannelDisablesKeyForever(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 1, addr: r.Addr(), keys: []string{"sk-only-key-1234"},
		store: []redisstore.Option{generous}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	fp := c.replicas[0].store.l.Fingerprint
	// Facts name keys by their salted fingerprint: junk naming a key by
	// its position ("0") names no key and is ignored.
	require.NoError(t, cl.Publish(context.Background(), "gwtransport:events:0",
		fp+"|junkwriter|4|0|0|0|0|9223372036854775807|0").Err())
	time.Sleep(200 * time.Millisecond)
	ks := c.stat(0, "p0/m").Keys
	require.Len(t, ks, 1)
	assert.NotEqual(t, 2262, ks[0].Until.Year(), "a key is disabled at most 10 minutes: %s %s", ks[0].State, ks[0].Until)
	_, err := c.send(t, 0)
	assert.NoError(t, err, "junk on the channel makes no request fail")
	// Junk naming the key by its fingerprint: until 2262 (beyond any
	// span a replica sends), ignored; for 23 hours (more than this
	// configuration allows), the key is disabled for 10 minutes at most.
	kfp := c.replicas[0].store.l.Providers[0].Keys[0]
	require.NoError(t, cl.Publish(context.Background(), "gwtransport:events:0",
		fp+"|junkwriter|4|0|0|"+kfp+"|0|9223372036854775807|0").Err())
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, "active", c.stat(0, "p0/m").Keys[0].State)
	require.NoError(t, cl.Publish(context.Background(), "gwtransport:events:0",
		fp+"|junkwriter|4|0|0|"+kfp+"|0|"+strconv.FormatInt(int64(23*time.Hour), 10)+"|0").Err())
	require.Eventually(t, func() bool { return c.stat(0, "p0/m").Keys[0].State == "disabled" }, 3*time.Second, time.Millisecond)
	ks = c.stat(0, "p0/m").Keys
	assert.Equal(t, c.clock.Now().Add(10*time.Minute), ks[0].Until, "a key is disabled at most 10 minutes")
	c.clock.Advance(10*time.Minute + time.Second)
	_, err = c.send(t, 0)
	assert.NoError(t, err, "10 minutes later the key serves again")
}

// The same through a key: another writer puts an absurd open-until in a
// breaker's key; when the replica resynchronises (here after its
// subscription was dropped) it reads it as is and keeps its only target
// out for centuries.
func TestReviewJunkBreakerKeyOpensForever(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 1, addr: r.Addr(), store: []redisstore.Option{generous}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	ctx := context.Background()
	fp := c.replicas[0].store.l.Fingerprint
	require.NoError(t, cl.Set(ctx, "gwtransport:"+fp+":b:0", "0:9223372036854775807", time.Hour).Err())
	resyncs := c.replicas[0].store.Stats().Resyncs
	require.NoError(t, cl.ClientKillByFilter(ctx, "TYPE", "pubsub").Err())
	require.Eventually(t, func() bool { return c.replicas[0].store.Stats().Resyncs > resyncs }, 3*time.Second, time.Millisecond, "resynchronised")
	st := c.stat(0, "p0/m")
	assert.NotEqual(t, 2262, st.BreakerUntil.Year(), "a breaker is open at most max(Cooldown, MaxRest): %s %s", st.Breaker, st.BreakerUntil)
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "a span no replica writes is junk, ignored")
	_, err := c.send(t, 0)
	assert.NoError(t, err, "junk in the namespace makes no request fail")

	// A plausible span (23 hours, in Redis's clock), more than this
	// configuration allows: open for max(Cooldown, WithMaxRest) at most.
	tm, err := cl.Time(ctx).Result()
	require.NoError(t, err)
	now := tm.UnixMilli()
	require.NoError(t, cl.Set(ctx, "gwtransport:"+fp+":b:0", fmt.Sprintf("%d:%d", now, now+(23*time.Hour).Milliseconds()), time.Hour).Err())
	resyncs = c.replicas[0].store.Stats().Resyncs
	require.NoError(t, cl.ClientKillByFilter(ctx, "TYPE", "pubsub").Err())
	require.Eventually(t, func() bool { return c.replicas[0].store.Stats().Resyncs > resyncs }, 3*time.Second, time.Millisecond, "resynchronised")
	st = c.stat(0, "p0/m")
	require.Equal(t, gwtransport.BreakerOpen, st.Breaker)
	assert.Equal(t, c.clock.Now().Add(gwtransport.DefaultMaxRest), st.BreakerUntil, "open at most max(Cooldown, MaxRest)")
}

// The junk fact does not stay in the mirror: at its next resynchronisation
// the replica writes it back to Redis as its own standing fact, with a
// time to live of two centuries ("every key expires"), where every replica
// that starts later reads it.
func TestReviewJunkFactWrittenBackForever(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 1, addr: r.Addr(), keys: []string{"sk-only-key-1234"},
		store: []redisstore.Option{generous}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	ctx := context.Background()
	fp := c.replicas[0].store.l.Fingerprint
	kfp := c.replicas[0].store.l.Providers[0].Keys[0]                                                                         // facts name keys by fingerprint
	require.NoError(t, cl.Publish(ctx, "gwtransport:events:0", fp+"|junkwriter|4|0|0|"+kfp+"|0|9223372036854775807|0").Err()) // ignored
	require.NoError(t, cl.Publish(ctx, "gwtransport:events:0", fp+"|junkwriter|4|0|0|"+kfp+"|0|"+strconv.FormatInt(int64(23*time.Hour), 10)+"|0").Err())
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, cl.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()) // a resynchronisation
	var keys []string
	require.Eventually(t, func() bool {
		keys, _ = cl.Keys(ctx, "gwtransport:"+fp+":kd:*").Result()
		return len(keys) == 1
	}, 3*time.Second, time.Millisecond)
	ttl, err := cl.PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 24*time.Hour, "%s lives %s", keys[0], ttl)
	assert.LessOrEqual(t, ttl, 11*time.Minute, "%s lives %s: a disablement of 10 minutes at most, and a minute's margin", keys[0], ttl)
}

// Junk in a probe lease's key (another writer, no expiry): the lease
// script reads any "<token>:<number>" as a lease held until that number;
// past the cooldown, no replica ever probes the target again, and with
// no other target every request fails, for as long as the junk stays.
func TestReviewJunkProbeLeaseStopsProbesForever(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 1, addr: r.Addr(), store: []redisstore.Option{generous},
		gateway: []gwtransport.Option{oneFailureOpens}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	ctx := context.Background()
	fp := c.replicas[0].store.l.Fingerprint
	require.NoError(t, cl.Set(ctx, "gwtransport:"+fp+":p:0", "junk:99999999999999999999", 0).Err())
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	_, err := c.send(t, 0)
	require.Error(t, err)
	require.Equal(t, gwtransport.BreakerOpen, c.breakerOf(0, "p0/m"))
	c.clock.Advance(time.Hour) // far past the cooldown
	_, err = c.send(t, 0)
	assert.NoError(t, err, "past the cooldown a probe goes through")
	c.clock.Advance(24 * time.Hour)
	_, err = c.send(t, 0)
	assert.NoError(t, err, "a day later, a probe goes through")
}
