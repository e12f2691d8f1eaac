package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// rawDo sends one raw HTTP/1.1 request and returns the status (0 if none).
func rawDo(t *testing.T, addr, raw string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestReviewHeldRouteLimitAndRelay: attacks on the route limit and the
// relay that held (no provider reached, or only the allowed route's).
func TestReviewHeldRouteLimitAndRelay(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	p := startProxy(t, cfg, proxyOpts{env: env})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, body := range []string{
		`{"model":"small","model":"gateway",` + msgs + `}`,
		`{"mod\u0065l":"gateway",` + msgs + `}`,
		`{"model":"gat\u0065way",` + msgs + `}`,
		`{"model":"GATEWAY",` + msgs + `}`,
		`{"model":" gateway",` + msgs + `}`,
		`{"model":"gateway\u0000",` + msgs + `}`,
		`{"model":"ｇａｔｅｗａｙ",` + msgs + `}`,
		`{"model":"a/m1 ",` + msgs + `}`,
		`{"model":"http://127.0.0.1:1/v1",` + msgs + `}`,
		`{"model":"evil/gpt-4o",` + msgs + `}`,
		`{"model":"gwproxy-origin/x",` + msgs + `}`,
		`{"model":"small","model":null,` + msgs + `}`,
		`{"model":"small"} {"model":"gateway"}`,
		"\xef\xbb\xbf" + `{"model":"gateway",` + msgs + `}`,
	} {
		a.Reset()
		b.Reset()
		res, rb := p.do("POST", "/v1/chat/completions", keySmall, body)
		assert.NotEqual(t, 200, res.StatusCode, "%q: %s", body, rb)
		assert.Equal(t, 0, a.Count()+b.Count(), "%q reached a provider", body)
	}
	// The preference header cannot leave the allowed route.
	a.Reset()
	b.Reset()
	res, rb := p.do("POST", "/v1/chat/completions", keySmall, fmt.Sprintf(chatBody, "small"), gwtransport.HeaderPrefer, "a/m1")
	assert.Equal(t, 200, res.StatusCode, "%s", rb)
	assert.Equal(t, 0, a.Count())

	// Paths, methods, absolute-form URIs, Host games: nothing without a key.
	small := fmt.Sprintf(chatBody, "gateway")
	a.Reset()
	b.Reset()
	for _, line := range []string{
		"POST //v1/chat/completions HTTP/1.1",
		"POST /v1/chat/completions/ HTTP/1.1",
		"POST /v1/../v1/chat/completions HTTP/1.1",
		"POST /v1/chat%2Fcompletions HTTP/1.1",
		"POST http://evil.example/v1/chat/completions HTTP/1.1",
		"PUT /v1/chat/completions HTTP/1.1",
		"PATCH /v1/chat/completions HTTP/1.1",
		"POST /V1/chat/completions HTTP/1.1",
		"POST /v1/chat/completions?model=gateway HTTP/1.1",
		"POST /v1/./chat/completions HTTP/1.1",
	} {
		for _, auth := range []string{"", "Authorization: Bearer wrong\r\n", "Authorization: Basic " + keyAll + "\r\n"} {
			st, rb := rawDo(t, p.addr, line+"\r\nHost: evil.example\r\nContent-Type: application/json\r\n"+auth+fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(small))+small)
			assert.NotEqual(t, 200, st, "%s %q: %s", line, auth, rb)
		}
		// With the small key, nothing reaches route gateway.
		st, rb := rawDo(t, p.addr, line+"\r\nHost: evil.example\r\nContent-Type: application/json\r\nAuthorization: Bearer "+keySmall+"\r\n"+fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(small))+small)
		assert.NotEqual(t, 200, st, "%s: %s", line, rb)
	}
	assert.Equal(t, 0, a.Count()+b.Count(), "a request without a valid key or outside its route reached a provider")

	// Repeated and oddly cased credential headers, cookies: none reaches a
	// provider, which gets its own key.
	a.Reset()
	b.Reset()
	st, rb2 := rawDo(t, p.addr, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nauthorization: Bearer "+keyAll+"\r\nAUTHORIZATION: Bearer "+keySmall+"\r\napi-key: "+keyAll+"\r\nX-API-KEY: "+keyAll+"\r\nCookie: session="+keyAll+"\r\nProxy-Authorization: Bearer "+keyAll+"\r\nContent-Type: application/json\r\n"+fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(small))+small)
	require.Equal(t, 200, st, rb2)
	noProxyKeyAt(t, a, b)
	for _, r := range a.Journal() {
		assert.Empty(t, r.Header.Values("Cookie"))
	}

	// Chunked over the limit, gzip bomb: refused, nothing forwarded.
	a.Reset()
	b.Reset()
	big := `{"model":"gateway","messages":[{"role":"user","content":"` + strings.Repeat("x", 5<<20) + `"}]}`
	st, _ = rawDo(t, p.addr, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+keyAll+"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big))
	assert.Equal(t, 413, st)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, big)
	zw.Close()
	st, _ = rawDo(t, p.addr, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+keyAll+"\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n"+fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", gz.Len())+gz.String())
	assert.Equal(t, 400, st)
	assert.Equal(t, 0, a.Count()+b.Count())
}
