package redisstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// rvSkewClock reads a shared fakeClock shifted by a fixed offset: a
// replica whose wall clock is off by skew.
type rvSkewClock struct {
	base *fakeClock
	skew time.Duration
}

func (c *rvSkewClock) Now() time.Time { return c.base.Now().Add(c.skew) }
func (c *rvSkewClock) Sleep(ctx context.Context, d time.Duration) error {
	return c.base.Sleep(ctx, d)
}

// rvReplica is one replica built by hand, so that each can have its own
// clock, keys or options.
type rvReplica struct {
	st   *capture
	tr   *gwtransport.Transport
	logs *syncBuffer
}

func rvNew(t *testing.T, addr string, clock gwtransport.Clock, models []string, storeOpts []redisstore.Option, opts ...gwtransport.Option) *rvReplica {
	t.Helper()
	st, err := redisstore.New(append([]redisstore.Option{redisstore.WithAddr(addr), redisstore.WithRetry(20 * time.Millisecond)}, storeOpts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	cp := &capture{Store: st}
	logs := &syncBuffer{}
	base := []gwtransport.Option{
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithClock(clock), gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0),
		gwtransport.WithStore(cp),
		gwtransport.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	tr, err := gwtransport.NewTransport(nil, models, append(base, opts...)...)
	require.NoError(t, err)
	require.Eventually(t, st.Connected, 5*time.Second, time.Millisecond)
	return &rvReplica{st: cp, tr: tr, logs: logs}
}

// send posts a gateway request through the replica; it returns the target
// that served it, or an error (status != 200 included).
func (r *rvReplica) send(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	if err != nil {
		return "", err
	}
	res, err := r.tr.RoundTrip(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return "", fmt.Errorf("status %d", res.StatusCode)
	}
	return res.Header.Get(gwtransport.HeaderTarget), nil
}

func (r *rvReplica) stat(target string) gwtransport.TargetStats {
	for _, s := range r.tr.Stats() {
		if s.Target == target {
			return s
		}
	}
	return gwtransport.TargetStats{}
}

// twoLocalProviders starts two keyless providers p0 and p1 (closed at
// cleanup): their options, and the route over them ["p0/m", "p1/m"].
func twoLocalProviders(t *testing.T) (p0, p1 *gatewaytest.Server, provs []gwtransport.Option, models []string) {
	t.Helper()
	p0 = gatewaytest.NewServer(gatewaytest.WithName("p0"))
	p1 = gatewaytest.NewServer(gatewaytest.WithName("p1"))
	t.Cleanup(p0.Close)
	t.Cleanup(p1.Close)
	provs = []gwtransport.Option{
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p0.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: p1.URL, Auth: gwtransport.AuthNone})}
	return p0, p1, provs, []string{"p0/m", "p1/m"}
}
