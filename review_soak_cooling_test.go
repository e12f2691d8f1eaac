package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewRetryAfterExact: A's breaker open (10 s), B's only key used 1 s
// ago with KeyInterval 5 s; the cap (1 s) forbids waiting: ErrNoTarget with
// RetryAfter exactly 4 s (B's key), nothing sent. Then with the cap at 10 s
// the request waits 4 s and is served by B.
func TestReviewRetryAfterExact(t *testing.T) {
	p := server(t, "primary", "key-p")
	p.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
	var hits int
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()
	for _, capWait := range []time.Duration{time.Second, 10 * time.Second} {
		clock := newFakeClock()
		hits = 0
		p.Reset()
		p.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
		hc := &http.Client{}
		mustInit(t, hc, []string{"openai/gpt-4o", "local/m"}, noEnv(), gwtransport.WithClock(clock),
			gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: p.URL, APIKey: "key-p"}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(5 * time.Second)}),
			gwtransport.WithMaxRetries(0),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}),
			gwtransport.WithMaxRetryWait(capWait),
		)
		do := func() (*http.Response, []gwtransport.Attempt, error) {
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/v1/chat/completions",
				stringsReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			res, err := hc.Do(req)
			if res != nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			return res, trail.Attempts(), err
		}
		res, tr, err := do()
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, "%v", tr)
		_ = clock.Sleep(context.Background(), time.Second)
		sentBefore := p.Count() + hits
		res, tr, err = do()
		if capWait == time.Second {
			require.Error(t, err, "%v", tr)
			d, ok := gwtransport.RetryAfterOf(err)
			assert.True(t, ok)
			assert.Equal(t, 4*time.Second, d, "%v", err)
			assert.Equal(t, sentBefore, p.Count()+hits, "nothing sent")
		} else {
			require.NoError(t, err)
			assert.Equal(t, 200, res.StatusCode, "%v", tr)
			require.NotEmpty(t, tr)
			assert.Equal(t, 4*time.Second, tr[len(tr)-1].CoolingWait, "%v", tr)
		}
	}
}
