package gatewaytest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func post(t *testing.T, url, body string, header map[string]string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func TestServer(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithName("p"), gatewaytest.WithAPIKey("k"), gatewaytest.WithStreamChunks(2))
	defer s.Close()
	auth := map[string]string{"Authorization": "Bearer k"}

	tests := []struct {
		name       string
		fault      *gatewaytest.Fault
		path, body string
		header     map[string]string
		wantStatus int
		wantErr    bool
		wantBody   []string
	}{
		{name: "chat", path: "/v1/chat/completions", body: `{"model":"m"}`, header: auth, wantStatus: 200, wantBody: []string{`"model":"m"`, `"content":"Hello from p"`}},
		{name: "wrong key", path: "/v1/chat/completions", body: `{"model":"m"}`, header: map[string]string{"Authorization": "Bearer x"}, wantStatus: 401, wantBody: []string{`"code":"invalid_api_key"`}},
		{name: "azure key and path", path: "/openai/deployments/dep/chat/completions", body: `{}`, header: map[string]string{"Api-Key": "k"}, wantStatus: 200, wantBody: []string{`"model":"dep"`}},
		{name: "stream", path: "/v1/chat/completions", body: `{"model":"m","stream":true}`, header: auth, wantStatus: 200, wantBody: []string{"tok2", `"finish_reason":"stop"`, "data: [DONE]"}},
		{name: "status fault", fault: &gatewaytest.Fault{Status: 429, Code: "rate_limit", Header: map[string]string{"Retry-After": "3"}}, path: "/v1/chat/completions", body: `{"model":"m"}`, header: auth, wantStatus: 429, wantBody: []string{`"code":"rate_limit"`}},
		{name: "reset", fault: &gatewaytest.Fault{Reset: true}, path: "/v1/chat/completions", body: `{"model":"m"}`, header: auth, wantErr: true},
		{name: "error event", fault: &gatewaytest.Fault{ErrorEvent: true}, path: "/v1/chat/completions", body: `{"model":"m","stream":true}`, header: auth, wantStatus: 200, wantBody: []string{`"error"`}},
		{name: "no done", fault: &gatewaytest.Fault{NoDone: true}, path: "/v1/chat/completions", body: `{"model":"m","stream":true}`, header: auth, wantStatus: 200, wantBody: []string{`"finish_reason":"stop"`}},
		{name: "responses stream", path: "/v1/responses", body: `{"model":"m","stream":true}`, header: auth, wantStatus: 200, wantBody: []string{"event: response.completed"}},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"m"}`, header: auth, wantStatus: 200, wantBody: []string{`"embedding"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			if tc.fault != nil {
				s.Enqueue(*tc.fault)
			}
			res, body, err := post(t, s.Endpoint+tc.path, tc.body, tc.header)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantStatus, res.StatusCode)
			for _, w := range tc.wantBody {
				assert.Contains(t, body, w)
			}
			if tc.fault != nil && tc.fault.Header != nil {
				assert.Equal(t, "3", res.Header.Get("Retry-After"))
			}
			if tc.name == "no done" {
				assert.NotContains(t, body, "[DONE]")
			}
			j := s.Journal()
			require.Len(t, j, 1)
			assert.Equal(t, tc.path, j[0].Path)
			for _, h := range []string{"Authorization", "Api-Key"} {
				if v, ok := tc.header[h]; ok {
					assert.Equal(t, gatewaytest.Mask(v), j[0].Header.Get(h), "secrets are masked")
				}
			}
		})
	}
}

func TestHangEndsWhenClientGivesUp(t *testing.T) {
	s := gatewaytest.NewServer()
	defer s.Close()
	s.SetFault(&gatewaytest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/chat/completions", strings.NewReader(`{}`))
	errc := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	// The server holds the request; the client gives up.
	require.Eventually(t, func() bool { return s.Count() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	assert.Equal(t, 1, s.Count())
}

// Prelude and Script: the bytes written are exactly the fault's, for chat
// and Responses streams; a Prelude precedes the generated stream too.
func TestServerScript(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithAPIKey("k"), gatewaytest.WithStreamChunks(2))
	defer s.Close()
	auth := map[string]string{"Authorization": "Bearer k"}
	for _, path := range []string{"/v1/chat/completions", "/v1/responses"} {
		s.Enqueue(gatewaytest.Fault{Prelude: ": hi\n\n", Script: "data: {\"a\":1}\n\ndata: [DONE]\n\n", ScriptPause: time.Millisecond})
		_, body, err := post(t, s.Endpoint+path, `{"model":"m","stream":true}`, auth)
		require.NoError(t, err)
		assert.Equal(t, ": hi\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n", body, path)
	}
	s.Enqueue(gatewaytest.Fault{Prelude: "event: ping\ndata: {}\n\n"})
	_, body, err := post(t, s.Endpoint+"/v1/chat/completions", `{"model":"m","stream":true}`, auth)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(body, "event: ping\ndata: {}\n\ndata: {"), body)
	assert.Contains(t, body, "data: [DONE]")
}
