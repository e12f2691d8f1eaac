package gwtransport_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// GetBody fails from its second call on (the scan took the first): the
// request ends with an error, bounded, no attempt sends anything cut.
func TestRvPerfGetBodyFailsAfterScan(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a", "bprov/model-b"},
		noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithClock(newFakeClock()))
	require.NoError(t, err)
	body := rvBig("T", "gateway", 64<<10)
	var calls atomic.Int32
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) {
		if calls.Add(1) == 1 {
			return io.NopCloser(strings.NewReader(body)), nil
		}
		return nil, errors.New("boom")
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		res.Body.Close()
	}
	t.Logf("err=%v calls=%d", err, calls.Load())
	require.Error(t, err)
	assert.Zero(t, a.Count()+b.Count())
	assert.LessOrEqual(t, calls.Load(), int32(5))
}

// net/http replays a spliced body through GetBody when a reused keep-alive
// connection dies after the request was written (Idempotency-Key makes the
// POST replayable, as openai-go sends it): the replay is byte for byte the
// first write.
func TestRvPerfKeepAliveRetryReplaysSplice(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		if n.Add(1) == 2 {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer srv.Close()
	tr, err := gwtransport.NewTransport(&http.Transport{}, []string{"aprov/model-a"},
		noEnv(), gwtransport.WithProvider(gwtransport.Provider{Name: "aprov", BaseURL: srv.URL, APIKey: "key-a"}),
		gwtransport.WithModelMessages(map[string][]gwtransport.Message{"aprov/model-a": {{Role: "system", Content: "S"}}}))
	require.NoError(t, err)
	client := &http.Client{Transport: tr}
	for i := 0; i < 2; i++ {
		body := rvBig("T", "gateway", 200<<10)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k")
		res, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 3)
	want := strings.Replace(strings.Replace(rvBig("T", "gateway", 200<<10), `"model":"gateway"`, `"model":"model-a"`, 1),
		`{"messages":[`, `{"messages":[{"role":"system","content":"S"},`, 1)
	for i, b := range bodies {
		assert.True(t, want == string(b), "body %d differs (len %d vs %d)", i, len(b), len(want))
	}
}

var _ = gatewaytest.Fault{}
