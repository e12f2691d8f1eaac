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

// TestReviewKeyIntervalAfterAFailureDoesNotWait: route [openai (always 500),
// local (one key, KeyInterval 200ms)], cap 2 s. Request 1 is served by
// local. Request 2, sent at once, fails at openai; local is the only target
// left and is within its KeyInterval: README ("Key pools", "Waiting for
// cooling targets") says it waits for the interval and is served.
func TestReviewKeyIntervalAfterAFailureDoesNotWait(t *testing.T) {
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
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(200 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(2*time.Second),
	)
	do := func() (int, []gwtransport.Attempt) {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", primary.URL+"/v1/chat/completions",
			stringsReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, trail.Attempts()
	}
	st, tr := do()
	require.Equal(t, 200, st, "%v", tr)
	st, tr = do()
	assert.Equal(t, 200, st, "second request should wait ~200ms for local's KeyInterval; trail %v", tr)
}
