package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// The races of a key pool with a KeyInterval: a key taken by another request
// between a request's pick and its send, waits for the interval after a
// failure, and many requests on one pool at once. README: "when no other
// target is left, the request waits for the interval to end, within the
// cooling bounds, rather than failing".

// okChatBody is a complete chat completion answering "ok".
const okChatBody = `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`

// okServer answers every request with okChatBody; seen, when not nil, is given
// each request's body first and may answer instead by returning false.
func okServer(t *testing.T, seen func(w http.ResponseWriter, body []byte) bool) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if seen != nil && !seen(w, body) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, okChatBody)
	}))
	t.Cleanup(s.Close)
	return s
}

// failingPrimary is an "openai" provider answering every request 500.
func failingPrimary(t *testing.T) *gatewaytest.Server {
	t.Helper()
	primary := server(t, "primary", "key-p")
	primary.SetFault(&gatewaytest.Fault{Status: 500, Type: "server_error", Message: "down"})
	return primary
}

// oneKeyOptions are the options of the key races: the provider "local" with
// one key (or keys) and a KeyInterval, no retries, no breaker, a cooling cap
// of capWait.
func oneKeyOptions(local *httptest.Server, keys []string, interval, capWait time.Duration, more ...gwtransport.Option) []gwtransport.Option {
	return append([]gwtransport.Option{noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: keys, KeyInterval: gwtransport.Duration(interval)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(capWait),
	}, more...)
}

// withPrimary adds the failing primary as the provider "openai".
func withPrimary(primary *gatewaytest.Server) gwtransport.Option {
	return gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: primary.URL, APIKey: "key-p"})
}

// sendOutcome is what a request of the key races ended with.
type sendOutcome struct {
	status   int
	attempts []gwtransport.Attempt
	err      error
}

// sendChat sends a chat request for model through hc to url, its body of
// unknown length (no GetBody), with a trail, and reads the answer whole.
func sendChat(hc *http.Client, url, model, content string) sendOutcome {
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions",
		stringsReader(`{"model":"`+model+`","messages":[{"role":"user","content":"`+content+`"}]}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return sendOutcome{attempts: trail.Attempts(), err: err}
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return sendOutcome{status: res.StatusCode, attempts: trail.Attempts()}
}

// pickHold is a custom strategy that holds the first pick it is told to
// hold (request A) between its pick and its send, until release is closed
// (another request took the key meanwhile) or 2 s passed.
type pickHold struct {
	mu      sync.Mutex
	armed   bool
	picked  chan struct{}
	release chan struct{}
}

// newPickHold returns a hold, armed or not, whose strategy holds the first
// pick for which hold is true once armed, and picks what choose says.
func newPickHold(armed bool, hold func([]gwtransport.Candidate) bool, choose func([]gwtransport.Candidate) int) (*pickHold, gwtransport.Strategy) {
	h := &pickHold{armed: armed, picked: make(chan struct{}), release: make(chan struct{})}
	return h, gwtransport.CustomStrategy(func(c []gwtransport.Candidate) int {
		h.mu.Lock()
		now := h.armed && hold(c)
		if now {
			h.armed = false
		}
		h.mu.Unlock()
		if now {
			close(h.picked)
			select {
			case <-h.release:
			case <-time.After(2 * time.Second):
			}
		}
		return choose(c)
	})
}

// arm makes the hold hold the next matching pick.
func (h *pickHold) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

// race sends A, waits until A is held after its pick, sends B (which takes
// the key), releases A, and returns both outcomes.
func (h *pickHold) race(t *testing.T, a, b func() sendOutcome) (outA, outB sendOutcome) {
	t.Helper()
	done := make(chan sendOutcome, 1)
	go func() { done <- a() }()
	select {
	case <-h.picked:
	case out := <-done:
		require.FailNow(t, "request A ended without the held pick", "%v %v", out.err, out.attempts)
	}
	outB = b()
	close(h.release)
	return <-done, outB
}

// onlyLocal holds a pick offered local/m alone; preferOpenAI picks
// openai/gpt-4o when offered, else the first candidate.
func onlyLocal(c []gwtransport.Candidate) bool { return len(c) == 1 && c[0].Target == "local/m" }

func preferOpenAI(c []gwtransport.Candidate) int {
	for i, x := range c {
		if x.Target == "openai/gpt-4o" {
			return i
		}
	}
	return 0
}

// TestReviewKeyIntervalRaceSkipsInsteadOfWaiting: concurrent requests on a
// one-key pool with KeyInterval, the primary failing. Each request whose
// key is taken by another between its pick and its send waits for the
// interval (5 ms, cap 2 s) and is served by local/m, never ending with the
// primary's 500 or ErrNoTarget.
func TestReviewKeyIntervalRaceSkipsInsteadOfWaiting(t *testing.T) {
	primary := failingPrimary(t)
	local := okServer(t, nil)
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o", "local/m"},
		oneKeyOptions(local, []string{"k1"}, 5*time.Millisecond, 2*time.Second, withPrimary(primary))...)
	const n = 3
	var wg sync.WaitGroup
	outs := make([]sendOutcome, n)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = sendChat(hc, primary.URL, "gateway", "hi")
		}()
	}
	wg.Wait()
	for i, o := range outs {
		_, hasRA := gwtransport.RetryAfterOf(o.err)
		assert.Equal(t, http.StatusOK, o.status, "request %d: err %v, ErrNoTarget %t, RetryAfterOf %t, trail %v",
			i, o.err, errors.Is(o.err, gwtransport.ErrNoTarget), hasRA, o.attempts)
	}
}

// TestReviewKeyTakenBetweenPickAndSendIsNotWaitedFor: route [openai (always
// 500), local (one key, KeyInterval 50 ms)], cap 2 s. Request A fails at
// openai and picks local; before A sends, request B takes local's only key.
// A waits for the interval and is served by local (200), never ends with
// openai's 500.
func TestReviewKeyTakenBetweenPickAndSendIsNotWaitedFor(t *testing.T) {
	keyTakenBetweenPickAndSend(t, []string{"openai/gpt-4o", "local/m"})
}

// TestReviewKeyTakenBetweenPickAndSendSingleTarget: the same race with a
// one-target route ["local/m"]: A waits for the interval and is served.
func TestReviewKeyTakenBetweenPickAndSendSingleTarget(t *testing.T) {
	keyTakenBetweenPickAndSend(t, []string{"local/m"})
}

func keyTakenBetweenPickAndSend(t *testing.T, targets []string) {
	primary := failingPrimary(t)
	local := okServer(t, nil)
	hold, strategy := newPickHold(true, onlyLocal, preferOpenAI)
	hc := &http.Client{}
	mustInit(t, hc, targets, oneKeyOptions(local, []string{"k1"}, 50*time.Millisecond, 2*time.Second,
		withPrimary(primary), gwtransport.WithStrategy(strategy))...)
	send := func() sendOutcome { return sendChat(hc, primary.URL, "gateway", "hi") }
	a, b := hold.race(t, send, send)
	require.NoError(t, b.err)
	require.Equal(t, http.StatusOK, b.status, "B: %v", b.attempts)
	require.NoError(t, a.err, "A: %v", a.attempts)
	assert.Equal(t, http.StatusOK, a.status, "A should wait for local's KeyInterval (50 ms, cap 2 s); trail %v", a.attempts)
}

// TestReviewKeyIntervalAfterAFailureDoesNotWait: route [openai (always 500),
// local (one key, KeyInterval 200 ms)], cap 2 s. Request 1 is served by
// local. Request 2, sent at once, fails at openai; local is the only target
// left and within its KeyInterval: it waits for the interval and is served.
func TestReviewKeyIntervalAfterAFailureDoesNotWait(t *testing.T) {
	primary := failingPrimary(t)
	local := okServer(t, nil)
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o", "local/m"},
		oneKeyOptions(local, []string{"k1"}, 200*time.Millisecond, 2*time.Second, withPrimary(primary))...)
	first := sendChat(hc, primary.URL, "gateway", "hi")
	require.NoError(t, first.err)
	require.Equal(t, http.StatusOK, first.status, "%v", first.attempts)
	second := sendChat(hc, primary.URL, "gateway", "hi")
	require.NoError(t, second.err)
	assert.Equal(t, http.StatusOK, second.status, "second request should wait ~200ms for local's KeyInterval; trail %v", second.attempts)
}

// TestRV3KeyRaceHalfOpenProbe: local/m's breaker is half-open; request A
// (route "gateway") picks it as its probe, and before A sends, request B on
// another route (local/m2, same provider key pool, KeyInterval) takes the
// only key. A gives the target back, waits for the interval and probes: the
// breaker closes, A is served by one send, and the probe lease is not lost.
func TestRV3KeyRaceHalfOpenProbe(t *testing.T) {
	var sendsM, sendsM2 atomic.Int32
	local := okServer(t, func(w http.ResponseWriter, body []byte) bool {
		if strings.Contains(string(body), `"model":"m2"`) {
			sendsM2.Add(1)
		} else if sendsM.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return false
		}
		return true
	})
	hold, strategy := newPickHold(false, func(c []gwtransport.Candidate) bool { return c[0].Target == "local/m" },
		func([]gwtransport.Candidate) int { return 0 })
	var mu sync.Mutex
	var events []gwtransport.Event
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m"}, oneKeyOptions(local, []string{"k1"}, 50*time.Millisecond, 2*time.Second,
		gwtransport.WithStrategy(strategy),
		gwtransport.WithRoute("gateway-b", []string{"local/m2"}),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(100 * time.Millisecond)}),
		gwtransport.WithOnEvent(func(e gwtransport.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
	)...)

	opened := sendChat(hc, local.URL, "gateway", "hi") // 500: the breaker opens
	require.Equal(t, http.StatusInternalServerError, opened.status)
	time.Sleep(150 * time.Millisecond) // past the cooldown and the interval
	hold.arm()
	a, b := hold.race(t,
		func() sendOutcome { return sendChat(hc, local.URL, "gateway", "hi") },
		func() sendOutcome { return sendChat(hc, local.URL, "gateway-b", "hi") })
	require.NoError(t, b.err)
	require.Equal(t, http.StatusOK, b.status, "%v", b.attempts)
	require.NoError(t, a.err)
	assert.Equal(t, http.StatusOK, a.status, "%v", a.attempts)
	require.Len(t, a.attempts, 1, "%v", a.attempts)
	assert.Greater(t, a.attempts[0].CoolingWait, time.Duration(0))
	assert.Equal(t, int32(2), sendsM.Load())

	after := sendChat(hc, local.URL, "gateway", "hi") // the breaker closed on the probe
	require.NoError(t, after.err)
	assert.Equal(t, http.StatusOK, after.status, "%v", after.attempts)
	mu.Lock()
	defer mu.Unlock()
	closed := false
	for _, e := range events {
		closed = closed || e.Kind == gwtransport.EventBreaker && e.Target == "local/m" && e.State == string(gwtransport.BreakerClosed)
	}
	assert.True(t, closed, "breaker closed by A's probe")
}

// TestRV3KeyRaceEmitsSpuriousFallbackToItself: a one-target route
// ["local/m"] whose only key is taken by request B between A's pick and A's
// send. A gives local back to the picker, waits for the KeyInterval, and is
// served, with one send each and no fallback event (A never moved).
func TestRV3KeyRaceEmitsSpuriousFallbackToItself(t *testing.T) {
	var sends atomic.Int32
	local := okServer(t, func(http.ResponseWriter, []byte) bool { sends.Add(1); return true })
	hold, strategy := newPickHold(true, func([]gwtransport.Candidate) bool { return true },
		func([]gwtransport.Candidate) int { return 0 })
	var mu sync.Mutex
	var events []gwtransport.Event
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m"}, oneKeyOptions(local, []string{"k1"}, 50*time.Millisecond, 2*time.Second,
		gwtransport.WithStrategy(strategy),
		gwtransport.WithOnEvent(func(e gwtransport.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
	)...)
	send := func() sendOutcome { return sendChat(hc, local.URL, "gateway", "hi") }
	a, b := hold.race(t, send, send)
	require.NoError(t, b.err)
	require.Equal(t, http.StatusOK, b.status)
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.status, "%v", a.attempts)
	assert.Len(t, a.attempts, 1, "A: one attempt")
	assert.Equal(t, int32(2), sends.Load(), "one send each")
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		assert.NotEqual(t, gwtransport.EventFallback, e.Kind, "spurious fallback event %s -> %s (no target was tried before)", e.Target, e.Next)
	}
}

// TestRV3KeyRaceSoak: many concurrent requests on a two-key pool with a
// KeyInterval, two targets of the same provider: each request is sent at
// most WithMaxAttempts times, never twice to the same target, and ends
// (served, or ErrNoTarget with a RetryAfter within the interval) within its
// bounds.
func TestRV3KeyRaceSoak(t *testing.T) {
	reqID := regexp.MustCompile(`req-(\d+)`)
	model := regexp.MustCompile(`"model":"(m\d?)"`)
	var mu sync.Mutex
	sends := map[string]int{}
	local := okServer(t, func(_ http.ResponseWriter, body []byte) bool {
		id := reqID.FindString(string(body)) + "/" + model.FindStringSubmatch(string(body))[1]
		mu.Lock()
		sends[id]++
		mu.Unlock()
		return true
	})
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m", "local/m2"}, oneKeyOptions(local, []string{"k1", "k2"}, 10*time.Millisecond, 30*time.Millisecond,
		gwtransport.WithMaxAttempts(2))...)
	const n = 60
	var wg sync.WaitGroup
	outs := make([]sendOutcome, n)
	durs := make([]time.Duration, n)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			outs[i] = sendChat(hc, local.URL, "gateway", fmt.Sprintf("req-%d", i))
			durs[i] = time.Since(start)
		}()
	}
	wg.Wait()
	served, noTarget := 0, 0
	for i, o := range outs {
		total := 0
		for _, m := range []string{"m", "m2"} {
			c := sends[fmt.Sprintf("req-%d/%s", i, m)]
			assert.LessOrEqual(t, c, 1, "req-%d sent twice to %s", i, m)
			total += c
		}
		assert.LessOrEqual(t, total, 2, "req-%d", i)
		assert.Less(t, durs[i], 2*time.Second, "req-%d", i)
		if o.err == nil {
			served++
			continue
		}
		require.ErrorIs(t, o.err, gwtransport.ErrNoTarget, "req-%d", i)
		noTarget++
		d, ok := gwtransport.RetryAfterOf(o.err)
		assert.True(t, ok && d > 0 && d <= 10*time.Millisecond, "req-%d RetryAfter %v %v", i, d, ok)
	}
	t.Logf("served %d, ErrNoTarget %d", served, noTarget)
}

// stringsReader reads s through a reader of unknown length, so the request
// carries no GetBody and no ContentLength (the gateway must read it itself).
func stringsReader(s string) io.Reader { return &unsizedReader{s: s} }

type unsizedReader struct{ s string }

func (r *unsizedReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}
