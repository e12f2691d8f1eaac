package gwtransport_test

// A committed stream's verdict for its target's circuit breaker is given
// when the stream ends, not at its commit: a target whose streams keep
// breaking after their first event must not pass for healthy.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// verdictRig is a primary and a fallback behind a Transport whose breaker
// opens after two consecutive failures.
type verdictRig struct {
	a, b  *gatewaytest.Server
	tr    *gwtransport.Transport
	clock *fakeClock
}

func newVerdictRig(t *testing.T) *verdictRig {
	t.Helper()
	r := &verdictRig{a: server(t, "primary", "key-p"), b: server(t, "fallback", "key-b"), clock: newFakeClock()}
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/fallback-model"}, noEnv(), seeded(1),
		gwtransport.WithClock(r.clock), provider("fb", r.b, "key-b"), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 2, Cooldown: gwtransport.Duration(time.Minute)}))
	require.NoError(t, err)
	r.tr = tr
	return r
}

// open sends a streamed request and returns the response.
func (r *verdictRig) open(t *testing.T) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, r.a.URL+"/chat/completions",
		strings.NewReader(`{"model":"gateway","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := (&http.Client{Transport: r.tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func (r *verdictRig) primary() gwtransport.TargetStats { return r.tr.Stats()[0] }

// breaks are the ways a committed stream ends in failure.
var streamBreaks = []struct {
	name  string
	fault gatewaytest.Fault
}{
	{"cut", gatewaytest.Fault{CutAfter: 2}},
	{"malformed", gatewaytest.Fault{MalformedAt: 3}},
	{"in-band server error", gatewaytest.Fault{Script: "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"}},
}

func TestBrokenStreamsOpenTheBreaker(t *testing.T) {
	for _, bc := range streamBreaks {
		t.Run(bc.name, func(t *testing.T) {
			r := newVerdictRig(t)
			for i := 0; i < 2; i++ {
				r.a.Enqueue(bc.fault)
				res := r.open(t)
				assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget), "committed at the primary")
				_, err := io.ReadAll(res.Body)
				require.Error(t, err, "request %d breaks after its commit", i)
			}
			st := r.primary()
			assert.Equal(t, gwtransport.BreakerOpen, st.Breaker, "two broken streams in a row are two consecutive failures")
			assert.Equal(t, int64(2), st.Failures)
			// The next request goes to the fallback without trying the primary.
			res := r.open(t)
			assert.Equal(t, "fb/fallback-model", res.Header.Get(gwtransport.HeaderTarget))
			_, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			assert.Equal(t, 2, r.a.Count())
		})
	}
}

// A stream the caller closes before its end says nothing about the target;
// a content-policy error in band says the target is reachable.
func TestStreamsThatSayNothingAgainstTheTarget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault gatewaytest.Fault
		read  func(t *testing.T, body io.ReadCloser)
	}{
		{"closed after the first event", gatewaytest.Fault{}, func(t *testing.T, body io.ReadCloser) {
			_, err := body.Read(make([]byte, 8))
			require.NoError(t, err)
			require.NoError(t, body.Close())
		}},
		{"content policy in band", gatewaytest.Fault{Script: "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
			"data: {\"error\":{\"message\":\"flagged\",\"type\":\"invalid_request_error\",\"code\":\"content_policy_violation\"}}\n\n"},
			func(t *testing.T, body io.ReadCloser) {
				_, err := io.ReadAll(body)
				require.ErrorIs(t, err, gwtransport.ErrStreamFailed)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newVerdictRig(t)
			for i := 0; i < 3; i++ {
				r.a.Enqueue(tc.fault)
				tc.read(t, r.open(t).Body)
			}
			st := r.primary()
			assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
			assert.Zero(t, st.Failures)
		})
	}
}

// A half-open breaker's probe that is a stream closes the breaker when the
// stream completes, not when it commits; a probe stream that breaks opens
// it again.
func TestStreamProbeSettlesAtItsEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault gatewaytest.Fault
		want  gwtransport.BreakerState
	}{
		{"completes", gatewaytest.Fault{}, gwtransport.BreakerClosed},
		{"breaks", gatewaytest.Fault{CutAfter: 2}, gwtransport.BreakerOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newVerdictRig(t)
			for i := 0; i < 2; i++ {
				r.a.Enqueue(gatewaytest.Fault{CutAfter: 1})
				_, _ = io.ReadAll(r.open(t).Body)
			}
			require.Equal(t, gwtransport.BreakerOpen, r.primary().Breaker)
			_ = r.clock.Sleep(context.Background(), 2*time.Minute)
			r.a.Enqueue(tc.fault)
			res := r.open(t)
			require.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget), "the probe")
			assert.Equal(t, gwtransport.BreakerHalfOpen, r.primary().Breaker, "committed, not yet complete")
			_, _ = io.ReadAll(res.Body)
			assert.Equal(t, tc.want, r.primary().Breaker)
		})
	}
}
