package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// fakeClock is shared by the replicas of a test: every Store and gateway
// reads the same instants.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// capture is a Store that keeps the session its gateway bound.
type capture struct {
	*redisstore.Store
	mu   sync.Mutex
	sess gwtransport.StoreSession
	l    *gwtransport.Layout
}

func (c *capture) Bind(l *gwtransport.Layout) (gwtransport.StoreSession, error) {
	s, err := c.Store.Bind(l)
	c.mu.Lock()
	c.sess, c.l = s, l
	c.mu.Unlock()
	return s, err
}

// replica is one process of a program: its Store and its Transport.
type replica struct {
	store *capture
	tr    *gwtransport.Transport
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cluster is n replicas sharing one Redis, against providers p0..pk-1
// (gatewaytest servers on 127.0.0.1).
type cluster struct {
	clock    *fakeClock
	servers  []*gatewaytest.Server
	replicas []*replica
	logs     []*syncBuffer
}

type clusterOpts struct {
	replicas  int
	providers int
	addr      string
	store     []redisstore.Option
	gateway   []gwtransport.Option
	models    func(names []string) []string
	keys      []string // API keys of provider p0, when set
	noConnect bool     // do not wait for Redis
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{clock: newFakeClock()}
	var names []string
	base := []gwtransport.Option{
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithClock(c.clock), gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0),
	}
	for i := 0; i < o.providers; i++ {
		name := fmt.Sprintf("p%d", i)
		s := gatewaytest.NewServer(gatewaytest.WithName(name))
		t.Cleanup(s.Close)
		c.servers = append(c.servers, s)
		names = append(names, name+"/m")
		p := gwtransport.Provider{Name: name, BaseURL: s.URL, Auth: gwtransport.AuthNone}
		if i == 0 && len(o.keys) > 0 {
			p.Auth, p.APIKeys = "", o.keys
		}
		base = append(base, gwtransport.WithProvider(p))
	}
	models := names
	if o.models != nil {
		models = o.models(names)
	}
	for i := 0; i < o.replicas; i++ {
		st, err := redisstore.New(append([]redisstore.Option{redisstore.WithAddr(o.addr), redisstore.WithRetry(20 * time.Millisecond)}, o.store...)...)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close()) })
		cp := &capture{Store: st}
		logs := &syncBuffer{}
		c.logs = append(c.logs, logs)
		opts := append(append([]gwtransport.Option{}, base...), gwtransport.WithStore(cp),
			gwtransport.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		tr, err := gwtransport.NewTransport(nil, models, append(opts, o.gateway...)...)
		require.NoError(t, err)
		c.replicas = append(c.replicas, &replica{store: cp, tr: tr})
		if !o.noConnect {
			require.Eventually(t, st.Connected, 5*time.Second, time.Millisecond, "replica %d connects", i)
		}
	}
	return c
}

// send posts a gateway request through replica r and returns the target
// that served it.
func (c *cluster) send(t *testing.T, r int) (string, error) {
	req, err := http.NewRequest(http.MethodPost, c.servers[0].URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	if err != nil {
		return "", err
	}
	res, err := c.replicas[r].tr.RoundTrip(req)
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

// stat returns replica r's statistics of target.
func (c *cluster) stat(r int, target string) gwtransport.TargetStats {
	for _, s := range c.replicas[r].tr.Stats() {
		if s.Target == target {
			return s
		}
	}
	return gwtransport.TargetStats{}
}

// breakerOf returns replica r's breaker state of target.
func (c *cluster) breakerOf(r int, target string) gwtransport.BreakerState {
	return c.stat(r, target).Breaker
}

var oneFailureOpens = gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)})
