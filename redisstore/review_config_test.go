package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
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

// A program that reloads its configuration file (Reconfigure with the same
// file, say on SIGHUP) gets a new Redis Store per reload; the previous
// ones are never closed (only CloseConfigured, at the end, closes them):
// goroutines and Redis connections grow with every reload.
func TestReviewConfigReloadLeaksStores(t *testing.T) {
	r := startRedis(t)
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	defer p.Close()
	cfg, err := gwtransport.LoadConfig([]byte(fmt.Sprintf(`
models:
  - target: p0/m
providers:
  - name: p0
    base_url: %s
    auth: none
state:
  redis:
    addr: %s
    prefix: reload
`, p.URL, r.Addr())))
	require.NoError(t, err)
	defer func() { require.NoError(t, redisstore.CloseConfigured()) }()
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(cfg))
	require.NoError(t, err)
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	clients := func() int {
		s, err := cl.ClientList(context.Background()).Result()
		require.NoError(t, err)
		return strings.Count(s, "\n")
	}
	time.Sleep(200 * time.Millisecond)
	g0, c0 := runtime.NumGoroutine(), clients()
	for i := 0; i < 20; i++ {
		require.NoError(t, gwtransport.Reconfigure(tr, gwtransport.FromConfig, gwtransport.WithConfig(cfg)))
	}
	time.Sleep(300 * time.Millisecond)
	g1, c1 := runtime.NumGoroutine(), clients()
	assert.Less(t, g1-g0, 10, "goroutines after 20 reloads: %d -> %d", g0, g1)
	assert.Less(t, c1-c0, 5, "Redis connections after 20 reloads: %d -> %d", c0, c1)
}
