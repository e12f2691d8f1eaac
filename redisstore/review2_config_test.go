package redisstore_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

func r2Send(t *testing.T, tr http.RoundTripper, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	res, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	return res.Header.Get(gwtransport.HeaderTarget)
}

func r2Breaker(tr *gwtransport.Transport, target string) gwtransport.BreakerState {
	for _, s := range tr.Stats() {
		if s.Target == target {
			return s.Breaker
		}
	}
	return ""
}

// One program compiles two configuration files (two gateways, say one per
// team) whose state sections are the same Redis. The file's Store is kept
// per state section, so both Transports get the same Store, and "A Store
// serves one Transport": the second binding replaces the first. The
// first gateway silently stops sharing: its breaker openings never reach
// the other replicas running the same file.
func TestReview2TwoFilesSameStateSectionStopSharing(t *testing.T) {
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
  redis: {addr: "%s", prefix: two, timeout: %s}
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
	// Replica 1: the file X and another file Y, same state section.
	x1, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file("{target: p0/m}, {target: p1/m}", "1s"))...)
	require.NoError(t, err)
	_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file("{target: p1/m}", "1s"))...)
	require.NoError(t, err)
	// Replica 2 (another process: a Store of its own, same Redis and
	// prefix; the timeout differs so that this test's process makes a
	// second Store), the file X.
	x2, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, opts(file("{target: p0/m}, {target: p1/m}", "900ms"))...)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // both connected and resynchronised

	p0.Enqueue(gatewaytest.Fault{Status: 500})
	require.Equal(t, "p1/m", r2Send(t, x1, p0.URL))
	require.Equal(t, gwtransport.BreakerOpen, r2Breaker(x1, "p0/m"))
	assert.Eventually(t, func() bool { return r2Breaker(x2, "p0/m") == gwtransport.BreakerOpen }, 2*time.Second, 5*time.Millisecond,
		"a breaker opened by one replica is open on every replica running the same file")
}

// A long-running program reloads its file after editing the state
// section (here its timeout, 20 times: tuning the bound, moving Redis).
// Each distinct section gets a Store of its own, kept until
// CloseConfigured at exit: the previous ones, bound to no live
// configuration, keep their goroutines, connections and subscriptions
// (and keep pinging a Redis that was moved away) for the life of the
// program.
func TestReview2ReloadWithEditedSectionLeaksStores(t *testing.T) {
	r := startRedis(t)
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	defer p.Close()
	file := func(timeout int) *gwtransport.Config {
		cfg, err := gwtransport.LoadConfig([]byte(fmt.Sprintf(`
models: [{target: p0/m}]
providers: [{name: p0, base_url: %s, auth: none}]
state: {redis: {addr: "%s", prefix: edited, timeout: %dms}}
`, p.URL, r.Addr(), timeout)))
		require.NoError(t, err)
		return cfg
	}
	defer func() { require.NoError(t, redisstore.CloseConfigured()) }()
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(file(10)))
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	g0 := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		require.NoError(t, gwtransport.Reconfigure(tr, gwtransport.FromConfig, gwtransport.WithConfig(file(11+i))))
	}
	time.Sleep(300 * time.Millisecond)
	g1 := runtime.NumGoroutine()
	assert.Less(t, g1-g0, 10, "goroutines after 20 reloads with an edited state section: %d -> %d", g0, g1)
}
