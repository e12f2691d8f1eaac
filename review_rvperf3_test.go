package gwtransport_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// closeHook is a request body that runs a hook when it is closed.
type closeHook struct {
	io.Reader
	closed atomic.Bool
	hook   func()
}

func (c *closeHook) Close() error {
	if !c.closed.Swap(true) && c.hook != nil {
		c.hook()
	}
	return nil
}

// http.RoundTripper: "callers wanting to reuse the body for subsequent
// requests must arrange to wait for the Close call before doing so." The
// replay path closes the caller's Body at once, then keeps sending the
// caller's slice (through GetBody's *bytes.Reader, no copy) on later
// attempts. A caller that reuses its buffer once Body is closed (as the
// contract allows) has its next request's bytes sent on this one's fallback.
func TestRvPerfBufferReusedAfterBodyClose(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a", "bprov/model-b"},
		noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0))
	require.NoError(t, err)
	body := rvBig("ORIGINAL", "gateway", 64<<10)
	buf := []byte(body)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	req.Body = &closeHook{Reader: req.Body, hook: func() {
		// The caller reuses its buffer once the transport closed Body.
		copy(buf, rvBig("REUSED!!", "gateway", 64<<10))
	}}
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	for _, j := range append(a.Journal(), b.Journal()...) {
		assert.True(t, strings.Contains(string(j.Body), "ORIGINAL"), "an attempt sent bytes the caller wrote after Body was closed: %.60q", j.Body)
	}
}

// The same, for a stream continued after a break once RoundTrip returned:
// the continuation's prefill is built from the caller's slice (kept without
// a copy), read long after Body was closed and RoundTrip returned.
func TestRvPerfContinuationAfterBufferReuse(t *testing.T) {
	long := strings.Repeat(`Read this long text. `, 1000)
	body := strings.Replace(contBody, `"content":"Hi"`, `"content":"`+long+`"`, 1)
	bc := breakCases()[0]
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
	rig.a.Enqueue(bc.fault)
	buf := []byte(body)
	req, _ := http.NewRequest(http.MethodPost, rig.a.URL+"/chat/completions", bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer key-p")
	req.Header.Set("Content-Type", "application/json")
	hook := &closeHook{Reader: req.Body}
	req.Body = hook
	res, err := (&http.Client{Transport: rig.tr}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.True(t, hook.closed.Load(), "Body closed by the time RoundTrip returned")
	// RoundTrip returned and Body is closed: the caller reuses its buffer.
	copy(buf, strings.Replace(body, "Read this long text. ", "XXXXXXXXXXXXXXXXXXXX ", -1))
	got := readSSE(res.Body)
	require.NoError(t, got.err)
	j := rig.b.Journal()
	require.Len(t, j, 1)
	assert.True(t, strings.Contains(string(j[0].Body), `"content":"`+long+`"`), "the continuation carries the caller's message as sent: %.80q", j[0].Body[bytes.Index(j[0].Body, []byte(`"content"`)):])
	_ = gwtransport.ErrStreamTruncated
}
