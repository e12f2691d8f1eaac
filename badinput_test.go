package gwtransport_test

import (
	"bytes"
	"compress/gzip"
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

// TestBadInput: each row is a hostile or unusual request or provider
// answer, with its expected outcome: a clear error, or an untouched
// pass-through, or a bounded failover; never a panic, never a lost body.
func TestBadInput(t *testing.T) {
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		return b.Bytes()
	}
	type outcome int
	const (
		passThrough outcome = iota // the primary receives the body unchanged
		intercepted                // the gateway served it (X-Gwtransport-Target set)
		failedOver                 // the fallback served it
		clearError                 // RoundTrip returned an error naming the problem
	)
	tests := []struct {
		name        string
		method      string
		header      map[string]string
		body        []byte
		noLength    bool // body without ContentLength and without GetBody
		primary     *gatewaytest.Fault
		opts        []gwtransport.Option
		want        outcome
		wantErr     string
		wantBodyLen int // for failures handed back: the bounded body length
	}{
		{name: "non-JSON body", method: "POST", header: map[string]string{"Content-Type": "text/plain"}, body: []byte("model: gateway"), want: passThrough},
		{name: "JSON content type, not an object", method: "POST", body: []byte(`"gateway"`), want: passThrough},
		{name: "body without model", method: "POST", body: []byte(`{"messages":[]}`), want: passThrough},
		{name: "model not a string", method: "POST", body: []byte(`{"model":["gateway"],"messages":[]}`), want: passThrough},
		{name: "empty model", method: "POST", body: []byte(`{"model":"","messages":[]}`), want: passThrough},
		{name: "whitespace model", method: "POST", body: []byte(`{"model":"  gateway ","messages":[]}`), want: passThrough},
		{name: "gzip-encoded body", method: "POST", header: map[string]string{"Content-Encoding": "gzip"}, body: gz(`{"model":"gateway","messages":[]}`), want: passThrough},
		{name: "malformed JSON naming the route", method: "POST", body: []byte(`{"model":"gateway","messages":[}`), want: clearError, wantErr: "malformed JSON"},
		{name: "body without GetBody, replayed on fallback", method: "POST", body: []byte(`{"model":"gateway","messages":[]}`), noLength: true, primary: &gatewaytest.Fault{Status: 503}, want: failedOver},
		{name: "body over the size limit streams through", method: "POST", body: append([]byte(`{"model":"gateway","messages":["`), append(bytes.Repeat([]byte("x"), 4096), []byte(`"]}`)...)...), opts: []gwtransport.Option{gwtransport.WithMaxBodyBytes(1024)}, want: passThrough},
		{name: "body over the size limit without a length", method: "POST", body: append([]byte(`{"model":"gateway","messages":["`), append(bytes.Repeat([]byte("x"), 4096), []byte(`"]}`)...)...), noLength: true, opts: []gwtransport.Option{gwtransport.WithMaxBodyBytes(1024)}, want: passThrough},
		{name: "GET without body", method: "GET", want: passThrough},
		{name: "provider answers a redirect", method: "POST", body: []byte(`{"model":"gateway","messages":[]}`), primary: &gatewaytest.Fault{Status: 307}, want: failedOver},
		{name: "provider answers invalid JSON on an error", method: "POST", body: []byte(`{"model":"gateway","messages":[]}`), primary: &gatewaytest.Fault{Status: 500, Body: "<html>oops"}, want: failedOver},
		{name: "provider answers a huge error body", method: "POST", body: []byte(`{"model":"gateway","messages":[]}`), primary: &gatewaytest.Fault{Status: 400, Body: strings.Repeat("x", 3<<20)}, want: intercepted, wantBodyLen: 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			primary := server(t, "primary", "")
			fallback := server(t, "fallback", "")
			if tc.primary != nil {
				primary.SetFault(tc.primary)
			}
			opts := append([]gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(0),
				gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fallback.URL, Auth: gwtransport.AuthNone})}, tc.opts...)
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, opts...)
			require.NoError(t, err)
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.noLength {
					body = io.MultiReader(body) // hides the length and GetBody
				}
			}
			req, err := http.NewRequest(tc.method, primary.URL+"/chat/completions", body)
			require.NoError(t, err)
			if tc.noLength {
				require.Nil(t, req.GetBody)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			res, err := tr.RoundTrip(req)
			if tc.want == clearError {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Zero(t, primary.Count()+fallback.Count(), "nothing sent")
				return
			}
			require.NoError(t, err)
			got, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			res.Body.Close()
			switch tc.want {
			case passThrough:
				assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget))
				j := primary.Journal()
				require.Len(t, j, 1)
				assert.Equal(t, tc.body, nilIfEmpty(j[0].Body), "the body arrives unchanged")
				assert.Zero(t, fallback.Count())
			case failedOver:
				assert.Equal(t, 200, res.StatusCode)
				assert.Equal(t, "fb/m", res.Header.Get(gwtransport.HeaderTarget))
				assert.Equal(t, 1, primary.Count())
				j := fallback.Journal()
				require.Len(t, j, 1)
				assert.Equal(t, "m", j[0].Model)
			case intercepted:
				assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
				if tc.wantBodyLen > 0 {
					assert.Len(t, got, tc.wantBodyLen)
				}
			}
		})
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// A redirect from a provider is never followed with the caller's or the
// gateway's credentials: the gateway does not follow it, fails over, and
// the response it hands back has no Location for an http.Client to follow.
func TestRedirectNeverFollowedWithCredentials(t *testing.T) {
	evil := server(t, "evil", "")
	primary := server(t, "primary", "key-p")
	primary.SetFault(&gatewaytest.Fault{Status: 302, Header: map[string]string{"Location": evil.URL + "/chat/completions"}})
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithMaxRetries(0))
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, primary.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := hc.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 302, res.StatusCode)
	assert.Empty(t, res.Header.Get("Location"))
	assert.Zero(t, evil.Count(), "nothing reaches the redirect target")
}

// TestBodyOver64MiB: a body over the default 64 MiB limit is not buffered:
// it streams through to the addressed provider untouched, whatever its
// model says.
func TestBodyOver64MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB body skipped in -short mode")
	}
	s := server(t, "primary", "")
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	filler := bytes.Repeat([]byte("a"), 64<<20)
	body := append(append([]byte(`{"model":"gateway","messages":[{"role":"user","content":"`), filler...), []byte(`"}]}`)...)
	for _, known := range []bool{true, false} {
		s.Reset()
		var r io.Reader = bytes.NewReader(body)
		if !known {
			r = io.MultiReader(r)
		}
		req, err := http.NewRequest(http.MethodPost, s.URL+"/chat/completions", r)
		require.NoError(t, err)
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget), "not intercepted")
		j := s.Journal()
		require.Len(t, j, 1)
		assert.Equal(t, len(body), len(j[0].Body))
		assert.True(t, bytes.Equal(body, j[0].Body), "the body arrives byte for byte (length known: %v)", known)
		assert.Equal(t, "gateway", j[0].Model)
	}
}
