package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewSIGTERMWithCollectorDown: "SIGTERM drains requests in flight
// ... up to proxy.shutdown_timeout". With OTEL_EXPORTER_OTLP_ENDPOINT set
// and the collector failing (503), run must still return soon after the
// drain. run's `defer shutdownTel(context.Background())` flushes the
// exporters with no deadline, and otlptracehttp/otlpmetrichttp retry a 503
// for up to a minute each: the process outlives its drain by a minute or
// more (an orchestrator's grace period, 30s by default in Kubernetes, ends
// in SIGKILL).
func TestReviewSIGTERMWithCollectorDown(t *testing.T) {
	var hits atomic.Int64
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	url, _ := serveFor(t, collector)
	_, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
	addr, sigs, done, stderr := startRun(t, []string{"-config", path, "-listen", "127.0.0.1:0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	p := &testProxy{t: t, URL: "http://" + addr}
	res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	start := time.Now()
	sigs <- syscall.SIGTERM
	var elapsed time.Duration
	select {
	case <-done:
		elapsed = time.Since(start)
	case <-time.After(90 * time.Second):
		elapsed = time.Since(start)
		defer func() { <-done }() // let it finish, so no goroutine is left behind
	}
	// The drain and the telemetry flush share shutdown_timeout (1s here);
	// the flush gets at least telemetryFlushMin. A small margin for a
	// loaded machine.
	bound := time.Second + telemetryFlushMin + 1500*time.Millisecond
	assert.Less(t, elapsed, bound, "run returned %v after SIGTERM (shutdown_timeout 1s, nothing in flight); collector hits so far: %d", elapsed.Round(time.Millisecond), hits.Load())
	assert.Contains(t, stderr.String(), "gwproxy: flushing telemetry at exit", "the failed flush is logged")
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
