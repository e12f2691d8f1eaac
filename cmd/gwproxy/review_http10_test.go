package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewHTTP10TruncatedBodyLooksComplete: a response the engine hands
// over unverified (over max_verified_body) and that the provider cuts is
// aborted by copyBody. Over HTTP/1.1 the missing last chunk shows the
// break. But gwproxy drops the exact Content-Length the provider sent, so
// an HTTP/1.0 client (nginx's proxy_pass speaks HTTP/1.0 to upstreams by
// default) reads a body delimited by the connection's close: the abort is
// indistinguishable from a clean end, and the truncated answer arrives as
// a complete 200.
func TestReviewHTTP10TruncatedBodyLooksComplete(t *testing.T) {
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	cfg = strings.Replace(cfg, "defaults:\n  max_retries: 0\n", "defaults:\n  max_retries: 0\n  max_verified_body: 16\n", 1)
	p := startProxy(t, cfg, proxyOpts{env: env})
	a.Enqueue(gatewaytest.Fault{BodyCutAfter: 40})
	body := fmt.Sprintf(chatBody, "gateway")
	conn, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	got, rerr := io.ReadAll(res.Body)
	t.Logf("%d Content-Length %d %q err %v", res.StatusCode, res.ContentLength, got, rerr)
	if res.StatusCode == 200 {
		assert.Error(t, rerr, "a truncated answer (%d bytes) ended cleanly", len(got))
	}
}
