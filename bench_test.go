package gwtransport

// Benchmarks. Each compares the direct http.Client round trip on loopback
// (the physical limit) with the same request through gwtransport, in the
// same run. See BENCHMARKS.md for the method and the figures.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchUpstream is a minimal OpenAI-compatible server: it drains the body
// and answers a fixed completion, or a fixed stream of events.
type benchUpstream struct {
	srv     *httptest.Server
	events  int
	gap     time.Duration // pause after the first event, as a model thinking
	hold    chan struct{} // when set, requests wait here
	arrived atomic.Int64
}

var benchCompletion = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":8,"total_tokens":15}}`)

func newBenchUpstream(tb testing.TB, events int) *benchUpstream {
	u := &benchUpstream{events: events}
	chunk := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}` + "\n\n")
	final := []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if u.hold != nil {
			u.arrived.Add(1)
			<-u.hold
		}
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(benchCompletion)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < u.events; i++ {
			_, _ = w.Write(chunk)
			fl.Flush()
			if i == 0 && u.gap > 0 {
				time.Sleep(u.gap)
			}
		}
		_, _ = w.Write(final)
	}))
	tb.Cleanup(u.srv.Close)
	return u
}

// benchBody is a chat request of about size bytes, made of 1 KB messages.
func benchBody(size int, model string, stream bool) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"messages":[`)
	text := strings.Repeat(`Lorem ipsum dolor sit amet, \"consectetur\" adipiscing elit. `, 16)[:900]
	for i := 0; buf.Len() < size-200 || i == 0; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"role":"user","content":"%s"}`, text)
	}
	fmt.Fprintf(&buf, `],"model":%q,"temperature":0.2,"stream":%t}`, model, stream)
	return buf.Bytes()
}

func newBaseTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 20000, MaxIdleConnsPerHost: 20000, MaxConnsPerHost: 0}
}

// benchClients returns the three ways of sending: direct, through the
// gateway as a pass-through, and through the gateway's rewrite path.
func benchClients(b testing.TB, base http.RoundTripper) map[string]*http.Client {
	tr, err := NewTransport(base, []string{"openai/gpt-4o"}, WithEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		b.Fatal(err)
	}
	return map[string]*http.Client{
		"direct":      {Transport: base},
		"passthrough": {Transport: tr},
		"gateway":     {Transport: tr},
	}
}

func modelFor(mode string) string {
	if mode == "gateway" {
		return "gateway"
	}
	return "gpt-4o-mini"
}

func post(c *http.Client, url string, body []byte, stream bool) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-bench")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", res.StatusCode)
	}
	return time.Since(start), err
}

// reportPercentiles adds p50 and p99 of the per-request latencies.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkRoundTrip: direct vs pass-through vs gateway, by body size,
// streamed and not.
func BenchmarkRoundTrip(b *testing.B) {
	for _, stream := range []bool{false, true} {
		for _, size := range []int{1 << 10, 100 << 10, 1 << 20} {
			for _, mode := range []string{"direct", "passthrough", "gateway"} {
				name := fmt.Sprintf("stream=%t/body=%s/via=%s", stream, sizeName(size), mode)
				b.Run(name, func(b *testing.B) {
					up := newBenchUpstream(b, 20)
					base := newBaseTransport()
					defer base.CloseIdleConnections()
					c := benchClients(b, base)[mode]
					body := benchBody(size, modelFor(mode), stream)
					url := up.srv.URL + "/v1/chat/completions"
					if _, err := post(c, url, body, stream); err != nil {
						b.Fatal(err)
					}
					lat := make([]time.Duration, 0, b.N)
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					b.ResetTimer()
					cpu := cpuTime()
					for i := 0; i < b.N; i++ {
						d, err := post(c, url, body, stream)
						if err != nil {
							b.Fatal(err)
						}
						lat = append(lat, d)
					}
					b.StopTimer()
					reportCPU(b, cpu)
					reportPercentiles(b, lat)
				})
			}
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkStream measures a long stream (500 events, a 2 ms pause after
// the first, as a model does): time to the first event and total time,
// direct vs through the gateway. Without the pause the first event's time
// is dominated by how the scheduler interleaves the server's burst of
// writes with the client on two cores, and is bimodal for both.
func BenchmarkStream(b *testing.B) {
	for _, mode := range []string{"direct", "gateway"} {
		b.Run("via="+mode, func(b *testing.B) {
			up := newBenchUpstream(b, 500)
			up.gap = 2 * time.Millisecond
			base := newBaseTransport()
			defer base.CloseIdleConnections()
			c := benchClients(b, base)[mode]
			body := benchBody(1<<10, modelFor(mode), true)
			url := up.srv.URL + "/v1/chat/completions"
			ttft := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "text/event-stream")
				start := time.Now()
				res, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 64)
				if _, err := io.ReadAtLeast(res.Body, buf, 6); err != nil {
					b.Fatal(err)
				}
				ttft = append(ttft, time.Since(start))
				if _, err := io.Copy(io.Discard, res.Body); err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
			}
			b.StopTimer()
			reportCPU(b, cpu)
			sort.Slice(ttft, func(i, j int) bool { return ttft[i] < ttft[j] })
			b.ReportMetric(float64(ttft[len(ttft)/2].Nanoseconds()), "ttft-p50-ns")
			b.ReportMetric(float64(ttft[(len(ttft)-1)*99/100].Nanoseconds()), "ttft-p99-ns")
		})
	}
}

// BenchmarkRewrite: the gateway's byte-level body rewrite against an
// encoding/json decode and re-encode of the same body.
func BenchmarkRewrite(b *testing.B) {
	msgs := map[string][]Message{"openai/gpt-4o": {{Role: "system", Content: "You are concise."}}}
	for _, size := range []int{1 << 10, 100 << 10, 1 << 20, 10 << 20} {
		body := benchBody(size, "gateway", false)
		for _, mode := range []string{"swap", "swap+messages", "encoding-json"} {
			b.Run(fmt.Sprintf("body=%s/impl=%s", sizeName(size), mode), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				switch mode {
				case "encoding-json":
					for i := 0; i < b.N; i++ {
						var m map[string]any
						if err := json.Unmarshal(body, &m); err != nil {
							b.Fatal(err)
						}
						m["model"] = "gpt-4o"
						if _, err := json.Marshal(m); err != nil {
							b.Fatal(err)
						}
					}
				default:
					var opts []Option
					if mode == "swap+messages" {
						opts = append(opts, WithModelMessages(msgs))
					}
					g, err := compile([]string{"openai/gpt-4o"}, opts)
					if err != nil {
						b.Fatal(err)
					}
					t := g.order[0].targets[0]
					var out []byte
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						var info bodyInfo
						if err := scanBody(body, &info); err != nil {
							b.Fatal(err)
						}
						out = rewriteBody(out[:0], body, &info, t.quotedModel, t.messages)
					}
				}
			})
		}
	}
}

// BenchmarkInflight holds n requests in flight at once at the upstream and
// reports the heap held per in-flight request, direct vs gateway, and the
// throughput of n concurrent clients.
func BenchmarkInflight(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 5000, 10000} {
		for _, mode := range []string{"direct", "gateway"} {
			b.Run(fmt.Sprintf("n=%d/via=%s", n, mode), func(b *testing.B) {
				if n > 1000 && testing.Short() {
					b.Skip("large fan-out skipped in -short mode")
				}
				// Client and server live in this process: two descriptors
				// per request in flight.
				if lim := fdLimit(); lim < uint64(2*n+256) {
					b.Skipf("needs %d file descriptors, the limit is %d", 2*n+256, lim)
				}
				up := newBenchUpstream(b, 0)
				base := newBaseTransport()
				defer base.CloseIdleConnections()
				c := benchClients(b, base)[mode]
				body := benchBody(1<<10, modelFor(mode), false)
				url := up.srv.URL + "/v1/chat/completions"
				var perReq float64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					up.hold = make(chan struct{})
					up.arrived.Store(0)
					var ms0, ms1 runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&ms0)
					var wg sync.WaitGroup
					errs := make(chan error, n)
					for j := 0; j < n; j++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if _, err := post(c, url, body, false); err != nil {
								errs <- err
							}
						}()
					}
					for up.arrived.Load() < int64(n) {
						time.Sleep(time.Millisecond)
					}
					runtime.GC()
					runtime.ReadMemStats(&ms1)
					perReq = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / float64(n)
					close(up.hold)
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(perReq, "heap-B/inflight")
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// streamPayload is a complete stream of n events: chat chunks, or
// Responses events.
func streamPayload(kind string, n int) []byte {
	var buf bytes.Buffer
	if kind == "responses" {
		buf.WriteString("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"error\":null}}\n\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&buf, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"token \"}\n\n", i+1)
		}
		buf.WriteString("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9999,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"error\":null}}\n\n")
		return buf.Bytes()
	}
	for i := 0; i < n; i++ {
		buf.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}` + "\n\n")
	}
	buf.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
	return buf.Bytes()
}

// BenchmarkStreamBody: the gateway's own work on a stream, without the
// network: 500 events read through the first-event peek and the committed
// stream reader (completeness tracking, in-band error detection), against
// a plain buffered copy of the same bytes.
func BenchmarkStreamBody(b *testing.B) {
	for _, kind := range []string{"chat", "responses"} {
		payload := streamPayload(kind, 500)
		for _, via := range []string{"copy", "gateway"} {
			b.Run("kind="+kind+"/via="+via, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					rc := io.NopCloser(bytes.NewReader(payload))
					if via == "copy" {
						if _, err := io.Copy(io.Discard, bufio.NewReaderSize(rc, 4<<10)); err != nil {
							b.Fatal(err)
						}
						continue
					}
					up := newUpstream(rc)
					br := bufio.NewReaderSize(up, 4<<10)
					prefix, _, err := peekFirstEvent(br, "chat/completions")
					if err != nil {
						b.Fatal(err)
					}
					_, cancel := context.WithCancel(context.Background())
					op := "chat/completions"
					if kind == "responses" {
						op = "responses"
					}
					sb := newStreamBody(prefix, br, up, cancel, time.Minute, time.Second, 1, op)
					if _, err := io.Copy(io.Discard, sb); err != nil {
						b.Fatal(err)
					}
					sb.Close()
				}
			})
		}
	}
}
