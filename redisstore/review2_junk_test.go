package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Another writer publishes on the shared channel a latency sample no
// replica can produce (292 years). The age and rest of a message are
// checked ("a span beyond a day ... is junk and ignored"), its latency is
// not: it enters the moving average of every replica, and a
// lowest_latency route never picks the target again (its average only
// decays with its own samples, which it no longer gets).
func TestReview2JunkLatencyOnChannelStarvesTarget(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyLowestLatency)}})
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	fp := c.replicas[0].store.l.Fingerprint
	require.NoError(t, cl.Publish(context.Background(), "gwtransport:events:0",
		fp+"|junkwriter|5|0|0||0|0|9223372036854775807").Err())
	time.Sleep(200 * time.Millisecond)
	lat := c.stat(0, "p0/m").Latency
	assert.Less(t, lat, 24*time.Hour, "a latency beyond a day is junk: p0's average is %s", lat)
	served := map[string]int{}
	for i := 0; i < 20; i++ {
		got, err := c.send(t, 0)
		require.NoError(t, err)
		served[got]++
	}
	assert.NotZero(t, served["p0/m"], "p0 is healthy and fast: %v", served)
}
