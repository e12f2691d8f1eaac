package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview2TracesCollectorDownStarvesMetrics: traces and metrics go to
// endpoints of their own (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT). The traces collector is down (it
// accepts and never answers); the metrics collector is up. At SIGTERM the
// telemetry is flushed "within what the drain left of shutdown_timeout":
// the metrics, whose collector is fine, must reach it. The flush gives
// both signals one deadline, one after the other: the trace flush uses it
// all and the metrics are never sent.
func TestReview2TracesCollectorDownStarvesMetrics(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	hang := make(chan struct{})
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] += len(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
	downURL, stopDown := serveFor(t, down)
	upURL, stopUp := serveFor(t, up)
	_, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", downURL+"/v1/traces")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", upURL+"/v1/metrics")
	env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = downURL + "/v1/traces"
	env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = upURL + "/v1/metrics"
	sigs := make(chan os.Signal, 1)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- run([]string{"-config", path, "-listen", "127.0.0.1:0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &stderr, sigs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	p := &testProxy{t: t, URL: "http://" + addr}
	res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	start := time.Now()
	sigs <- syscall.SIGTERM
	require.NoError(t, <-done)
	t.Logf("exit took %v", time.Since(start))
	close(hang)
	stopDown()
	stopUp()
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, got["/v1/metrics"], "the metrics never reached their (healthy) collector: %v\nstderr: %s", got, stderr.String())
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
