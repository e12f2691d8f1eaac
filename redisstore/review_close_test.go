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

// rvRedisGoroutines returns the stacks of the goroutines running go-redis
// or redisstore code.
func rvRedisGoroutines() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "go-redis/v9") || strings.Contains(g, "gwtransport/redisstore.(*Store)") {
			out = append(out, g)
		}
	}
	return out
}

// Redis dies; the Store sees the outage; Close returns. go-redis's
// background dials (started by the Store's own calls) go on after Close,
// retrying with backoff: Close leaves goroutines behind (the package's own
// TestMain goleak check fails the same way after TestRedisKilledUnderLoad
// run alone).
func TestReviewCloseLeavesDialGoroutines(t *testing.T) {
	r := startRedis(t)
	st, err := redisstore.New(redisstore.WithAddr(r.Addr()), redisstore.WithRetry(20*time.Millisecond), generous)
	require.NoError(t, err)
	tr, err := gwtransport.NewTransport(nil, []string{"p0/m"}, gwtransport.WithStore(st),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: "http://127.0.0.1:1", Auth: gwtransport.AuthNone}))
	require.NoError(t, err)
	_ = tr
	require.Eventually(t, st.Connected, 5*time.Second, time.Millisecond)
	r.kill()
	require.Eventually(t, func() bool { return !st.Connected() }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the maintainer pings (dials) meanwhile
	require.NoError(t, st.Close())
	time.Sleep(50 * time.Millisecond)
	left := rvRedisGoroutines()
	assert.Empty(t, left, "goroutines left 50 ms after Close:\n%s", strings.Join(left, "\n\n"))
	require.Eventually(t, func() bool { return len(rvRedisGoroutines()) == 0 }, 5*time.Second, 10*time.Millisecond) // leave nothing to the next test
}
