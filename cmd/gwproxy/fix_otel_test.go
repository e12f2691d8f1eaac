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

// TestRunExportsOneSignal: a signal-specific OTLP endpoint turns on that
// signal alone: no exporter is built for the other (which would send to
// the default localhost:4318 and, at exit, retry there), and the exit is
// prompt with nothing left to flush in error.
func TestRunExportsOneSignal(t *testing.T) {
	for _, tc := range []struct{ env, path, other string }{
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces", "/v1/metrics"},
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics", "/v1/traces"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]int{}
			collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got[r.URL.Path] += len(b)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/x-protobuf")
			})
			url, stopCollector := serveFor(t, collector)
			_, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
			path := filepath.Join(t.TempDir(), "gateway.yaml")
			require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			t.Setenv(tc.env, url+tc.path)
			env[tc.env] = url + tc.path
			addr, sigs, done, stderr := startRun(t, []string{"-config", path, "-listen", "127.0.0.1:0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			p := &testProxy{t: t, URL: "http://" + addr}
			res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
			require.Equal(t, 200, res.StatusCode)
			start := time.Now()
			sigs <- syscall.SIGTERM
			require.NoError(t, <-done)
			assert.Less(t, time.Since(start), 3*time.Second)
			stopCollector()
			mu.Lock()
			defer mu.Unlock()
			assert.Positive(t, got[tc.path], "nothing exported to %s: %v", tc.path, got)
			assert.Zero(t, got[tc.other], "%s exported without an endpoint: %v", tc.other, got)
			assert.NotContains(t, stderr.String(), "flushing telemetry at exit", "an exporter failed at exit")
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		})
	}
}
