package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
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

// A configuration file's state.redis makes a Redis store (registered by
// importing redisstore): its prefix, database and password (from the
// variable password_env names) are used, and the password is never
// written anywhere.
func TestConfigFileRedis(t *testing.T) {
	r := startRedis(t, "--requirepass", "cfg-pw-123")
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	defer p.Close()
	t.Setenv("GWT_TEST_REDIS_PW", "cfg-pw-123")
	cfg, err := gwtransport.LoadConfig([]byte(fmt.Sprintf(`
strategy: round_robin
models:
  - target: p0/m
providers:
  - name: p0
    base_url: %s
    auth: none
state:
  redis:
    addr: %s
    db: 3
    prefix: cfgtest
    password_env: GWT_TEST_REDIS_PW
    timeout: 100ms
`, p.URL, r.Addr())))
	require.NoError(t, err)
	defer func() { require.NoError(t, redisstore.CloseConfigured()) }()
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(cfg))
	require.NoError(t, err)
	cl := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "cfg-pw-123", DB: 3})
	defer cl.Close()
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
		keys, _ := cl.Keys(context.Background(), "cfgtest:*:rr:0").Result()
		return len(keys) == 1
	}, 5*time.Second, 5*time.Millisecond)
	keys, err := cl.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		require.True(t, strings.HasPrefix(k, "cfgtest:"), k)
		ttl, err := cl.PTTL(context.Background(), k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "%s expires", k)
	}

	// Compiling the same file again (a Reconfigure, a gwproxy reload)
	// reuses its Store: twenty reloads open no more connections.
	clients := func() int {
		info, err := cl.Info(context.Background(), "clients").Result()
		require.NoError(t, err)
		var n int
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
				_, err := fmt.Sscan(v, &n)
				require.NoError(t, err)
			}
		}
		return n
	}
	before := clients()
	for i := 0; i < 20; i++ {
		require.NoError(t, gwtransport.Reconfigure(tr, gwtransport.FromConfig, gwtransport.WithConfig(cfg)))
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	assert.LessOrEqual(t, clients(), before+2, "reloads of one file share its Store's connections")

	_, err = redisstore.FromConfig(&gwtransport.StateConfig{Redis: &gwtransport.RedisConfig{PasswordEnv: "GWT_TEST_SURELY_UNSET_PW"}})
	require.EqualError(t, err, "redisstore: password variable GWT_TEST_SURELY_UNSET_PW is not set")
	_, err = redisstore.FromConfig(&gwtransport.StateConfig{})
	require.EqualError(t, err, "redisstore: the state section has no redis")
}

// Every key a Store writes is namespaced, expires, and names API keys
// only by fingerprint: no key, and no part of one, is in Redis.
func TestRedisHoldsNoSecretAndEverythingExpires(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 2, providers: 2, addr: r.Addr(), keys: []string{"sk-live-aaaa1111", "sk-live-bbbb2222"},
		store:   []redisstore.Option{generous, redisstore.WithPrefix("sec")},
		gateway: []gwtransport.Option{oneFailureOpens, gwtransport.WithMaxRetries(1), gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 401}, gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}})
	// p1 fails throughout: the 429's Retry-After advances the fake clock
	// past the cooldown, and a successful probe would close the breaker
	// (deleting its key) before the keys are read.
	c.servers[1].SetFault(&gatewaytest.Fault{Status: 500})
	for i := 0; i < 6; i++ {
		_, _ = c.send(t, i%2)
	}
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	ctx := context.Background()
	var keys []string
	require.Eventually(t, func() bool {
		keys, _ = cl.Keys(ctx, "*").Result()
		kinds := map[string]bool{}
		for _, k := range keys {
			kinds[strings.Split(k, ":")[2]] = true
		}

		return kinds["kr"] && kinds["kd"] && kinds["b"] && kinds["rr"]
	}, 5*time.Second, time.Millisecond)
	for _, k := range keys {
		require.Regexp(t, `^sec:[0-9a-f]{16}:(rr|b|c|p|kr|kd):`, k)
		require.NotContains(t, k, "sk-live")
		require.NotContains(t, k, "aaaa1111")
		v, err := cl.Get(ctx, k).Result()
		require.NoError(t, err)
		require.NotContains(t, v, "sk-live")
		ttl, err := cl.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "%s expires", k)
		require.LessOrEqual(t, ttl, 24*time.Hour, k)
	}
}
