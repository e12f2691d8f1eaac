package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestRunExampleDemo: `gwproxy -config example.yaml -demo` serves offline
// against its two local providers: the first request falls back, the
// next is served by the primary, the demo key works and no other does;
// SIGTERM stops it.
func TestRunExampleDemo(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	addr, sigs, done, stderr := startRun(t, []string{"-config", "example.yaml", "-demo", "-listen", "127.0.0.1:0"}, env)
	post := func(key, model string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, model)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, body := post("demo-key", "gateway")
	require.Equal(t, 200, res.StatusCode, body)
	assert.Equal(t, "fallback/demo-small", res.Header.Get(gwtransport.HeaderTarget))
	assert.Contains(t, res.Header.Get(gwtransport.HeaderFallbackReason), "primary/demo-large#1 503")
	res, _ = post("demo-key", "gateway")
	assert.Equal(t, "primary/demo-large", res.Header.Get(gwtransport.HeaderTarget))
	res, _ = post("demo-key", "small")
	assert.Equal(t, "fallback/demo-small", res.Header.Get(gwtransport.HeaderTarget))
	res, _ = post("not-the-demo-key", "gateway")
	assert.Equal(t, 401, res.StatusCode)

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	assert.Contains(t, stderr.String(), `"msg":"gwproxy stopped"`)
	assert.NotContains(t, stderr.String(), "demo-key")
}

// TestRunFlags: a missing -config, an unreadable file and an unknown flag
// are refused with a clear error.
func TestRunFlags(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-config is required"},
		{[]string{"-config", "testdata/nope.yaml"}, "nope.yaml"},
		{[]string{"-bogus"}, "flag provided but not defined"},
	} {
		var stderr syncBuffer
		err := run(tc.args, env, &stderr, nil, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error()+stderr.String(), tc.want)
	}
}

// TestDefaultListenIsLoopback: with no listen address anywhere, gwproxy
// binds 127.0.0.1 only.
func TestDefaultListenIsLoopback(t *testing.T) {
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: k\n      hash: sha256:%x\nmodels:\n  - target: openai/gpt-4o\n", hashKey(keyAll))
	s, err := newServer(serverConfig{data: []byte(cfg), env: func(string) (string, bool) { return "", false }, log: newLogger(100)})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", s.state.Load().proxy.Listen)
	s, err = newServer(serverConfig{data: []byte(cfg), listen: "0.0.0.0:9000", env: func(string) (string, bool) { return "", false }, log: newLogger(100)})
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9000", s.state.Load().proxy.Listen, "-listen overrides")
}

// TestRunExportsOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, gwproxy sends
// its traces and metrics to that OTLP/HTTP endpoint (flushed at
// shutdown).
func TestRunExportsOTLP(t *testing.T) {
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
	a, _, cfg, env := twoProviders(t, "")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
	addr, sigs, done, _ := startRun(t, []string{"-config", path, "-listen", "127.0.0.1:0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	p := &testProxy{t: t, URL: "http://" + addr}
	res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	sigs <- syscall.SIGTERM
	require.NoError(t, <-done)
	stopCollector()
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, got["/v1/traces"], "no trace exported: %v", got)
	assert.Positive(t, got["/v1/metrics"], "no metric exported: %v", got)
	assert.Equal(t, 1, a.Count())
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
