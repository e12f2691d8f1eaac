package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestObserverUnsentRecordedAttempt: an attempt recorded though it could
// not be sent (its provider has no key) is still an attempt to the
// Observer: its start and its end, the recorded value, come together, and
// the next attempt is numbered after it.
func TestObserverUnsentRecordedAttempt(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	rec := &rnewEnds{obsRecorder: newObsRecorder()}
	var onAttempt []gwtransport.Attempt
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL}), provider("pb", b, "sk-b"),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec),
		gwtransport.WithOnAttempt(func(x gwtransport.Attempt) { onAttempt = append(onAttempt, x) }))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	req.Header.Set("Authorization", "Bearer sk-b")
	res, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	assert.Zero(t, a.Count(), "nothing sent to pa")
	require.Len(t, onAttempt, 2)
	require.ErrorIs(t, onAttempt[0].Err, gwtransport.ErrMissingCredentials)
	got := rec.requests()
	require.Len(t, got, 1)
	for _, calls := range got {
		starts := []string{}
		for _, c := range calls {
			if strings.HasPrefix(c, "attempt ") {
				starts = append(starts, strings.Join(strings.Fields(c)[:3], " "))
			}
		}
		assert.Equal(t, []string{"attempt 1 pa/m1", "attempt 2 pb/m2"}, starts, "%v", calls)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, onAttempt, rec.ends, "AttemptEnd gets the attempts as recorded")
	assert.Empty(t, rec.problems())
}

// TestObserverStreamCanceledMidway: the caller cancels its context while
// reading a committed stream. Nothing is recorded (the target is not to
// blame), but the part's AttemptEnd carries the cut: Action NextTarget
// and the stream's error, the cancellation in it; the request ends with
// the same error.
func TestObserverStreamCanceledMidway(t *testing.T) {
	a := server(t, "a", "sk-a")
	a.Enqueue(gatewaytest.Fault{StallAfter: 2})
	rec := &rnewEnds{obsRecorder: newObsRecorder()}
	var onAttempt []gwtransport.Attempt
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1"}, noEnv(), provider("pa", a, "sk-a"),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec),
		gwtransport.WithOnAttempt(func(x gwtransport.Attempt) { onAttempt = append(onAttempt, x) }))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/chat/completions",
		strings.NewReader(`{"model":"gateway","messages":[],"stream":true}`))
	req.Header.Set("Authorization", "Bearer sk-a")
	res, err := tr.RoundTrip(req)
	require.NoError(t, err)
	buf := make([]byte, 16)
	_, err = res.Body.Read(buf)
	require.NoError(t, err)
	cancel()
	_, err = io.ReadAll(res.Body)
	require.ErrorIs(t, err, context.Canceled)
	res.Body.Close()
	require.Len(t, onAttempt, 1, "only the success is recorded")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.ends, 1)
	e := rec.ends[0]
	assert.Equal(t, "pa/m1", e.Target)
	assert.Equal(t, 200, e.Status)
	assert.Equal(t, gwtransport.NextTarget, e.Action)
	assert.ErrorIs(t, e.Err, context.Canceled)
	assert.Equal(t, err, e.Err, "the stream's error")
	assert.Empty(t, rec.problems())
}
