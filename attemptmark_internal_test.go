package gwtransport

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type otherKey struct{}

// TestAttemptContextIsTheCallersMarked: the marked context answers the
// mark and every value, deadline and cancellation of the caller's context,
// and cancelling over it needs no goroutine.
func TestAttemptContextIsTheCallersMarked(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	parent, cancelParent := context.WithDeadline(context.WithValue(context.Background(), otherKey{}, "v"), deadline)
	defer cancelParent()
	mark := &attemptCtx{Context: parent}
	before := runtime.NumGoroutine()
	actx, cancel := context.WithCancel(mark)
	defer cancel()
	assert.Equal(t, before, runtime.NumGoroutine(), "no goroutine propagates the cancellation")

	req, err := http.NewRequestWithContext(actx, http.MethodPost, "http://127.0.0.1/", http.NoBody)
	require.NoError(t, err)
	caller, err := http.NewRequestWithContext(parent, http.MethodPost, "http://127.0.0.1/", http.NoBody)
	require.NoError(t, err)
	assert.True(t, isAttempt(req))
	assert.False(t, isAttempt(caller))
	assert.Equal(t, "v", actx.Value(otherKey{}))
	dl, ok := actx.Deadline()
	assert.True(t, ok)
	assert.Equal(t, deadline, dl)

	cancelParent()
	select {
	case <-actx.Done():
	case <-time.After(time.Second):
		t.Fatal("the caller's cancellation did not reach the attempt")
	}
	assert.ErrorIs(t, actx.Err(), context.Canceled)
}

// TestOpenAIHookPassesAttemptsThrough: the openai-go hook hands a request
// some gateway built as an attempt to the rest of the client's chain as
// is (the same request, body unread), even when its model names a route.
func TestOpenAIHookPassesAttemptsThrough(t *testing.T) {
	g, err := compile([]string{"p/m", "p/n"}, []Option{
		WithProvider(Provider{Name: "p", BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-p"}),
		WithEnv(func(string) (string, bool) { return "", false }),
	})
	require.NoError(t, err)
	h := newOpenAIHook()
	h.bind.install(g, nil)
	for _, marked := range []bool{true, false} {
		ctx := context.Background()
		if marked {
			ctx = &attemptCtx{Context: ctx}
		}
		body := `{"model":"gateway","messages":[]}`
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/v1/chat/completions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-p")
		var got []*http.Request
		var gotBodies []string
		next := func(r *http.Request) (*http.Response, error) {
			b, err := io.ReadAll(r.Body)
			require.NoError(t, err)
			got, gotBodies = append(got, r), append(gotBodies, string(b))
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
		}
		res, err := h.middleware(req, next)
		require.NoError(t, err)
		res.Body.Close()
		require.Len(t, got, 1)
		if marked {
			assert.Same(t, req, got[0], "an attempt passes through as is")
			assert.Equal(t, body, gotBodies[0])
		} else {
			assert.NotSame(t, req, got[0], "a caller's request is routed")
			assert.Equal(t, `{"model":"m","messages":[]}`, gotBodies[0])
		}
	}
}
