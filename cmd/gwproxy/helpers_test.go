package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestMain fails the run when a test leaves a goroutine behind: a server
// not drained, a stream not ended, a connection never closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The proxy keys of the tests, and their hashes.
const (
	keyAll   = "pk-all-0123456789"
	keySmall = "pk-small-0123456789"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testProxy is a gwproxy serving on 127.0.0.1:0.
type testProxy struct {
	t     testing.TB
	s     *Server
	URL   string // http://127.0.0.1:PORT
	addr  string
	sigs  chan os.Signal
	done  chan error
	logs  *syncBuffer
	base  *http.Transport
	once  sync.Once
	stopE error
}

// proxyOpts adjust a test proxy.
type proxyOpts struct {
	env  map[string]string
	path string // serve this file instead of the given config bytes
	tel  *telemetry
}

// startProxy serves cfg with the environment env; it stops at the end of
// the test.
func startProxy(t testing.TB, cfg string, o proxyOpts) *testProxy {
	t.Helper()
	logs := &syncBuffer{}
	base := upstreamTransport()
	env := func(k string) (string, bool) { v, ok := o.env[k]; return v, ok }
	sc := serverConfig{env: env, log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), base: base, telemetr: o.tel}
	if o.path != "" {
		sc.path = o.path
	} else {
		sc.data = []byte(cfg)
	}
	s, err := newServer(sc)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &testProxy{t: t, s: s, sigs: make(chan os.Signal, 1), done: make(chan error, 1), logs: logs, base: base}
	ready := make(chan string, 1)
	go func() { p.done <- s.serve(ln, p.sigs, ready) }()
	p.addr = <-ready
	p.URL = "http://" + p.addr
	t.Cleanup(func() { p.stop() })
	return p
}

// stop sends SIGTERM and waits for the drain.
func (p *testProxy) stop() error {
	p.once.Do(func() {
		p.sigs <- syscall.SIGTERM
		select {
		case p.stopE = <-p.done:
		case <-time.After(20 * time.Second):
			p.t.Error("gwproxy did not stop within 20s")
		}
		p.base.CloseIdleConnections()
	})
	return p.stopE
}

// do sends a request to the proxy with a fresh connection pool.
func (p *testProxy) do(method, path, key string, body string, hdr ...string) (*http.Response, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	require.NoError(p.t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	res, err := c.Do(req)
	require.NoError(p.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(p.t, err)
	return res, b
}

// metrics parses the proxy's /metrics with the Prometheus text parser.
func (p *testProxy) metrics() map[string]*dto.MetricFamily {
	p.t.Helper()
	res, err := http.Get(p.URL + "/metrics")
	require.NoError(p.t, err)
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	require.NoError(p.t, err)
	return fams
}

// metricValue is the value of the series of family name whose labels
// include want; ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// twoProviders starts providers a and b, each requiring its own key, and
// returns a configuration serving route "gateway" (a/m1, then b/m2, alias
// "second") and route "small" (b/m2), with the two test proxy keys.
func twoProviders(t *testing.T, extraProxy string) (a, b *gatewaytest.Server, cfg string, env map[string]string) {
	a = gatewaytest.NewServer(gatewaytest.WithName("a"), gatewaytest.WithAPIKey("key-a"))
	b = gatewaytest.NewServer(gatewaytest.WithName("b"), gatewaytest.WithAPIKey("key-b"))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	cfg = fmt.Sprintf(`proxy:
  keys:
    - name: all
      hash: sha256:%x
    - name: small-only
      key_env: SMALL_KEY
      routes: [small]
%s
models:
  - target: a/m1
  - target: b/m2
    alias: second
routes:
  - name: small
    models:
      - target: b/m2
defaults:
  max_retries: 0
providers:
  - name: a
    base_url: %s
    api_key_env: A_KEY
  - name: b
    base_url: %s
    api_key_env: B_KEY
`, hashKey(keyAll), extraProxy, a.URL, b.URL)
	env = map[string]string{"A_KEY": "key-a", "B_KEY": "key-b", "SMALL_KEY": keySmall}
	return a, b, cfg, env
}

const chatBody = `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`
const streamBody = `{"model":%q,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

// startRun starts gwproxy's run with args and env in a goroutine and waits
// until it listens: its address, the signals it obeys, what it returns
// (once), and what it wrote to stderr.
func startRun(t *testing.T, args []string, env func(string) (string, bool)) (addr string, sigs chan os.Signal, done chan error, stderr *syncBuffer) {
	t.Helper()
	sigs = make(chan os.Signal, 1)
	ready := make(chan string, 1)
	done = make(chan error, 1)
	stderr = &syncBuffer{}
	go func() { done <- run(args, env, stderr, sigs, ready) }()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return addr, sigs, done, stderr
}
