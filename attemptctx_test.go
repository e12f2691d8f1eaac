package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// ctxRecorder is a base transport that records each attempt's context and
// whether it was already ended when the attempt was sent.
type ctxRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	ctxs []context.Context
	dead []bool
}

func (c *ctxRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.ctxs = append(c.ctxs, r.Context())
	c.dead = append(c.dead, r.Context().Err() != nil)
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// TestAttemptContexts attacks the attempt contexts the gateway shares
// between failed attempts: every attempt is sent under a live context
// (never one a timed-out attempt ended), the successful attempt's context
// lives until the caller is done with the body, and once the request is
// over, every attempt's context is ended (nothing hangs on).
func TestAttemptContexts(t *testing.T) {
	cases := []struct {
		name string
		// answers, by request number: "503", "200", "hang" (until the
		// attempt is ended), "bad" (a 200 whose JSON is cut); "hang"
		// after the last
		answers  []string
		status   int
		attempts int
	}{
		{name: "503 then 200", answers: []string{"503", "200"}, status: 200, attempts: 2},
		{name: "503 three times then 200", answers: []string{"503", "503", "503", "200"}, status: 200, attempts: 4},
		{name: "timeout then 200", answers: []string{"hang", "200"}, status: 200, attempts: 2},
		{name: "503 timeout 503 200", answers: []string{"503", "hang", "503", "200"}, status: 200, attempts: 4},
		{name: "malformed 200 then 200", answers: []string{"bad", "200"}, status: 200, attempts: 2},
		{name: "every attempt fails", answers: []string{"503", "503", "503", "503"}, status: 503, attempts: 4},
		{name: "every attempt times out", answers: []string{"hang", "hang"}, status: 0, attempts: 2},
		{name: "503 then timeout at each target", answers: []string{"503", "hang", "503", "hang"}, status: 503, attempts: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				i := int(n.Add(1)) - 1
				answer := "hang"
				if i < len(tc.answers) {
					answer = tc.answers[i]
				}
				w.Header().Set("Content-Type", "application/json")
				switch answer {
				case "503":
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
				case "hang":
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
				case "bad":
					_, _ = io.WriteString(w, `{"id":"x","choices":[`)
				default:
					_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
				}
			}))
			defer srv.Close()
			base := &http.Transport{}
			defer base.CloseIdleConnections()
			rec := &ctxRecorder{base: base}
			// A timeout moves to the next target: two targets, on one server.
			tr, err := gwtransport.NewTransport(rec, []string{"openai/gpt-4o", "openai/gpt-4o-mini"}, noEnv(),
				gwtransport.WithMaxRetries(3), gwtransport.WithMaxAttempts(4), gwtransport.WithBackoff(gwtransport.Backoff{}),
				gwtransport.WithTimeout(150*time.Millisecond))
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			res, err := (&http.Client{Transport: tr}).Do(req)
			rec.mu.Lock()
			ctxs, dead := append([]context.Context(nil), rec.ctxs...), append([]bool(nil), rec.dead...)
			rec.mu.Unlock()
			require.Len(t, ctxs, tc.attempts)
			assert.Equal(t, make([]bool, tc.attempts), dead, "an attempt was sent under an ended context")
			if tc.status == 0 {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.status, res.StatusCode)
				assert.Equal(t, []string{strconv.Itoa(tc.attempts)}, res.Header.Values(gwtransport.HeaderAttempts))
				if tc.status == 200 {
					last := ctxs[len(ctxs)-1]
					for i, c := range ctxs[:len(ctxs)-1] {
						if c == last {
							continue // a failed attempt's context, kept for the next
						}
						assert.Error(t, c.Err(), "failed attempt %d: context not ended", i)
					}
				}
				body, err := io.ReadAll(res.Body)
				require.NoError(t, err)
				require.NotEmpty(t, body)
				require.NoError(t, res.Body.Close())
			}
			for i, c := range ctxs {
				assert.Error(t, c.Err(), "attempt %d: context not ended once the request is over", i)
			}
		})
	}
}
