package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// reviewStreamCfg is twoProviders' configuration with short stream limits.
func reviewStreamCfg(t *testing.T) (a, b *gatewaytest.Server, p *testProxy) {
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	cfg = strings.Replace(cfg, "defaults:\n  max_retries: 0\n", "defaults:\n  max_retries: 0\n  stream_idle: 300ms\n  stream_finish_grace: 200ms\n  body_idle: 300ms\n", 1)
	return a, b, startProxy(t, cfg, proxyOpts{env: env})
}

func reviewStream(t *testing.T, p *testProxy, path, body string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	return res.StatusCode, string(got), err
}

// TestReviewBrokenStreamShapes: every committed stream that does not
// complete ends with an SSE error event and an aborted connection.
func TestReviewBrokenStreamShapes(t *testing.T) {
	a, b, p := reviewStreamCfg(t)
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	for _, tc := range []struct {
		name  string
		fault gatewaytest.Fault
	}{
		{"stall", gatewaytest.Fault{StallAfter: 2}},
		{"malformed", gatewaytest.Fault{MalformedAt: 2}},
		{"clean close without finish", gatewaytest.Fault{Script: chunk + chunk}},
		{"in-band error after content", gatewaytest.Fault{Script: chunk + `data: {"error":{"message":"overloaded","type":"server_error"}}` + "\n\n"}},
		{"event: error after content", gatewaytest.Fault{Script: chunk + "event: error\ndata: {\"message\":\"boom\"}\n\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			a.Enqueue(tc.fault)
			status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
			require.Equal(t, 200, status, "%s", got)
			assert.Error(t, err, "the broken stream ended cleanly: %q", got)
			assert.Contains(t, got, "event: error\ndata: ", "no SSE error event: %q", got)
		})
	}
}

// TestReviewCompleteStreamsEndCleanly: a stream that completes ends
// cleanly, whatever the provider does after its end.
func TestReviewCompleteStreamsEndCleanly(t *testing.T) {
	a, b, p := reviewStreamCfg(t)
	for _, tc := range []struct {
		name  string
		path  string
		body  string
		fault gatewaytest.Fault
	}{
		{"chat", "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"), gatewaytest.Fault{}},
		{"chat no [DONE]", "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"), gatewaytest.Fault{NoDone: true}},
		{"chat no [DONE] held open", "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"), gatewaytest.Fault{NoDone: true, HoldOpen: true}},
		{"responses", "/v1/responses", `{"model":"gateway","stream":true,"input":"hi"}`, gatewaytest.Fault{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			a.Enqueue(tc.fault)
			status, got, err := reviewStream(t, p, tc.path, tc.body)
			require.Equal(t, 200, status, "%s", got)
			assert.NoError(t, err, "a complete stream did not end cleanly: %q", got)
			assert.NotContains(t, got, "event: error")
		})
	}
}

// TestReviewBrokenStreamOtherContentType: the engine reads a 2xx answer to
// a streamed request as a stream whatever its Content-Type; when such a
// committed stream breaks, the client must still get the SSE error event
// before the abort.
func TestReviewBrokenStreamOtherContentType(t *testing.T) {
	for _, ct := range []string{"", "text/plain", "application/json", "Text/Event-Stream"} {
		t.Run("content-type "+ct, func(t *testing.T) {
			prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if ct == "" {
					w.Header()["Content-Type"] = nil // no sniffing
				} else {
					w.Header().Set("Content-Type", ct)
				}
				w.WriteHeader(200)
				fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n")
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // cut mid-stream
			})
			srv := newHTTPServer(t, prov)
			cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\nmodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srv)
			p := startProxy(t, cfg, proxyOpts{})
			status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
			require.Equal(t, 200, status, "%s", got)
			assert.Error(t, err, "the broken stream ended cleanly: %q", got)
			assert.Contains(t, got, "event: error\ndata: ", "no SSE error event before the abort: %q", got)
		})
	}
}

// TestReviewCompleteThenCut: a stream complete by its finish_reason whose
// provider then drops the connection (no [DONE]) is a complete answer: it
// ends cleanly.
func TestReviewCompleteThenCut(t *testing.T) {
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	srv := newHTTPServer(t, prov)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\nmodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\n  stream_finish_grace: 200ms\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srv)
	p := startProxy(t, cfg, proxyOpts{})
	status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, status, "%s", got)
	assert.NoError(t, err, "a complete stream did not end cleanly: %q", got)
	assert.NotContains(t, got, "event: error")
}
