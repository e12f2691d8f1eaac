package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// A one-target route ["local/m"] whose only key is taken by request B
// between A's pick and A's send (the strategy hook holds A). A gives local
// back to the picker, waits for the KeyInterval, and is served. Events:
// "EventFallback: the request moves from Target to Next" — A never moved
// anywhere (one target, tried once), yet a fallback local/m -> local/m is
// emitted (prev is set before the key race).
func TestRV3KeyRaceEmitsSpuriousFallbackToItself(t *testing.T) {
	var sends atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		sends.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()
	var mu sync.Mutex
	picks := 0
	var events []gwtransport.Event
	aPicked := make(chan struct{})
	bDone := make(chan struct{})
	strategy := gwtransport.CustomStrategy(func(c []gwtransport.Candidate) int {
		mu.Lock()
		picks++
		n := picks
		mu.Unlock()
		if n == 1 { // request A: held between its pick and its send
			close(aPicked)
			select {
			case <-bDone:
			case <-time.After(2 * time.Second):
			}
		}
		return 0
	})
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m"}, noEnv(),
		gwtransport.WithStrategy(strategy),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(2*time.Second),
		gwtransport.WithOnEvent(func(e gwtransport.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}),
	)
	do := func() (int, []gwtransport.Attempt) {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", local.URL+"/v1/chat/completions",
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
	stB, _ := do()
	close(bDone)
	require.Equal(t, 200, stB)
	a := <-aRes
	require.Equal(t, 200, a.st, "%v", a.tr)
	assert.Len(t, a.tr, 1, "A: one attempt")
	assert.Equal(t, int32(2), sends.Load(), "one send each")
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		if e.Kind == gwtransport.EventFallback {
			t.Errorf("spurious fallback event %s -> %s (no target was tried before)", e.Target, e.Next)
		}
	}
}
