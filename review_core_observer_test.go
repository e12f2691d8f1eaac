package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// reviewCoreNopObserver observes and returns the contexts it is given.
type reviewCoreNopObserver struct{}

func (reviewCoreNopObserver) RequestStart(ctx context.Context, _ gwtransport.ObservedRequest) context.Context {
	return ctx
}
func (reviewCoreNopObserver) AttemptStart(ctx context.Context, _ gwtransport.ObservedAttempt) context.Context {
	return ctx
}
func (reviewCoreNopObserver) AttemptEnd(context.Context, gwtransport.Attempt)     {}
func (reviewCoreNopObserver) RequestEnd(context.Context, gwtransport.ObservedEnd) {}

// reviewCoreNestedResponseBody is a valid chat completion (nesting within
// encoding/json's limit, so verification passes it) carrying a member
// "response" nested depth times, with filler (many small tokens) at the
// bottom.
func reviewCoreNestedResponseBody(depth, filler int) string {
	var b strings.Builder
	b.WriteString(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1},"x":`)
	for i := 0; i < depth; i++ {
		b.WriteString(`{"response":`)
	}
	b.WriteString(`[`)
	for i := 0; i < filler; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	b.WriteString(`]`)
	b.WriteString(strings.Repeat("}", depth))
	b.WriteString(`,"response":`)
	for i := 0; i < depth; i++ {
		b.WriteString(`{"response":`)
	}
	b.WriteString(`[`)
	for i := 0; i < filler; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	b.WriteString(`]`)
	b.WriteString(strings.Repeat("}", depth))
	b.WriteString(`}`)
	return b.String()
}

// TestReviewCoreObserverDoesNotSlowTheRequest: "with an Observer set, the
// request's own behaviour must not change". A verified 200 body whose
// "response" member nests (valid JSON, 3000 levels twice, about 300 KB) is handed
// over at once without an observer; with a do-nothing observer,
// RoundTrip only returns after the observer's usage reader has re-scanned
// the body once per nesting level (readUsage recursing into "response",
// each level's eachMember skipping the whole rest): quadratic work on the
// caller's goroutine before RoundTrip returns, chosen by the provider.
func TestReviewCoreObserverDoesNotSlowTheRequest(t *testing.T) {
	body := reviewCoreNestedResponseBody(3000, 60000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()

	run := func(opts ...gwtransport.Option) (time.Duration, []byte) {
		base := &http.Transport{}
		defer base.CloseIdleConnections()
		tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-4o"}, append([]gwtransport.Option{noEnv()}, opts...)...)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		res, err := tr.RoundTrip(req)
		d := time.Since(start)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		got, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return d, got
	}
	plain, b1 := run()
	observed, b2 := run(gwtransport.WithObserver(reviewCoreNopObserver{}))
	require.Equal(t, body, string(b1))
	require.Equal(t, body, string(b2))
	t.Logf("RoundTrip without observer %s, with a do-nothing observer %s", plain, observed)
	require.Less(t, observed, 3*plain+200*time.Millisecond,
		"a do-nothing observer made RoundTrip %s slower (without: %s, with: %s)", observed-plain, plain, observed)
}
