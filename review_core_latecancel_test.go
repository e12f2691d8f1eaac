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

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestReviewCoreTimedOutAttemptNeverEndsTheNext: failed attempts share one
// context until "a timeout or the caller ends it"; an attempt whose own
// timeout fired must therefore never hand its context to the next
// attempt. A target answers 500 right at the attempt timeout (2 ms), so
// that the timeout fires as the 500 arrives: the watchdog marks the
// attempt timed out and only then (after unlocking) cancels its context,
// while the attempt loop has already reused that still-live context for
// the next try, which is then cancelled under it: that next attempt fails
// at once with a bare context.Canceled (not a timeout, not the caller's),
// a lost attempt at a healthy moment, counted against the target.
//
// Every attempt goes through a net/http transport of its own (no shared
// connection or dial), so nothing but the attempt's own context can
// cancel it. The test hammers one target and stops at the first attempt that failed
// with context.Canceled while the caller's context was alive; it logs the
// request's trail. Seen within seconds: "openai/gpt-a#1 500 attempt timed
// out after 2ms (3.2ms); openai/gpt-a#2 context canceled (1.0ms)".
func TestReviewCoreTimedOutAttemptNeverEndsTheNext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	base := reviewCoreFreshTransport{}
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-a"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithMaxRetries(5), gwtransport.WithTimeout(2*time.Millisecond),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Nanosecond, Multiplier: 1}))
	require.NoError(t, err)
	deadline := time.Now().Add(reviewCoreHammer)
	var found atomic.Value
	var requests atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && found.Load() == nil {
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"gateway","messages":[]}`))
				req.Header.Set("Content-Type", "application/json")
				res, err := tr.RoundTrip(req)
				if err == nil {
					res.Body.Close()
				}
				requests.Add(1)
				var parts []string
				spurious, prevTimedOut := false, false
				for _, a := range trail.Attempts() {
					parts = append(parts, a.String()+" ("+a.Duration.String()+")")
					if a.Err != nil && a.Err.Error() == context.Canceled.Error() && ctx.Err() == nil && a.Try > 1 && prevTimedOut {
						spurious = true
					}
					prevTimedOut = a.Err != nil && strings.Contains(a.Err.Error(), "timed out")
				}
				if spurious {
					found.CompareAndSwap(nil, strings.Join(parts, "; "))
				}
			}
		}()
	}
	wg.Wait()
	if f := found.Load(); f != nil {
		t.Fatalf("after %d requests, an attempt was cancelled by the previous attempt's timeout (the caller's context alive): %s", requests.Load(), f)
	}
}

// TestReviewCoreTimeoutOfOneTargetNeverFailsTheFallback: the same race
// across targets: target A answers 500 right at its 2 ms timeout, target
// B answers 200 at once. Every request must be served by B; the attempt
// at B must never fail with A's cancellation, and B's breaker/statistics
// must never count a failure ("Only the target's own availability
// failures count").
func TestReviewCoreTimeoutOfOneTargetNeverFailsTheFallback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), `"gpt-a"`) {
			time.Sleep(2 * time.Millisecond)
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, reviewCoreChat)
	}))
	defer srv.Close()
	base := reviewCoreFreshTransport{}
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-a", "openai/gpt-b"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithMaxRetries(0), gwtransport.WithTimeout(2*time.Millisecond),
		gwtransport.WithModelTimeout(map[string]time.Duration{"openai/gpt-b": 10 * time.Second}),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	require.NoError(t, err)
	deadline := time.Now().Add(reviewCoreHammer)
	var found atomic.Value
	var requests atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && found.Load() == nil {
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"gateway","messages":[]}`))
				req.Header.Set("Content-Type", "application/json")
				res, err := tr.RoundTrip(req)
				status := 0
				if err == nil {
					status = res.StatusCode
					res.Body.Close()
				}
				requests.Add(1)
				var parts []string
				for _, a := range trail.Attempts() {
					parts = append(parts, a.String()+" ("+a.Duration.String()+")")
				}
				if status != 200 {
					found.CompareAndSwap(nil, "status "+http.StatusText(status)+", err "+errString(err)+": "+strings.Join(parts, "; "))
				}
			}
		}()
	}
	wg.Wait()
	if f := found.Load(); f != nil {
		var bFailures int64
		for _, s := range tr.Stats() {
			if s.Target == "openai/gpt-b" {
				bFailures = s.Failures
			}
		}
		t.Fatalf("after %d requests, the healthy fallback was not served (B's failures counted: %d): %s", requests.Load(), bFailures, f)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// reviewCoreFreshTransport sends every attempt through a transport of its
// own, without keep-alives: no connection, dial or idle pool is shared
// between attempts or requests inside net/http, so an attempt's
// cancellation can only come from its own context.
type reviewCoreFreshTransport struct{}

func (reviewCoreFreshTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return (&http.Transport{DisableKeepAlives: true}).RoundTrip(r)
}

// TestReviewCoreTimeoutOfOneTargetNeverBreaksTheFallbackStream: the same
// race when the fallback streams: target A answers 500 right at its 2 ms
// first-event limit; target B streams a complete answer (first event at
// once, the rest 5 ms later). The caller must read every stream to a
// clean end; A's late cancellation must never cut B's committed stream.
func TestReviewCoreTimeoutOfOneTargetNeverBreaksTheFallbackStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), `"gpt-a"`) {
			time.Sleep(2 * time.Millisecond)
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(5 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	// Keep-alive connections make B's attempt fast; a committed stream's
	// connection is its own, so nothing in net/http can cut it.
	base := &http.Transport{MaxIdleConnsPerHost: 100}
	defer base.CloseIdleConnections()
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-a", "openai/gpt-b"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithMaxRetries(0), gwtransport.WithStreamFirstEvent(2*time.Millisecond),
		gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-b": 10 * time.Second}),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	require.NoError(t, err)
	deadline := time.Now().Add(reviewCoreHammer)
	var found atomic.Value
	var requests atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && found.Load() == nil {
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
					strings.NewReader(`{"model":"gateway","stream":true,"messages":[]}`))
				req.Header.Set("Content-Type", "application/json")
				res, err := tr.RoundTrip(req)
				if err != nil {
					continue // B's attempt itself cancelled: the test above
				}
				_, rerr := io.ReadAll(res.Body)
				res.Body.Close()
				requests.Add(1)
				if res.StatusCode == 200 && rerr != nil {
					var parts []string
					for _, a := range trail.Attempts() {
						parts = append(parts, a.String()+" ("+a.Duration.String()+")")
					}
					found.CompareAndSwap(nil, "read error "+rerr.Error()+": "+strings.Join(parts, "; "))
				}
			}
		}()
	}
	wg.Wait()
	if f := found.Load(); f != nil {
		t.Fatalf("after %d requests, a committed fallback stream was cut: %s", requests.Load(), f)
	}
}

// reviewCoreHammer is how long each test above hammers the gateway when
// nothing fails: before the fix (the watchdog cancelled the attempt after
// letting its lock go) they failed within 1–25 s, most within a few.
const reviewCoreHammer = 4 * time.Second
