package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// local/m's breaker is half-open; request A (route "gateway") picks it as its
// probe, and before A sends, request B on another route (local/m2, same
// provider key pool, KeyInterval) takes the only key. A gives the target
// back, waits for the interval and probes: the breaker must close, A is
// served by one send, and the probe lease is not lost.
func TestRV3KeyRaceHalfOpenProbe(t *testing.T) {
	var sendsM, sendsM2 atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), `"model":"m2"`) {
			sendsM2.Add(1)
		} else if sendsM.Add(1) == 1 {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()
	var mu sync.Mutex
	hold := false
	aPicked := make(chan struct{})
	bDone := make(chan struct{})
	strategy := gwtransport.CustomStrategy(func(c []gwtransport.Candidate) int {
		mu.Lock()
		h := hold && c[0].Target == "local/m"
		hold = hold && !h
		mu.Unlock()
		if h {
			close(aPicked)
			select {
			case <-bDone:
			case <-time.After(2 * time.Second):
			}
		}
		return 0
	})
	hc := &http.Client{}
	var events []gwtransport.Event
	mustInit(t, hc, []string{"local/m"}, noEnv(),
		gwtransport.WithStrategy(strategy),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(50 * time.Millisecond)}),
		gwtransport.WithRoute("gateway-b", []string{"local/m2"}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(100 * time.Millisecond)}),
		gwtransport.WithMaxRetryWait(2*time.Second),
		gwtransport.WithOnEvent(func(e gwtransport.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
	)
	do := func(model string) (int, []gwtransport.Attempt, error) {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", local.URL+"/v1/chat/completions",
			stringsReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		res, err := hc.Do(req)
		if err != nil {
			return 0, trail.Attempts(), err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, trail.Attempts(), nil
	}
	st, _, _ := do("gateway") // 500: breaker opens
	require.Equal(t, 500, st)
	time.Sleep(150 * time.Millisecond) // past the cooldown and the interval
	mu.Lock()
	hold = true
	mu.Unlock()
	type out struct {
		st  int
		tr  []gwtransport.Attempt
		err error
	}
	aRes := make(chan out, 1)
	go func() { st, tr, err := do("gateway"); aRes <- out{st, tr, err} }()
	<-aPicked
	stB, trB, errB := do("gateway-b")
	require.NoError(t, errB)
	require.Equal(t, 200, stB, "%v", trB)
	close(bDone)
	a := <-aRes
	require.NoError(t, a.err)
	assert.Equal(t, 200, a.st, "%v", a.tr)
	assert.Len(t, a.tr, 1, "%v", a.tr)
	if len(a.tr) == 1 {
		assert.Greater(t, a.tr[0].CoolingWait, time.Duration(0))
	}
	assert.Equal(t, int32(2), sendsM.Load())
	// the breaker closed on the probe
	st, tr, err := do("gateway")
	require.NoError(t, err)
	assert.Equal(t, 200, st, "%v", tr)
	mu.Lock()
	defer mu.Unlock()
	closed := false
	for _, e := range events {
		if e.Kind == gwtransport.EventBreaker && e.Target == "local/m" && e.State == string(gwtransport.BreakerClosed) {
			closed = true
		}
	}
	assert.True(t, closed, "breaker closed by A's probe")
}
