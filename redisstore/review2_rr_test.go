package redisstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// Replica churn (a rolling deploy, autoscaling): each replica serves as
// soon as its Transport exists. New connects in the background, and until
// its first resynchronisation the round-robin call stays local, on a
// counter of the replica's own that starts at 0: every new replica's
// first request goes to the first target. Six replicas, one request each,
// three targets: the shared counter would give each target 2.
func TestReview2RoundRobinChurnAllToFirst(t *testing.T) {
	r := startRedis(t)
	served := map[string]int{}
	for i := 0; i < 6; i++ {
		c := newCluster(t, clusterOpts{replicas: 1, providers: 3, addr: r.Addr(), noConnect: true,
			gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
		got, err := c.send(t, 0)
		require.NoError(t, err)
		served[got]++
	}
	for _, tg := range []string{"p0/m", "p1/m", "p2/m"} {
		assert.InDelta(t, 2, served[tg], 1, "%s: %v", tg, served)
	}
}
