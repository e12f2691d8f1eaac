package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReloadTimeoutsReachOpenConnections: a reload's idle_timeout and
// read_header_timeout apply to the connections already open, from their
// next wait on, raised as well as lowered; a request in flight is not cut
// by them.
func TestReloadTimeoutsReachOpenConnections(t *testing.T) {
	_, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n  idle_timeout: 300ms\n  read_header_timeout: 300ms\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	p := startProxy(t, "", proxyOpts{env: env, path: path})
	reload := func(from, to string) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, []byte(strings.Replace(cfg, from, to, 1)), 0o600))
		before := reloads(t, p)
		p.sigs <- syscall.SIGHUP
		require.Eventually(t, func() bool { return reloads(t, p) > before }, 10*time.Second, 5*time.Millisecond)
	}
	get := func(conn net.Conn, br *bufio.Reader) {
		t.Helper()
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
	}

	// Raised: a connection opened before the reload waits idle past the
	// old 300ms and serves its next request, whose headers arrive slower
	// than the old 300ms too.
	conn, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	get(conn, br)
	reload("  idle_timeout: 300ms\n  read_header_timeout: 300ms\n", "  idle_timeout: 5s\n  read_header_timeout: 5s\n")
	get(conn, br) // the new idle period is timed with 5s
	time.Sleep(500 * time.Millisecond)
	_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\n")
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond)
	_, err = io.WriteString(conn, "Host: x\r\n\r\n")
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err, "a connection idle 500ms, then headers over 500ms, with both timeouts raised to 5s")
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode)

	// Lowered again: the same connection closes after the new idle timeout.
	reload("  idle_timeout: 300ms\n  read_header_timeout: 300ms\n", "  idle_timeout: 100ms\n  read_header_timeout: 100ms\n")
	get(conn, br)
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	require.False(t, asTimeout(err, &ne), "the idle connection was not closed: %v", err)
	assert.Less(t, time.Since(start), 2*time.Second)

	// A request in flight is not cut by the header or idle timeout: a body
	// read and answered after both have passed.
	body := `{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`
	conn2, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer conn2.Close()
	_, err = io.WriteString(conn2, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+keyAll+"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
	require.NoError(t, err)
	time.Sleep(250 * time.Millisecond) // past both, within read_timeout (30s)
	_, err = io.WriteString(conn2, body)
	require.NoError(t, err)
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode)
}
