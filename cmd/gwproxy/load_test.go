package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestLoad1000Streams: 1,000 streams at once through gwproxy, every one
// open at the same time (the provider holds each until all have started),
// all complete without an error, the heap stays bounded, and nothing is
// left running after shutdown.
func TestLoad1000Streams(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 1000
	if lim := fdLimit(); lim != 0 && lim < 4*n+200 {
		t.Skipf("the open-file limit %d is below the %d this test needs", lim, 4*n+200)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	var started atomic.Int64
	all := make(chan struct{})
	var closeAll sync.Once
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"one \"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		if started.Add(1) == n {
			closeAll.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"two\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	})
	srvURL, stopProv := serveFor(t, prov)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srvURL)
	p := startProxy(t, cfg, proxyOpts{})

	var peak atomic.Uint64
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	client := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
			req.Header.Set("Authorization", "Bearer "+keyAll)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			switch {
			case err != nil:
				errs <- err
			case res.StatusCode != 200:
				errs <- fmt.Errorf("status %d: %s", res.StatusCode, b)
			case !strings.Contains(string(b), `"two"`) || !strings.HasSuffix(string(b), "data: [DONE]\n\n"):
				errs <- fmt.Errorf("incomplete stream: %q", b)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampleDone
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	require.Empty(t, failed, "%d of %d streams failed, first: %v", len(failed), n, failed)
	assert.Equal(t, int64(n), started.Load(), "every stream reached the provider once")
	v, _ := metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": "200"})
	assert.Equal(t, float64(n), v)
	t.Logf("%d concurrent streams in %v; peak heap in use %.1f MiB (%.1f KiB per stream)", n, elapsed.Round(time.Millisecond),
		float64(peak.Load())/(1<<20), float64(peak.Load())/1024/n)
	// Bounded: well under a megabyte per stream (under -race, too).
	assert.Less(t, peak.Load(), uint64(256<<20))

	client.CloseIdleConnections()
	require.NoError(t, p.stop())
	stopProv()
}

// serveFor serves h on 127.0.0.1 and returns its URL and a stop that
// closes it with its connections (tests that check goroutines call it
// before their cleanups run).
func serveFor(t *testing.T, h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	stop := func() { srv.Close(); <-done }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}
