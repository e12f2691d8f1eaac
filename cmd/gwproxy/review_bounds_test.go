package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reviewLimits are tight limits for the bounds tests.
const reviewLimits = "  max_body_bytes: 1024\n  read_header_timeout: 200ms\n  read_timeout: 300ms\n  idle_timeout: 300ms\n  shutdown_timeout: 500ms\n"

// stalledBody sends a request whose headers promise a body that never
// comes, and returns how the server answered within wait: the response
// (nil if none) and whether the connection was closed.
func stalledBody(t *testing.T, addr, head string, wait time.Duration) (*http.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprint(conn, head)
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if res != nil {
		res.Body.Close()
		// Answered: the connection must not be held either (net/http
		// discards the unread body after the answer): it closes within
		// the wait.
		_, rerr := io.Copy(io.Discard, br)
		var ne net.Error
		assert.False(t, asTimeout(rerr, &ne), "answered %d, but the connection was still open after %v: %v", res.StatusCode, wait, rerr)
	}
	return res, err
}

// TestReviewStalledBodyCutEverywhere: a client that sends headers with a
// Content-Length and then never sends the body must be cut (or answered)
// within proxy.read_timeout (300ms here) on every path, not only on an
// authenticated POST that reads its body. On the 401, 404 and 405 paths
// the handler answers without reading the body, net/http then discards the
// body before sending the answer, with no read deadline (http.Server has no
// ReadTimeout): the connection and its goroutine are held for as long as the
// client likes, before any authentication.
func TestReviewStalledBodyCutEverywhere(t *testing.T) {
	_, _, cfg, env := twoProviders(t, reviewLimits)
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct{ name, head string }{
		{"authenticated POST (read_timeout hits, then the 408 waits on the body)", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + keyAll + "\r\nContent-Length: 100\r\n\r\n"},
		{"no key", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"},
		{"no key chunked", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"wrong key", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 100\r\n\r\n"},
		{"healthz", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"},
		{"unknown path", "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := stalledBody(t, p.addr, tc.head, 3*time.Second)
			var ne net.Error
			timedOut := err != nil && asTimeout(err, &ne)
			assert.False(t, timedOut, "no answer and no close after %v: the stalled body holds the connection (err %v)", time.Since(start).Round(time.Millisecond), err)
			if res != nil {
				t.Logf("answered %d after %v", res.StatusCode, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
