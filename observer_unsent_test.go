package gwtransport_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
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
