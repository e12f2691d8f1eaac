package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// http10Do sends one HTTP/1.0 request and returns the response, its body
// and the error reading it.
func http10Do(t *testing.T, addr, body string) (*http.Response, string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	got, rerr := io.ReadAll(res.Body)
	return res, string(got), rerr
}

// TestHTTP10AnswersHaveALength: an HTTP/1.0 client cannot tell a body cut
// short from a complete one unless the body has a length. A stream (whose
// length is never known) is refused with 505 before any provider; an
// answer of unknown length (over max_verified_body, sent chunked) is read
// whole and sent with its length, or, when it breaks, replaced by a 502
// naming the attempts.
func TestHTTP10AnswersHaveALength(t *testing.T) {
	const answer = `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}]}`
	var calls atomic.Int64
	var cut atomic.Bool
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		io.WriteString(w, answer[:40])
		w.(http.Flusher).Flush() // chunked: no Content-Length
		if cut.Load() {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, answer[40:])
	})
	srv := newHTTPServer(t, prov)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\nmodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\n  max_verified_body: 16\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srv)
	p := startProxy(t, cfg, proxyOpts{})

	t.Run("stream refused", func(t *testing.T) {
		calls.Store(0)
		res, got, err := http10Do(t, p.addr, fmt.Sprintf(streamBody, "gateway"))
		require.NoError(t, err)
		assert.Equal(t, http.StatusHTTPVersionNotSupported, res.StatusCode, got)
		assert.Equal(t, "http_version_not_supported", decodeError(t, []byte(got)).Error.Code)
		assert.Equal(t, int64(0), calls.Load(), "a refused stream reached the provider")
	})
	t.Run("unknown length sent with its length", func(t *testing.T) {
		res, got, err := http10Do(t, p.addr, fmt.Sprintf(chatBody, "gateway"))
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, got)
		assert.Equal(t, int64(len(answer)), res.ContentLength)
		assert.Equal(t, answer, got)
	})
	t.Run("unknown length broken", func(t *testing.T) {
		cut.Store(true)
		defer cut.Store(false)
		res, got, err := http10Do(t, p.addr, fmt.Sprintf(chatBody, "gateway"))
		require.NoError(t, err)
		require.Equal(t, http.StatusBadGateway, res.StatusCode, got)
		e := decodeError(t, []byte(got))
		assert.NotEmpty(t, e.Error.Attempts)
		assert.True(t, strings.Contains(e.Error.Message, "HTTP/1.1"), e.Error.Message)
	})
	t.Run("HTTP/1.1 streams as before", func(t *testing.T) {
		req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, "gateway")))
		req.Header.Set("Authorization", "Bearer "+keyAll)
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		got, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		assert.Equal(t, answer, string(got))
		assert.Equal(t, int64(-1), res.ContentLength, "an unverified answer of unknown length is streamed through to an HTTP/1.1 client")
	})
}
