package gwtransport_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

func chatJSON(text string) string {
	return `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` + text + `"},"finish_reason":"stop"}]}`
}

// TestReviewAttemptTimeoutCoversTrickledBody: the primary trickles a valid
// body one byte per 20 ms (each read well under the body idle limit), the
// whole taking ~4 s; the attempt timeout (300 ms) covers the verified body,
// so the request fails over to the fallback within about that.
func TestReviewAttemptTimeoutCoversTrickledBody(t *testing.T) {
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		b := chatJSON("slow")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		for i := 0; i < len(b); i++ {
			if _, err := io.WriteString(w, b[i:i+1]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	defer prim.Close()
	fb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, chatJSON("fast"))
	}))
	defer fb.Close()
	c := openaiClientURL(prim.URL)
	mustInit(t, c, []string{"openai/gpt-4o", "mistral/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: fb.URL, APIKey: "k"}),
		gwtransport.WithTimeout(300*time.Millisecond), gwtransport.WithBodyIdle(time.Second), gwtransport.WithMaxRetries(0))
	t0 := time.Now()
	res, err := c.Chat.Completions.New(context.Background(), chatParams("gateway"))
	require.NoError(t, err)
	assert.Equal(t, "fast", res.Choices[0].Message.Content)
	assert.Less(t, time.Since(t0), 1500*time.Millisecond)
}

// TestReviewOverBoundChunkedHandedOverWhole: a chunked (no Content-Length)
// 2xx JSON body of 50 KiB with a 1 KiB bound is handed over unverified,
// every byte once and in order.
func TestReviewOverBoundChunkedHandedOverWhole(t *testing.T) {
	big := chatJSON(strings.Repeat("abcdefghij", 5000))
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i < len(big); i += 333 {
			_, _ = io.WriteString(w, big[i:min(i+333, len(big))])
			w.(http.Flusher).Flush()
		}
	}))
	defer prim.Close()
	hc := &http.Client{}
	mustInit(t, hc, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithMaxVerifiedBody(1024),
		gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: prim.URL, APIKey: "k"}))
	req, _ := http.NewRequest("POST", prim.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	res, err := hc.Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.True(t, bytes.Equal([]byte(big), got), "len %d vs %d", len(got), len(big))
}
