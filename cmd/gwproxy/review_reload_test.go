package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewReloadAppliesTimeouts: SIGHUP "reloads the file"; a reload
// that lowers proxy.idle_timeout and proxy.read_header_timeout is accepted
// (counted ok, no warning but for listen) yet never applied: http.Server
// read them once at start (serve in main.go).
func TestReviewReloadAppliesTimeouts(t *testing.T) {
	_, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	p := startProxy(t, "", proxyOpts{env: env, path: path})
	newCfg := strings.Replace(cfg, "  shutdown_timeout: 1s\n", "  shutdown_timeout: 1s\n  idle_timeout: 200ms\n  read_header_timeout: 200ms\n", 1)
	require.NoError(t, os.WriteFile(path, []byte(newCfg), 0o600))
	before := reloads(t, p)
	p.sigs <- syscall.SIGHUP
	require.Eventually(t, func() bool { return reloads(t, p) > before }, 10*time.Second, 5*time.Millisecond)
	v, _ := metricValue(p.metrics(), "gwproxy_config_reloads_total", map[string]string{"result": "ok"})
	require.Equal(t, 1.0, v, "the new file was accepted")

	t.Run("idle_timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = br.ReadByte()
		var ne net.Error
		assert.False(t, asTimeout(err, &ne), "the keep-alive connection idle for 2s (idle_timeout 200ms after the reload) was not closed: %v", err)
	})
	t.Run("read_header_timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer conn.Close()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		assert.False(t, asTimeout(err, &ne), "headers unfinished for 2s (read_header_timeout 200ms after the reload) were not cut: %v", err)
	})
}
