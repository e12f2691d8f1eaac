package gwtransport

// BenchmarkInflightMemory: the memory the client process holds per request
// in flight, heap and goroutine stacks apart, direct vs through the
// gateway (one target, or two targets failing with 503 first), with 1 KB
// and 200 KB bodies. The upstream runs in a process of its own (this test
// binary re-executed), so the figures are the client's alone and each
// process needs one descriptor per request in flight.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const holdServerEnv = "GWTRANSPORT_BENCH_HOLD_SERVER"

func init() {
	if os.Getenv(holdServerEnv) == "1" {
		serveHold()
		os.Exit(0)
	}
}

// serveHold is the upstream of BenchmarkInflightMemory: it prints its
// address, holds every request after reading its body until /release,
// counts them at /arrived, and answers 503 at once under /fail.
func serveHold() {
	fdLimit()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println(ln.Addr().String())
	var (
		mu      sync.Mutex
		hold    = make(chan struct{})
		arrived atomic.Int64
	)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/arrived":
			fmt.Fprint(w, arrived.Load())
			return
		case r.URL.Path == "/release":
			mu.Lock()
			close(hold)
			hold = make(chan struct{})
			arrived.Store(0)
			mu.Unlock()
			return
		case r.URL.Path == "/quit":
			go func() { time.Sleep(10 * time.Millisecond); os.Exit(0) }()
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
			return
		}
		mu.Lock()
		h := hold
		mu.Unlock()
		arrived.Add(1)
		<-h
		_, _ = w.Write(benchCompletion)
	})}
	_ = srv.Serve(ln)
}

// startHoldServer re-executes the test binary as the hold server.
func startHoldServer(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdServerEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		_ = cmd.Process.Kill()
		b.Fatalf("hold server: %v %s", err, line)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return "http://" + strings.TrimSpace(line)
}

func BenchmarkInflightMemory(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, size := range []int{1 << 10, 200 << 10} {
			for _, via := range []string{"direct", "gateway", "gateway-2fallbacks"} {
				b.Run(fmt.Sprintf("n=%d/body=%s/via=%s", n, sizeName(size), via), func(b *testing.B) {
					if n > 1000 && testing.Short() {
						b.Skip("10,000 in flight skipped in -short mode")
					}
					if lim := fdLimit(); lim < uint64(n+256) {
						b.Skipf("needs %d file descriptors, the limit is %d", n+256, lim)
					}
					url := startHoldServer(b)
					control := &http.Client{Transport: &http.Transport{}}
					defer control.CloseIdleConnections()
					base := newBaseTransport()
					defer base.CloseIdleConnections()
					c := &http.Client{Transport: base}
					if via != "direct" {
						targets := []string{"hold/gpt-4o"}
						if via == "gateway-2fallbacks" {
							targets = []string{"f1/m", "f2/m", "hold/gpt-4o"}
						}
						tr, err := NewTransport(base, targets, WithMaxRetries(0),
							WithEnv(func(string) (string, bool) { return "", false }),
							WithProvider(Provider{Name: "hold", BaseURL: url + "/v1", APIKey: "k"}),
							WithProvider(Provider{Name: "f1", BaseURL: url + "/fail1/v1", APIKey: "k"}),
							WithProvider(Provider{Name: "f2", BaseURL: url + "/fail2/v1", APIKey: "k"}))
						if err != nil {
							b.Fatal(err)
						}
						c = &http.Client{Transport: tr}
					}
					// One body for every request: the caller's bytes are
					// not counted, only what each request adds to them.
					body := benchBody(size, modelFor(via), false)
					var heap, stack float64
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						base.CloseIdleConnections()
						var ms0, ms1 runtime.MemStats
						runtime.GC()
						runtime.ReadMemStats(&ms0)
						var wg sync.WaitGroup
						errs := make(chan error, n)
						for j := 0; j < n; j++ {
							wg.Add(1)
							go func() {
								defer wg.Done()
								if _, err := post(c, url+"/v1/chat/completions", body, false); err != nil {
									errs <- err
								}
							}()
						}
						for {
							res, err := control.Get(url + "/arrived")
							if err != nil {
								b.Fatal(err)
							}
							p, _ := io.ReadAll(res.Body)
							res.Body.Close()
							if k, _ := strconv.Atoi(string(p)); k >= n {
								break
							}
							select {
							case err := <-errs:
								b.Fatal(err)
							case <-time.After(5 * time.Millisecond):
							}
						}
						runtime.GC()
						runtime.ReadMemStats(&ms1)
						heap = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / float64(n)
						stack = float64(int64(ms1.StackInuse)-int64(ms0.StackInuse)) / float64(n)
						res, err := control.Post(url+"/release", "text/plain", bytes.NewReader(nil))
						if err != nil {
							b.Fatal(err)
						}
						res.Body.Close()
						wg.Wait()
						close(errs)
						for err := range errs {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					b.ReportMetric(heap, "heap-B/inflight")
					b.ReportMetric(stack, "stack-B/inflight")
					b.ReportMetric(heap+stack, "held-B/inflight")
				})
			}
		}
	}
}
