package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// The first stream's [DONE] line is held (never delivered: its blank line
// never comes, the provider cuts). The stream is rescued at pb. The caller
// then closes mid-continuation, before pb's part is complete: "A caller's
// close or cancel before completion records nothing" — yet doneSeen, set by
// the held [DONE] of the first part and never reset by the rescue, makes the
// close count pb's unfinished continuation as a success.
func TestRV3HeldDoneLeaksIntoContinuationVerdict(t *testing.T) {
	aScript := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n" +
		"data: [DONE]\n" // cut before the blank line
	a := newRV2Server(t, aScript)
	bsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select { // never finishes while the caller reads
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer bsrv.Close()
	b := &rv2Server{Server: bsrv}
	tr := rv2Transport(t, a, b)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(rv2Body))
	req.Header.Set("Authorization", "Bearer ka")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	var out []byte
	buf := make([]byte, 1)
	for !strings.Contains(string(out), `"lo"`) || !strings.HasSuffix(string(out), "\n\n") {
		n, err := res.Body.Read(buf)
		out = append(out, buf[:n]...)
		require.NoError(t, err, "%s", out)
	}
	assert.NotContains(t, string(out), "[DONE]", "the held [DONE] was never delivered")
	res.Body.Close() // mid-continuation: no finish_reason, no [DONE] yet
	st := rv2Stats(tr)
	assert.Equal(t, [3]int64{1, 0, 1}, st["pa/m1"])
	assert.Equal(t, [3]int64{1, 0, 0}, st["pb/m2"], "pb's continuation was abandoned unfinished: no verdict")
}

// The same leak as a half-open probe: pb's breaker is half-open, the
// continuation is its probe, the caller closes mid-continuation; "a half-open
// probe that is a stream closes the breaker only once complete".
func TestRV3HeldDoneClosesBreakerOnUnfinishedContinuationProbe(t *testing.T) {
	aScript := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n" +
		"data: [DONE]\n"
	a := newRV2Server(t, aScript)
	var calls atomic.Int32
	bsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer bsrv.Close()
	b := &rv2Server{Server: bsrv}
	clk := newFakeClock()
	tr := rv2Transport(t, a, b, gwtransport.WithClock(clk), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	state := func(name string) gwtransport.BreakerState {
		for _, s := range tr.Stats() {
			if s.Target == name {
				return s.Breaker
			}
		}
		return ""
	}
	do := func(url string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(rv2Body))
		req.Header.Set("Authorization", "Bearer ka")
		res, err := (&http.Client{Transport: tr}).Do(req)
		require.NoError(t, err)
		return res
	}
	// Open pb's breaker: a direct request routed pb-first is not available,
	// so use a stream at pa that breaks: pb's continuation answers 500.
	res := do(a.URL)
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, gwtransport.BreakerOpen, state("pb/m2"), "stats: %v", rv2Stats(tr))
	require.NoError(t, clk.Sleep(context.Background(), 11*time.Second))
	res = do(a.URL)
	var out []byte
	buf := make([]byte, 1)
	for !strings.Contains(string(out), `"lo"`) || !strings.HasSuffix(string(out), "\n\n") {
		n, err := res.Body.Read(buf)
		out = append(out, buf[:n]...)
		require.NoError(t, err, "%s", out)
	}
	res.Body.Close() // the probe stream is not complete
	require.Equal(t, int32(2), calls.Load(), "the second continuation went to pb (its probe)")
	assert.NotEqual(t, gwtransport.BreakerClosed, state("pb/m2"), "an unfinished probe stream closed the breaker")
}

// Control: the same without the held [DONE] line — the close records nothing
// for pb (passes), so the held [DONE] is what makes the success.
func TestRV3ControlNoHeldDone(t *testing.T) {
	aScript := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
	a := newRV2Server(t, aScript)
	bsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer bsrv.Close()
	tr := rv2Transport(t, a, &rv2Server{Server: bsrv})
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(rv2Body))
	req.Header.Set("Authorization", "Bearer ka")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	var out []byte
	buf := make([]byte, 1)
	for !strings.Contains(string(out), `"lo"`) || !strings.HasSuffix(string(out), "\n\n") {
		n, err := res.Body.Read(buf)
		out = append(out, buf[:n]...)
		require.NoError(t, err, "%s", out)
	}
	res.Body.Close()
	assert.Equal(t, [3]int64{1, 0, 0}, rv2Stats(tr)["pb/m2"])
}

// Without a rescue: an event holding a [DONE] line and a malformed line is
// dropped whole (WithStreamMalformedLimit), so the caller never gets that
// [DONE]; the stream goes on, the caller closes before completion — counted
// as a success ("A caller's close or cancel before completion records
// nothing").
func TestRV3DroppedDoneEventCountsSuccessOnClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		io.WriteString(w, "data: [DONE]\ndata: {bad\n\n")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	a := &rv2Server{Server: srv}
	b := newRV2Server(t, "unused")
	tr := rv2Transport(t, a, b, gwtransport.WithContinuation(false), gwtransport.WithStreamMalformedLimit(3))
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(rv2Body))
	req.Header.Set("Authorization", "Bearer ka")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	var out []byte
	buf := make([]byte, 1)
	for !strings.Contains(string(out), `"lo"`) || !strings.HasSuffix(string(out), "\n\n") {
		n, err := res.Body.Read(buf)
		out = append(out, buf[:n]...)
		require.NoError(t, err, "%s", out)
	}
	assert.NotContains(t, string(out), "[DONE]")
	res.Body.Close() // not complete: no [DONE] delivered, no finish_reason
	assert.Equal(t, [3]int64{1, 0, 0}, rv2Stats(tr)["pa/m1"], "closed before completion: no verdict")
}
