package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Two files name one state section (one Store, two sessions). One of them
// is reloaded with an edited section (its configuration moves to another
// Store and is unbound from the first): the first Store, which the other
// file's configuration still uses, is not closed and still shares.
func TestConfiguredStoreKeptWhileAnotherConfigurationUsesIt(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p0 := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	p1 := gatewaytest.NewServer(gatewaytest.WithName("p1"))
	t.Cleanup(p0.Close)
	t.Cleanup(p1.Close)
	file := func(models, timeout string) *gwtransport.Config {
		cfg, err := gwtransport.LoadConfig([]byte(fmt.Sprintf(`
models: [%s]
circuit_breaker: {consecutive_failures: 1, cooldown: 10s}
providers:
  - {name: p0, base_url: %s, auth: none}
  - {name: p1, base_url: %s, auth: none}
state:
  redis: {addr: "%s", prefix: kept, timeout: %s}
`, models, p0.URL, p1.URL, r.Addr(), timeout)))
		require.NoError(t, err)
		return cfg
	}
	defer func() { require.NoError(t, redisstore.CloseConfigured()) }()
	opts := func(cfg *gwtransport.Config) []gwtransport.Option {
		return []gwtransport.Option{gwtransport.WithConfig(cfg), gwtransport.WithClock(clock),
			gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
			gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0)}
	}
	const both = "{target: p0/m}, {target: p1/m}"
	x1, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file(both, "1s"))...)
	require.NoError(t, err)
	y, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file("{target: p1/m}", "1s"))...)
	require.NoError(t, err)
	// Another replica's (a Store of its own: the timeout differs).
	x2, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file(both, "900ms"))...)
	require.NoError(t, err)
	// y moves to an edited section: the "1s" Store loses y's session only.
	require.NoError(t, gwtransport.Reconfigure(y, gwtransport.FromConfig, opts(file("{target: p1/m}", "800ms"))...))
	time.Sleep(300 * time.Millisecond) // connected and resynchronised

	p0.Enqueue(gatewaytest.Fault{Status: 500})
	require.Equal(t, "p1/m", r2Send(t, x1, p0.URL))
	require.Equal(t, gwtransport.BreakerOpen, r2Breaker(x1, "p0/m"))
	assert.Eventually(t, func() bool { return r2Breaker(x2, "p0/m") == gwtransport.BreakerOpen }, 2*time.Second, 5*time.Millisecond,
		"x1's Store still shares after y left it")
	assert.Equal(t, "p1/m", r2Send(t, y, p1.URL), "y serves on its new Store")
}
