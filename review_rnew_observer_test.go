package gwtransport_test

import (
	"context"
	"io"
	"net/http"
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

// rnewEnds records every AttemptEnd an Observer gets, beside obsRecorder's
// checks.
type rnewEnds struct {
	*obsRecorder
	mu   sync.Mutex
	ends []gwtransport.Attempt
}

func (o *rnewEnds) AttemptEnd(ctx context.Context, a gwtransport.Attempt) {
	o.mu.Lock()
	o.ends = append(o.ends, a)
	o.mu.Unlock()
	o.obsRecorder.AttemptEnd(ctx, a)
}

// TestReviewCloseDuringContinuationAttempt: a committed stream breaks, the
// gateway sends its continuation to pb, and the caller closes the body
// (from another goroutine) while that continuation attempt is in flight.
// Observer doc: "AttemptEnd is called with the context AttemptStart
// returned and the attempt as recorded (the same value WithOnAttempt
// receives)". Every AttemptEnd must name the attempt's target.
func TestReviewCloseDuringContinuationAttempt(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	b.Enqueue(gatewaytest.Fault{Hang: true})
	rec := &rnewEnds{obsRecorder: newObsRecorder()}
	var onAttempt []gwtransport.Attempt
	var mu sync.Mutex
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, noEnv(),
		provider("pa", a, "sk-a"), provider("pb", b, "sk-b"), gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec),
		gwtransport.WithOnAttempt(func(x gwtransport.Attempt) { mu.Lock(); onAttempt = append(onAttempt, x); mu.Unlock() }),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"pb/m2": gwtransport.ContinuePrefix}))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-a")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, res.Body)
	}()
	require.Eventually(t, func() bool { return b.Count() == 1 }, 5*time.Second, time.Millisecond, "the continuation reached pb")
	time.Sleep(20 * time.Millisecond)
	res.Body.Close()
	<-done
	time.Sleep(50 * time.Millisecond)
	got := rec.requests()
	require.Len(t, got, 1)
	for _, calls := range got {
		t.Logf("calls:\n%s", strings.Join(calls, "\n"))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, e := range rec.ends {
		assert.NotEmpty(t, e.Target, "AttemptEnd #%d got an attempt naming no target: %+v (err %v)", i+1, e, e.Err)
		assert.NotErrorIs(t, e.Err, gwtransport.ErrNoTarget, "AttemptEnd #%d: a sent attempt reported as ErrNoTarget", i+1)
	}
	// The continuation in flight ends with the request, as it is known:
	// sent to pb, cancelled by the close.
	if assert.Len(t, rec.ends, 2) {
		e := rec.ends[1]
		assert.Equal(t, "pb/m2", e.Target)
		assert.Equal(t, 1, e.Try)
		assert.True(t, e.Continued)
		assert.Equal(t, gwtransport.NextTarget, e.Action)
		assert.ErrorIs(t, e.Err, context.Canceled)
	}
	assert.Empty(t, rec.problems())
}

// rnewBlockingClock blocks backoff sleeps until the context ends.
type rnewBlockingClock struct{ sleeping chan struct{} }

func (rnewBlockingClock) Now() time.Time { return time.Now() }
func (c rnewBlockingClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case c.sleeping <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// rnewCheckOne checks one routed request's calls: one start, one end,
// nothing after it, no problem.
func rnewCheckOne(t *testing.T, rec *obsRecorder, want int) {
	t.Helper()
	time.Sleep(30 * time.Millisecond)
	got := rec.requests()
	require.Len(t, got, want)
	for id, calls := range got {
		starts, ends := 0, 0
		for _, c := range calls {
			if strings.HasPrefix(c, "start ") {
				starts++
			}
			if strings.HasPrefix(c, "end target=") {
				ends++
			}
		}
		assert.Equal(t, 1, starts, "request %d: %v", id, calls)
		assert.Equal(t, 1, ends, "request %d: %v", id, calls)
		if assert.NotEmpty(t, calls) {
			assert.Equal(t, "", calls[len(calls)-1], "request %d: something after the end: %v", id, calls)
		}
	}
	assert.Empty(t, rec.problems())
}

// TestReviewObserverOutcomes attacks "One observation per routed request"
// under outcomes the repository's tests do not name.
func TestReviewObserverOutcomes(t *testing.T) {
	body := func(stream bool) string {
		if stream {
			return `{"model":"gateway","messages":[{"role":"user","content":"hi"}],"stream":true}`
		}
		return `{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`
	}
	setup := func(t *testing.T, extra ...gwtransport.Option) (*gatewaytest.Server, *gatewaytest.Server, *obsRecorder, http.RoundTripper) {
		a := server(t, "a", "sk-a")
		b := server(t, "b", "sk-b")
		rec := newObsRecorder()
		opts := append([]gwtransport.Option{noEnv(), provider("pa", a, "sk-a"), provider("pb", b, "sk-b"),
			gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec)}, extra...)
		tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, opts...)
		require.NoError(t, err)
		return a, b, rec, tr
	}
	do := func(t *testing.T, ctx context.Context, tr http.RoundTripper, url string, stream bool) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", strings.NewReader(body(stream)))
		req.Header.Set("Authorization", "Bearer sk-a")
		return tr.RoundTrip(req)
	}

	t.Run("stream read to EOF, never closed", func(t *testing.T) {
		a, _, rec, tr := setup(t)
		res, err := do(t, context.Background(), tr, a.URL, true)
		require.NoError(t, err)
		_, err = io.ReadAll(res.Body)
		require.NoError(t, err)
		rnewCheckOne(t, rec, 1)
	})
	t.Run("stream closed twice, read after close", func(t *testing.T) {
		a, _, rec, tr := setup(t)
		res, err := do(t, context.Background(), tr, a.URL, true)
		require.NoError(t, err)
		buf := make([]byte, 8)
		_, _ = res.Body.Read(buf)
		res.Body.Close()
		res.Body.Close()
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
		rnewCheckOne(t, rec, 1)
	})
	t.Run("rescued stream read to EOF, never closed", func(t *testing.T) {
		a, _, rec, tr := setup(t, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"pb/m2": gwtransport.ContinuePrefix}))
		a.Enqueue(gatewaytest.Fault{CutAfter: 2})
		res, err := do(t, context.Background(), tr, a.URL, true)
		require.NoError(t, err)
		_, err = io.ReadAll(res.Body)
		require.NoError(t, err)
		rnewCheckOne(t, rec, 1)
	})
	t.Run("cancelled during backoff", func(t *testing.T) {
		clk := rnewBlockingClock{sleeping: make(chan struct{}, 1)}
		a, _, rec, tr := setup(t, gwtransport.WithClock(clk), gwtransport.WithMaxRetries(2))
		a.Enqueue(gatewaytest.Fault{Status: 503})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-clk.sleeping; cancel() }()
		_, err := do(t, ctx, tr, a.URL, false)
		require.Error(t, err)
		rnewCheckOne(t, rec, 1)
	})
	t.Run("cancelled during an attempt", func(t *testing.T) {
		a, _, rec, tr := setup(t)
		a.Enqueue(gatewaytest.Fault{Hang: true})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for a.Count() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		_, err := do(t, ctx, tr, a.URL, true)
		require.Error(t, err)
		rnewCheckOne(t, rec, 1)
	})
	t.Run("no target", func(t *testing.T) {
		a, b, rec, tr := setup(t, gwtransport.WithMaxRetries(0), gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Hour)}))
		a.Enqueue(gatewaytest.Fault{Status: 503})
		b.Enqueue(gatewaytest.Fault{Status: 503})
		res, err := do(t, context.Background(), tr, a.URL, false)
		if err == nil {
			res.Body.Close()
		}
		_, err = do(t, context.Background(), tr, a.URL, false)
		require.ErrorIs(t, err, gwtransport.ErrNoTarget)
		rnewCheckOne(t, rec, 2)
	})
	t.Run("max attempts", func(t *testing.T) {
		a, b, rec, tr := setup(t, gwtransport.WithMaxAttempts(2), gwtransport.WithMaxRetries(5))
		a.SetFault(&gatewaytest.Fault{Status: 503})
		b.SetFault(&gatewaytest.Fault{Status: 503})
		res, err := do(t, context.Background(), tr, a.URL, false)
		require.NoError(t, err)
		res.Body.Close()
		rnewCheckOne(t, rec, 1)
	})
	t.Run("mid-stream in-band error", func(t *testing.T) {
		a, _, rec, tr := setup(t)
		a.Enqueue(gatewaytest.Fault{Script: "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n" +
			"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"code\":\"overloaded\"}}\n\n"})
		res, err := do(t, context.Background(), tr, a.URL, true)
		require.NoError(t, err)
		_, err = io.ReadAll(res.Body)
		require.Error(t, err)
		res.Body.Close()
		rnewCheckOne(t, rec, 1)
	})
	t.Run("concurrent close and read, many", func(t *testing.T) {
		a, _, rec, tr := setup(t, gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
			gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"pb/m2": gwtransport.ContinuePrefix}))
		const n = 20
		for i := 0; i < n; i++ {
			a.Enqueue(gatewaytest.Fault{CutAfter: 1 + i%3})
			res, err := do(t, context.Background(), tr, a.URL, true)
			require.NoError(t, err)
			done := make(chan struct{})
			go func() { defer close(done); _, _ = io.Copy(io.Discard, res.Body) }()
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			var wg sync.WaitGroup
			for k := 0; k < 3; k++ {
				wg.Add(1)
				go func() { defer wg.Done(); res.Body.Close() }()
			}
			wg.Wait()
			<-done
		}
		rnewCheckOne(t, rec, n)
	})
}

// TestReviewKeyRaceAttemptEnd: one key with a KeyInterval, requests
// racing for it: a request that picked the target and lost the key
// before sending ("a key race") must not make the Observer see an
// attempt end naming no target (AttemptEnd gets "the attempt as recorded
// (the same value WithOnAttempt receives)").
func TestReviewKeyRaceAttemptEnd(t *testing.T) {
	a := server(t, "a", "sk-a")
	rec := &rnewEnds{obsRecorder: newObsRecorder()}
	var recorded atomic.Int64
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, APIKey: "sk-a", KeyInterval: gwtransport.Duration(2 * time.Millisecond)}),
		gwtransport.WithObserver(rec), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithOnAttempt(func(gwtransport.Attempt) { recorded.Add(1) }))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var errs atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
				res, err := tr.RoundTrip(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				} else {
					if errs.Add(1) <= 2 {
						t.Logf("error: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("errors: %d, sent: %d", errs.Load(), a.Count())
	rec.mu.Lock()
	defer rec.mu.Unlock()
	bad := 0
	for _, e := range rec.ends {
		if e.Target == "" {
			bad++
		}
	}
	t.Logf("%d attempt ends, %d naming no target", len(rec.ends), bad)
	assert.Zero(t, bad, "attempt ends naming no target (key races)")
	assert.Equal(t, int(recorded.Load()), len(rec.ends), "one AttemptEnd per attempt recorded, none for a target given back")
	assert.Empty(t, rec.problems())
}
