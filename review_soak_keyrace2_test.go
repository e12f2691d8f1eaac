package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewKeyTakenBetweenPickAndSendSingleTarget: the same race with a
// one-target route ["local/m"]: A should wait for the interval (≤ 50 ms).
// 500), local (one key, KeyInterval 50 ms)], cap 2 s. Request A fails at
// openai and picks local; before A sends, request B takes local's only key
// (the strategy hook holds A between its pick and its send). README: "when
// no other target is left, the request waits for the interval to end,
// within the cooling bounds, rather than failing"; "A request waits for a
// cooling target only when nothing else is left". Expected: A waits ≤ 50 ms
// and is served by local (200). Seen: A records local/m#1 "no target
// available: every API key ... within its KeyInterval" and ends at once with
// openai's 500.
func TestReviewKeyTakenBetweenPickAndSendSingleTarget(t *testing.T) {
	primary := server(t, "primary", "key-p")
	primary.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()

	var mu sync.Mutex
	onlyLocal := 0
	aPicked := make(chan struct{})
	bDone := make(chan struct{})
	strategy := gwtransport.CustomStrategy(func(c []gwtransport.Candidate) int {
		if len(c) == 1 && c[0].Target == "local/m" {
			mu.Lock()
			onlyLocal++
			n := onlyLocal
			mu.Unlock()
			if n == 1 { // request A: hold it between its pick and its send
				close(aPicked)
				select {
				case <-bDone:
				case <-time.After(2 * time.Second):
				}
			}
			return 0
		}
		for i, x := range c {
			if x.Target == "openai/gpt-4o" {
				return i
			}
		}
		return 0
	})
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m"}, noEnv(),
		gwtransport.WithStrategy(strategy),
		gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: primary.URL, APIKey: "key-p"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(2*time.Second),
	)
	do := func() (int, []gwtransport.Attempt) {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", primary.URL+"/v1/chat/completions",
			stringsReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
		res, err := hc.Do(req)
		if err != nil {
			d, ok := gwtransport.RetryAfterOf(err)
			t.Logf("error: %v; RetryAfterOf %v %v", err, d, ok)
			return 0, trail.Attempts()
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, trail.Attempts()
	}
	type out struct {
		st int
		tr []gwtransport.Attempt
	}
	aRes := make(chan out, 1)
	go func() { st, tr := do(); aRes <- out{st, tr} }()
	<-aPicked
	stB, trB := do() // B takes the key
	close(bDone)
	require.Equal(t, 200, stB, "%v", trB)
	a := <-aRes
	assert.Equal(t, 200, a.st, "A should wait for local's KeyInterval (50 ms, cap 2 s); trail %v", a.tr)
}

// TestReviewKeyTakenBetweenPickAndSendIsNotWaitedFor: route [openai (always
// 500), local (one key, KeyInterval 50 ms)], cap 2 s. Request A fails at
// openai and picks local; before A sends, request B takes local's only key
// (the strategy hook holds A between its pick and its send). README: "when
// no other target is left, the request waits for the interval to end,
// within the cooling bounds, rather than failing"; "A request waits for a
// cooling target only when nothing else is left". Expected: A waits ≤ 50 ms
// and is served by local (200). Seen: A records local/m#1 "no target
// available: every API key ... within its KeyInterval" and ends at once with
// openai's 500.
func TestReviewKeyTakenBetweenPickAndSendIsNotWaitedFor(t *testing.T) {
	primary := server(t, "primary", "key-p")
	primary.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()

	var mu sync.Mutex
	onlyLocal := 0
	aPicked := make(chan struct{})
	bDone := make(chan struct{})
	strategy := gwtransport.CustomStrategy(func(c []gwtransport.Candidate) int {
		if len(c) == 1 && c[0].Target == "local/m" {
			mu.Lock()
			onlyLocal++
			n := onlyLocal
			mu.Unlock()
			if n == 1 { // request A: hold it between its pick and its send
				close(aPicked)
				select {
				case <-bDone:
				case <-time.After(2 * time.Second):
				}
			}
			return 0
		}
		for i, x := range c {
			if x.Target == "openai/gpt-4o" {
				return i
			}
		}
		return 0
	})
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o", "local/m"}, noEnv(),
		gwtransport.WithStrategy(strategy),
		gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: primary.URL, APIKey: "key-p"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(2*time.Second),
	)
	do := func() (int, []gwtransport.Attempt) {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", primary.URL+"/v1/chat/completions",
			stringsReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
		res, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, trail.Attempts()
	}
	type out struct {
		st int
		tr []gwtransport.Attempt
	}
	aRes := make(chan out, 1)
	go func() { st, tr := do(); aRes <- out{st, tr} }()
	<-aPicked
	stB, trB := do() // B takes the key
	close(bDone)
	require.Equal(t, 200, stB, "%v", trB)
	a := <-aRes
	assert.Equal(t, 200, a.st, "A should wait for local's KeyInterval (50 ms, cap 2 s); trail %v", a.tr)
}
