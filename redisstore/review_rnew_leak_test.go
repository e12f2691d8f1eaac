package redisstore_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/redisstore"
)

// rnewRedisGoroutines counts goroutines running go-redis or redisstore
// code.
func rnewRedisGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var first string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "redis/go-redis") || strings.Contains(g, "redisstore.(*Store)") {
			if !strings.Contains(g, "rnewRedisGoroutines") {
				n++
				if first == "" {
					first = g
				}
			}
		}
	}
	return n, first
}

// TestReviewNoGoroutineAfterCloseWhenRedisDied: a Store whose Redis was
// killed while requests ran, then closed, leaves no goroutine behind
// (the repository's own TestRedisKilledUnderLoad fails its goleak check
// when run alone: `go test -race -run 'TestRedisKilledUnderLoad$' .`).
func TestReviewNoGoroutineAfterCloseWhenRedisDied(t *testing.T) {
	r := startRedis(t)
	var c *cluster
	t.Run("load", func(t *testing.T) {
		c = newCluster(t, clusterOpts{replicas: 3, providers: 2, addr: r.Addr(),
			store:   []redisstore.Option{redisstore.WithTimeout(50 * time.Millisecond)},
			gateway: []gwtransport.Option{oneFailureOpens, gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
		stop := make(chan struct{})
		wait, _ := load(t, c, stop)
		time.Sleep(50 * time.Millisecond)
		r.kill()
		for _, rep := range c.replicas {
			require.Eventually(t, func() bool { return !rep.store.Connected() }, 5*time.Second, time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		close(stop)
		wait()
	}) // the subtest's cleanup closed every Store
	closed := time.Now()
	var n int
	var first string
	for time.Since(closed) < 3*time.Second {
		if n, first = rnewRedisGoroutines(); n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("goroutines left %v after Close: %d", time.Since(closed).Round(time.Millisecond), n)
	assert.Zero(t, n, "3 s after Close, still running:\n%s", first)
}
