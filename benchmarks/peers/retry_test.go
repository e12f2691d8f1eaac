// Package peers benchmarks gwtransport's retry path against the Go retry
// libraries doing the same retry against the same server. It is a module of
// its own so that the library's go.mod does not carry the peers.
package peers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/gwtransport/gwtransport"
)

var completion = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}`)

// flakyN answers 503 to fails requests, then 200 to the next, in turn: a
// sequential client sees exactly fails failures and retries per call.
func flakyN(b *testing.B, fails int64) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if (n.Add(1)-1)%(fails+1) < fails {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
			return
		}
		_, _ = w.Write(completion)
	}))
	b.Cleanup(s.Close)
	return s
}

func body(model string) []byte {
	return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Hello there, please answer briefly."}]}`)
}

// BenchmarkRetry503: one 503 then success, no wait between the attempts.
func BenchmarkRetry503(b *testing.B) {
	for _, name := range libs {
		b.Run("lib="+name, func(b *testing.B) { benchRetry(b, name, 1) })
	}
}

// BenchmarkRetryAttempts: 0 and 3 503s before the success, no wait
// between the attempts. The difference between the two, divided by 3, is
// what one more attempt costs.
func BenchmarkRetryAttempts(b *testing.B) {
	for _, fails := range []int{0, 3} {
		for _, name := range libs {
			b.Run(fmt.Sprintf("fails=%d/lib=%s", fails, name), func(b *testing.B) { benchRetry(b, name, fails) })
		}
	}
}

var libs = []string{"gwtransport", "go-retryablehttp", "failsafe-go"}

// clients makes each library's client, retrying a 503 up to retries times
// without a wait.
func clients(b *testing.B, retries int) map[string]func(base http.RoundTripper) *http.Client {
	return map[string]func(base http.RoundTripper) *http.Client{
		"gwtransport": func(base http.RoundTripper) *http.Client {
			tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-4o"},
				gwtransport.WithMaxRetries(retries), gwtransport.WithBackoff(gwtransport.Backoff{}),
				gwtransport.WithEnv(func(string) (string, bool) { return "", false }))
			if err != nil {
				b.Fatal(err)
			}
			return &http.Client{Transport: tr}
		},
		"go-retryablehttp": func(base http.RoundTripper) *http.Client {
			c := retryablehttp.NewClient()
			c.HTTPClient = &http.Client{Transport: base}
			c.RetryMax = retries
			c.RetryWaitMin, c.RetryWaitMax = 0, 0
			c.Backoff = func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }
			c.Logger = nil
			return c.StandardClient()
		},
		"failsafe-go": func(base http.RoundTripper) *http.Client {
			rp := retrypolicy.NewBuilder[*http.Response]().
				HandleIf(func(r *http.Response, err error) bool { return err != nil || r.StatusCode == 503 }).
				// failsafe-go leaves the failed response open; drain and
				// close it so the connection is reused, as the others do.
				OnRetry(func(e failsafe.ExecutionEvent[*http.Response]) {
					if r := e.LastResult(); r != nil {
						_, _ = io.Copy(io.Discard, r.Body)
						r.Body.Close()
					}
				}).
				WithMaxRetries(retries).WithDelay(0).ReturnLastFailure().Build()
			return &http.Client{Transport: failsafehttp.NewRoundTripper(base, rp)}
		},
	}
}

// benchRetry measures one library's calls that see fails 503s, then a
// success.
func benchRetry(b *testing.B, name string, fails int) {
	s := flakyN(b, int64(fails))
	base := &http.Transport{MaxIdleConnsPerHost: 16}
	defer base.CloseIdleConnections()
	c := clients(b, max(fails, 1))[name](base)
	model := "gpt-4o"
	if name == "gwtransport" {
		model = "gateway"
	}
	payload := body(model)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.StopTimer()
	if cpu > 0 {
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	}
}
