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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// wtProvider streams chunk events: events of them (0: until its request
// ends), gap apart. It counts the requests whose context was cancelled
// before the stream's end.
type wtProvider struct {
	events    int
	gap       time.Duration
	size      int
	cancelled atomic.Int32
}

func (p *wtProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	ev := fmt.Sprintf("data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", strings.Repeat("x", p.size))
	for i := 0; p.events == 0 || i < p.events; i++ {
		if _, err := io.WriteString(w, ev); err != nil {
			break
		}
		w.(http.Flusher).Flush()
		if p.gap > 0 {
			select {
			case <-time.After(p.gap):
			case <-r.Context().Done():
			}
		}
		if r.Context().Err() != nil {
			break
		}
	}
	if r.Context().Err() != nil {
		p.cancelled.Add(1)
		return
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

// wtConfig is a proxy on one provider at url with the given proxy lines.
func wtConfig(url, proxyLines string) string {
	return fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\n%smodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), proxyLines, url)
}

// wtStuckClient sends a streamed request on a raw connection with a tiny
// receive buffer, reads the headers and the first event, and then stops
// reading.
func wtStuckClient(t *testing.T, p *testProxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	body := fmt.Sprintf(streamBody, "gateway")
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	br := bufio.NewReaderSize(c, 1024)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, status, " 200 ")
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "data: ") || strings.Contains(line, "data: {") {
			return c // and never reads again
		}
	}
}

// wtInFlight is gwproxy_requests_in_flight, and the count of streamed
// chat requests with the given code.
func wtInFlight(p *testProxy, code string) (inFlight, counted float64) {
	fams := p.metrics()
	inFlight, _ = metricValue(fams, "gwproxy_requests_in_flight", nil)
	counted, _ = metricValue(fams, "gwproxy_requests_total", map[string]string{"endpoint": "/v1/chat/completions", "code": code})
	return inFlight, counted
}

// TestWriteTimeoutCutsAClientThatStopsReading: a client that reads the
// headers and the first event of an endless stream and then stops reading
// is cut once a write has waited proxy.write_timeout: the handler ends,
// the provider's request is cancelled, the request counts as 499 with
// "client_too_slow" in the log, and the server span has an error status.
func TestWriteTimeoutCutsAClientThatStopsReading(t *testing.T) {
	prov := &wtProvider{size: 4096}
	url, _ := serveFor(t, prov)
	exp, tel := review2Tel(t)
	p := startProxy(t, wtConfig(url, "  write_timeout: 200ms\n"), proxyOpts{tel: tel})
	c := wtStuckClient(t, p)
	defer c.Close()
	stopped := time.Now()
	require.Eventually(t, func() bool { return prov.cancelled.Load() == 1 }, 5*time.Second, 10*time.Millisecond,
		"the provider's request outlived a client that stopped reading")
	require.Eventually(t, func() bool { n, c := wtInFlight(p, "499"); return n == 0 && c == 1 }, 5*time.Second, 10*time.Millisecond,
		"the handler did not end as 499")
	took := time.Since(stopped)
	assert.Less(t, took, 5*time.Second)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond, "cut before a write waited write_timeout")
	_, ok := wtInFlight(p, "200")
	assert.Equal(t, float64(0), ok)
	logs := p.logs.String()
	assert.Contains(t, logs, `"error":"client_too_slow"`)
	assert.Contains(t, logs, `"status":499`)
	assert.Contains(t, logs, "the client stopped reading")
	var server []string
	for _, s := range exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			server = append(server, s.Name)
			assert.Equal(t, codes.Error, s.Status.Code)
			v, _ := review2Attr(s, "error.type")
			assert.Equal(t, "client_too_slow", v)
			v, _ = review2Attr(s, "http.response.status_code")
			assert.Equal(t, "499", v)
		}
	}
	assert.Equal(t, []string{"POST /v1/chat/completions"}, server)
}

// TestWriteTimeoutKeepsASlowSteadyReader: the bound is per write, not per
// answer: a stream of 1.5 s read in small steps every 50 ms, each write
// completing within 200 ms, arrives whole with write_timeout 200ms.
func TestWriteTimeoutKeepsASlowSteadyReader(t *testing.T) {
	prov := &wtProvider{events: 30, gap: 50 * time.Millisecond, size: 512}
	url, _ := serveFor(t, prov)
	p := startProxy(t, wtConfig(url, "  write_timeout: 200ms\n"), proxyOpts{})
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	body := fmt.Sprintf(streamBody, "gateway")
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReaderSize(c, 256), nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	start := time.Now()
	var got strings.Builder
	buf := make([]byte, 256)
	for {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "the slow reader's stream was cut")
		time.Sleep(50 * time.Millisecond)
	}
	assert.Greater(t, time.Since(start), time.Second, "the stream is long against the bound")
	assert.Equal(t, 30, strings.Count(got.String(), "chat.completion.chunk"))
	assert.True(t, strings.HasSuffix(got.String(), "data: [DONE]\n\n"))
	require.Eventually(t, func() bool { n, c := wtInFlight(p, "200"); return n == 0 && c == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.NotContains(t, p.logs.String(), "client_too_slow")
	assert.Equal(t, int32(0), prov.cancelled.Load())
}

// TestWriteTimeoutZeroIsNoBound: write_timeout 0 keeps a client that stops
// reading (as before the setting): its handler and the provider's request
// still run after 500 ms; closing the client ends them.
func TestWriteTimeoutZeroIsNoBound(t *testing.T) {
	prov := &wtProvider{size: 4096}
	url, _ := serveFor(t, prov)
	p := startProxy(t, wtConfig(url, "  write_timeout: 0s\n"), proxyOpts{})
	require.Equal(t, time.Duration(0), p.s.state.Load().proxy.writeTimeout())
	c := wtStuckClient(t, p)
	time.Sleep(500 * time.Millisecond)
	n, _ := wtInFlight(p, "499")
	assert.Equal(t, float64(1), n, "the handler ended")
	assert.Equal(t, int32(0), prov.cancelled.Load())
	c.Close()
	require.Eventually(t, func() bool { return prov.cancelled.Load() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { n, _ := wtInFlight(p, "499"); return n == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.NotContains(t, p.logs.String(), "client_too_slow")
}

// TestWriteTimeoutReload: SIGHUP changes the bound for the answers that
// start after it: 0 (a stuck client holds), then 200ms (a stuck client is
// cut), then 0 again (a stuck client holds again).
func TestWriteTimeoutReload(t *testing.T) {
	prov := &wtProvider{size: 4096}
	url, _ := serveFor(t, prov)
	cfg := wtConfig(url, "  write_timeout: 0s\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	p := startProxy(t, "", proxyOpts{path: path})
	reload := func(wt string) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, []byte(strings.Replace(cfg, "write_timeout: 0s", "write_timeout: "+wt, 1)), 0o600))
		before := reloads(t, p)
		p.sigs <- syscall.SIGHUP
		require.Eventually(t, func() bool { return reloads(t, p) > before }, 10*time.Second, 5*time.Millisecond)
	}
	holds := func(want int32) {
		t.Helper()
		c := wtStuckClient(t, p)
		time.Sleep(500 * time.Millisecond)
		n, _ := wtInFlight(p, "499")
		assert.Equal(t, float64(1), n, "the handler ended")
		assert.Equal(t, want-1, prov.cancelled.Load())
		c.Close()
		require.Eventually(t, func() bool { return prov.cancelled.Load() == want }, 5*time.Second, 10*time.Millisecond)
		require.Eventually(t, func() bool { n, _ := wtInFlight(p, "499"); return n == 0 }, 5*time.Second, 10*time.Millisecond)
	}
	holds(1)
	assert.NotContains(t, p.logs.String(), "client_too_slow")

	reload("200ms")
	require.Equal(t, 200*time.Millisecond, p.s.state.Load().proxy.writeTimeout())
	c := wtStuckClient(t, p)
	defer c.Close()
	require.Eventually(t, func() bool { return prov.cancelled.Load() == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { n, _ := wtInFlight(p, "499"); return n == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, strings.Count(p.logs.String(), `"error":"client_too_slow"`))

	reload("0s")
	holds(3)
	assert.Equal(t, 1, strings.Count(p.logs.String(), `"error":"client_too_slow"`))
}

// TestWriteTimeoutKeepAliveAfterTheBound: a connection kept alive after an
// answer, idle longer than write_timeout, serves its next requests (a
// stream, /healthz): no answer inherits the last one's deadline.
func TestWriteTimeoutKeepAliveAfterTheBound(t *testing.T) {
	prov := &wtProvider{events: 2, size: 16}
	url, _ := serveFor(t, prov)
	p := startProxy(t, wtConfig(url, "  write_timeout: 100ms\n"), proxyOpts{})
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	body := fmt.Sprintf(streamBody, "gateway")
	for _, req := range []string{
		fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body),
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body),
	} {
		_, err := io.WriteString(c, req)
		require.NoError(t, err)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode, "%s", b)
		time.Sleep(300 * time.Millisecond) // idle past the last write's deadline
	}
}

// TestWriteTimeoutSetting: proxy.write_timeout defaults to 60s when
// absent, 0 is no bound (not the default), and a negative one is refused,
// naming the field, in YAML and JSON.
func TestWriteTimeoutSetting(t *testing.T) {
	prov := &wtProvider{events: 1}
	url, _ := serveFor(t, prov)
	for _, tc := range []struct {
		name, lines string
		want        time.Duration
		err         string
	}{
		{"absent", "", 60 * time.Second, ""},
		{"zero", "  write_timeout: 0s\n", 0, ""},
		{"bare zero", "  write_timeout: 0\n", 0, ""},
		{"set", "  write_timeout: 250ms\n", 250 * time.Millisecond, ""},
		{"negative", "  write_timeout: -1s\n", 0, "proxy.write_timeout: -1s must not be negative"},
		{"not a duration", "  write_timeout: soon\n", 0, "not a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newServer(serverConfig{data: []byte(wtConfig(url, tc.lines)), log: newLogger(100)})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.state.Load().proxy.writeTimeout())
		})
	}
	js := fmt.Sprintf(`{"proxy":{"keys":[{"name":"all","hash":"sha256:%x"}],"write_timeout":"-5ms"},"models":[{"target":"p/m"}],"providers":[{"name":"p","base_url":%q,"key_optional":true}]}`, hashKey(keyAll), url+"/v1")
	_, err := newServer(serverConfig{data: []byte(js), log: newLogger(100)})
	require.ErrorContains(t, err, "proxy.write_timeout: -5ms must not be negative")
	ok := strings.Replace(js, `"-5ms"`, `"0s"`, 1)
	s, err := newServer(serverConfig{data: []byte(ok), log: newLogger(100)})
	require.NoError(t, err)
	assert.Equal(t, time.Duration(0), s.state.Load().proxy.writeTimeout())
}

// TestWriteTimeoutQuietTail: an answer whose provider stays quiet longer
// than write_timeout after its last bytes still ends cleanly: the end of
// the chunked answer, written by net/http after the handler, has a fresh
// bound, not the one of the last write.
func TestWriteTimeoutQuietTail(t *testing.T) {
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(400 * time.Millisecond)
	})
	url, _ := serveFor(t, prov)
	p := startProxy(t, wtConfig(url, "  write_timeout: 100ms\n"), proxyOpts{})
	res, b := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	assert.True(t, strings.HasSuffix(string(b), "data: [DONE]\n\n"), "%q", b)
	require.Eventually(t, func() bool { n, c := wtInFlight(p, "200"); return n == 0 && c == 1 }, 5*time.Second, 10*time.Millisecond)
}

// TestWriteTimeoutCutsALargeAnswerNotRead: a non-streamed answer larger
// than the socket buffers, whose client reads its headers and then stops
// reading, is cut once a write has waited write_timeout: 499 with
// client_too_slow, and the handler ends.
func TestWriteTimeoutCutsALargeAnswerNotRead(t *testing.T) {
	big := `{"id":"1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("x", 32<<20) + `"},"finish_reason":"stop"}]}`
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, big)
	})
	url, _ := serveFor(t, prov)
	p := startProxy(t, wtConfig(url, "  write_timeout: 200ms\n"), proxyOpts{})
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	body := fmt.Sprintf(chatBody, "gateway")
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := bufio.NewReaderSize(c, 256).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, status, " 200 ")
	require.Eventually(t, func() bool { n, c := wtInFlight(p, "499"); return n == 0 && c == 1 }, 10*time.Second, 10*time.Millisecond,
		"the handler of an answer not read did not end as 499")
	assert.Contains(t, p.logs.String(), `"error":"client_too_slow"`)
}
