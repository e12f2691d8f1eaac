package gwtransport_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestObserverUnverifiedBodyEndsWithIt: a non-streamed 2xx body larger
// than WithMaxVerifiedBody is handed over unread: its request ends when
// the body ends (a success), breaks (the read's error: a cut answer is
// never told as a success) or is closed before its end (ClosedEarly),
// never when RoundTrip returns; a verified body's request ends when
// RoundTrip returns.
func TestObserverUnverifiedBodyEndsWithIt(t *testing.T) {
	const body = `{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name      string
		verifyMax int64
		fault     gatewaytest.Fault
		read      func(io.Reader) error // what the caller reads before Close
		endedAtRT bool                  // the request ended when RoundTrip returned
		wantEnd   string                // the RequestEnd line's prefix
		wantErr   bool                  // the end carries an error
	}{
		{name: "verified: ends at return", verifyMax: 1 << 20, read: func(r io.Reader) error { _, err := io.ReadAll(r); return err },
			endedAtRT: true, wantEnd: "end target=pa/m1 status=200 err=<nil> closed=false"},
		{name: "unverified, read to its end", verifyMax: 16, read: func(r io.Reader) error { _, err := io.ReadAll(r); return err },
			wantEnd: "end target=pa/m1 status=200 err=<nil> closed=false"},
		{name: "unverified, cut", verifyMax: 16, fault: gatewaytest.Fault{BodyCutAfter: 40}, read: func(r io.Reader) error { _, err := io.ReadAll(r); return err },
			wantEnd: "end target=pa/m1 status=200 err=", wantErr: true},
		{name: "unverified, closed early", verifyMax: 16, read: func(r io.Reader) error { _, err := r.Read(make([]byte, 8)); return err },
			wantEnd: "end target=pa/m1 status=200 err=<nil> closed=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := server(t, "a", "sk-a")
			a.Enqueue(tc.fault)
			rec := newObsRecorder()
			tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"pa/m1"}, noEnv(), provider("pa", a, "sk-a"),
				gwtransport.WithMaxRetries(0), gwtransport.WithMaxVerifiedBody(tc.verifyMax),
				gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec))
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			res, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode)
			calls := rec.requests()[1]
			if tc.endedAtRT {
				require.Len(t, calls, 5, "%q", calls)
			} else {
				require.Len(t, calls, 3, "the request ended before its unverified body: %q", calls)
				assert.Equal(t, "end attempt 1 pa/m1#1 200 succeed cont=false", calls[2])
			}
			rerr := tc.read(res.Body)
			assert.Equal(t, tc.wantErr, rerr != nil, "read: %v", rerr)
			require.NoError(t, res.Body.Close())
			calls = rec.requests()[1]
			require.Len(t, calls, 5, "%q", calls)
			assert.True(t, strings.HasPrefix(calls[3], tc.wantEnd), "%q, want %q", calls[3], tc.wantEnd)
			assert.Equal(t, tc.wantErr, !strings.Contains(calls[3], "err=<nil>"), "%q", calls[3])
			assert.Equal(t, "", calls[4])
			assert.Empty(t, rec.problems())
		})
	}
}
