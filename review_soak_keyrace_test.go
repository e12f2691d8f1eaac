package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewKeyIntervalRaceSkipsInsteadOfWaiting: concurrent requests on a
// one-key pool with KeyInterval. The README: "when no other target is left,
// the request waits for the interval to end, within the cooling bounds,
// rather than failing". A request whose key is taken by another request
// between the pick and the send records a skip ("every API key ... within
// its KeyInterval") and then ends without waiting: with the primary failing,
// it gets the primary's 500 (or an ErrNoTarget-wrapping error whose
// RetryAfterOf is false).
func TestReviewKeyIntervalRaceSkipsInsteadOfWaiting(t *testing.T) {
	primary := server(t, "primary", "key-p")
	primary.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o", "local/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: primary.URL, APIKey: "key-p"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(5 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(2*time.Second),
	)
	const N = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := 0; i < N; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", primary.URL+"/v1/chat/completions",
				stringsReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					return
				}
			}
			_, hasRA := gwtransport.RetryAfterOf(err)
			mu.Lock()
			defer mu.Unlock()
			st := 0
			if res != nil {
				st = res.StatusCode
			}
			bad = append(bad, "status "+rvItoa(st)+" err "+errString(err)+" isNoTarget "+boolS(errors.Is(err, gwtransport.ErrNoTarget))+" RetryAfterOf ok "+boolS(hasRA)+" trail "+attemptsString(trail.Attempts()))
		}()
	}
	wg.Wait()
	assert.Empty(t, bad, "every request should wait for the key's interval (5ms, cap 2s) and be served by local/m")
}

func stringsReader(s string) io.Reader { return &sr{s: s} }

type sr struct{ s string }

func (r *sr) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

func rvItoa(i int) string { return fmtSprint(i) }
func boolS(b bool) string { return fmtSprint(b) }
func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
func attemptsString(a []gwtransport.Attempt) string { return fmtSprint(a) }

var fmtSprint = func(a ...any) string { return fmt.Sprint(a...) }
