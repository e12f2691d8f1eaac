package gwtransport_test

import (
	"context"
	"errors"
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

const reviewCoreChat = `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`

// reviewCoreServer answers each request by the model it names and the
// number of requests that model got: handlers[model][n] (the last one
// repeats).
func reviewCoreServer(t *testing.T, handlers map[string][]http.HandlerFunc) *httptest.Server {
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		model := ""
		for m := range handlers {
			if strings.Contains(string(b), `"model":"`+m+`"`) {
				model = m
			}
		}
		mu.Lock()
		n := counts[model]
		counts[model]++
		mu.Unlock()
		hs := handlers[model]
		if len(hs) == 0 {
			w.WriteHeader(599)
			return
		}
		hs[min(n, len(hs)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func reviewCore500(delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"error":{"message":"boom","type":"server_error"}}`)
	}
}

func reviewCoreOK(delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, reviewCoreChat)
	}
}

// reviewCoreTrickle sends a 200 chat body in pieces, gap apart.
func reviewCoreTrickle(pieces int, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		body := reviewCoreChat
		step := (len(body) + pieces - 1) / pieces
		for i := 0; i < len(body); i += step {
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, body[i:min(len(body), i+step)])
			w.(http.Flusher).Flush()
		}
	}
}

func reviewCoreDo(t *testing.T, srv *httptest.Server, stream bool, opts ...gwtransport.Option) (*http.Response, []byte, []gwtransport.Attempt, time.Duration, error) {
	var mu sync.Mutex
	var attempts []gwtransport.Attempt
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	all := append([]gwtransport.Option{noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { mu.Lock(); attempts = append(attempts, a); mu.Unlock() })}, opts...)
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-a", "openai/gpt-b"}, all...)
	require.NoError(t, err)
	body := `{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"gateway","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := tr.RoundTrip(req)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	d := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	return res, got, append([]gwtransport.Attempt(nil), attempts...), d, err
}

func reviewCoreTrail(as []gwtransport.Attempt) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, "; ")
}

// TestReviewCoreShortBoundNeverFiresForTheNextTarget: target A's short
// attempt timeout (its timer still set when A fails fast) never ends
// target B's attempt, whose own timeout is long.
func TestReviewCoreShortBoundNeverFiresForTheNextTarget(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCore500(0)},
		"gpt-b": {reviewCoreOK(600 * time.Millisecond)},
	})
	res, body, as, _, err := reviewCoreDo(t, srv, false, gwtransport.WithMaxRetries(0),
		gwtransport.WithModelTimeout(map[string]time.Duration{"openai/gpt-a": 200 * time.Millisecond, "openai/gpt-b": 5 * time.Second}))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode, reviewCoreTrail(as))
	assert.Equal(t, reviewCoreChat, string(body))
	require.Len(t, as, 2, reviewCoreTrail(as))
}

// TestReviewCoreLongBoundDoesNotDelayAShortOne: target A's long timeout
// (its timer set far away) never delays target B's short one.
func TestReviewCoreLongBoundDoesNotDelayAShortOne(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCore500(0)},
		"gpt-b": {reviewCoreOK(10 * time.Second)},
	})
	_, _, as, d, err := reviewCoreDo(t, srv, false, gwtransport.WithMaxRetries(0),
		gwtransport.WithModelTimeout(map[string]time.Duration{"openai/gpt-a": 8 * time.Second, "openai/gpt-b": 300 * time.Millisecond}))
	require.Len(t, as, 2, reviewCoreTrail(as))
	assert.Less(t, d, 3*time.Second, "B's 300ms timeout took %s: %s", d, reviewCoreTrail(as))
	_ = err
	assert.Equal(t, 0, as[1].Status)
	assert.Contains(t, as[1].Err.Error(), "timed out", reviewCoreTrail(as))
	assert.NotContains(t, as[0].String(), "timed out", "A's 500 is not a timeout: %s", reviewCoreTrail(as))
}

// TestReviewCoreBodyIdleNeverFiresEarly: a verified body trickling within
// the idle limit, past several idle periods and past the first timer the
// attempt set, is whole and the caller's.
func TestReviewCoreBodyIdleNeverFiresEarly(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCoreTrickle(12, 120*time.Millisecond)},
	})
	res, body, as, _, err := reviewCoreDo(t, srv, false, gwtransport.WithMaxRetries(0),
		gwtransport.WithBodyIdle(400*time.Millisecond), gwtransport.WithTimeout(10*time.Second))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, reviewCoreChat, string(body))
	require.Len(t, as, 1, reviewCoreTrail(as))
}

// TestReviewCoreAttemptTimeoutCoversTrickledBody: a body trickling within
// the idle limit but past the attempt timeout is that attempt's timeout;
// the next target serves.
func TestReviewCoreAttemptTimeoutCoversTrickledBody(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCoreTrickle(12, 100*time.Millisecond)},
		"gpt-b": {reviewCoreOK(0)},
	})
	res, body, as, _, err := reviewCoreDo(t, srv, false, gwtransport.WithMaxRetries(0),
		gwtransport.WithBodyIdle(2*time.Second), gwtransport.WithTimeout(500*time.Millisecond))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, reviewCoreChat, string(body))
	require.Len(t, as, 2, reviewCoreTrail(as))
	assert.Equal(t, "openai/gpt-b", as[1].Target)
}

// TestReviewCoreIdleThenRetrySameTarget: a verified body stalled past the
// idle limit fails its attempt (ErrResponseIdle); the retry at the same
// target, under the next context, is whole.
func TestReviewCoreIdleThenRetrySameTarget(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCoreTrickle(2, 700*time.Millisecond), reviewCoreOK(0)},
	})
	res, body, as, _, err := reviewCoreDo(t, srv, false, gwtransport.WithMaxRetries(2),
		gwtransport.WithBodyIdle(300*time.Millisecond), gwtransport.WithTimeout(10*time.Second))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, reviewCoreChat, string(body))
	require.Len(t, as, 2, reviewCoreTrail(as))
	assert.True(t, errors.Is(as[0].Err, gwtransport.ErrResponseIdle), reviewCoreTrail(as))
}

// reviewCoreSSE answers a stream whose first content event comes after
// delay.
func reviewCoreSSE(delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n")
		_, _ = io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}
}

// TestReviewCoreStreamFirstEventAfterRetries: retries that took longer
// than the first-event limit before the stream never count against it:
// the limit runs from the stream's own attempt.
func TestReviewCoreStreamFirstEventAfterRetries(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCore500(400 * time.Millisecond), reviewCore500(400 * time.Millisecond), reviewCoreSSE(600 * time.Millisecond)},
	})
	res, body, as, _, err := reviewCoreDo(t, srv, true, gwtransport.WithMaxRetries(3),
		gwtransport.WithStreamFirstEvent(time.Second), gwtransport.WithTimeout(10*time.Second))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, string(body), "[DONE]")
	require.Len(t, as, 3, reviewCoreTrail(as))
}

// TestReviewCoreStreamFirstEventLimitAfterFastFailure: a target that
// failed fast leaves its long timer; the stream's own first-event limit
// still cuts it on time and the next target serves.
func TestReviewCoreStreamFirstEventLimitAfterFastFailure(t *testing.T) {
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCore500(0), reviewCoreSSE(20 * time.Second)},
		"gpt-b": {reviewCoreSSE(0)},
	})
	res, body, as, d, err := reviewCoreDo(t, srv, true, gwtransport.WithMaxRetries(1),
		gwtransport.WithStreamFirstEvent(400*time.Millisecond), gwtransport.WithTimeout(30*time.Second))
	require.NoError(t, err, reviewCoreTrail(as))
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, string(body), "[DONE]")
	require.Len(t, as, 3, reviewCoreTrail(as))
	assert.Less(t, d, 4*time.Second)
}

// TestReviewCoreCallerDeadlineAfterSharedContext: after failed attempts
// that shared one context, the caller's deadline ending the next attempt
// is the caller's: errors.Is DeadlineExceeded, and no breaker failure.
func TestReviewCoreCallerDeadlineAfterSharedContext(t *testing.T) {
	var hits atomic.Int32
	srv := reviewCoreServer(t, map[string][]http.HandlerFunc{
		"gpt-a": {reviewCore500(0), reviewCore500(0), func(w http.ResponseWriter, r *http.Request) { hits.Add(1); <-r.Context().Done() }},
	})
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-a"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithMaxRetries(3), gwtransport.WithTimeout(10*time.Second),
		gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Millisecond, Multiplier: 1}),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 3}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	_, err = tr.RoundTrip(req)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	st := tr.Stats()
	for _, s := range st {
		assert.Equal(t, gwtransport.BreakerClosed, s.Breaker, "the caller's deadline opened the breaker: %+v", s)
		assert.Equal(t, int64(2), s.Failures, "%+v", s)
	}
}
