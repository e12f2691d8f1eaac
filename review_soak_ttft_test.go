package gwtransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewTTFTNotForNonStreamed: "Non-streamed requests never held to it":
// a non-streamed answer after 250 ms with a 100 ms first-event limit and a
// 1 s attempt timeout is served by the first target in one attempt.
func TestReviewTTFTNotForNonStreamed(t *testing.T) {
	p := server(t, "primary", "key-p")
	c := openaiClient(p, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithTimeout(time.Second), gwtransport.WithStreamFirstEvent(100*time.Millisecond))
	p.Enqueue(gatewaytest.Fault{Delay: 250 * time.Millisecond})
	_, raw, err := chat(t, c, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "1", raw.Header.Get("X-Gwtransport-Attempts"))
}

// TestReviewTTFTPerTargetZero: WithModelFirstEvent 0 for a target lifts the
// first-event limit there; the attempt timeout (1 s) still applies. A
// first event after 300 ms (route limit 100 ms) is served at once.
func TestReviewTTFTPerTargetZero(t *testing.T) {
	p := server(t, "primary", "key-p")
	c := openaiClient(p, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithTimeout(time.Second), gwtransport.WithStreamFirstEvent(100*time.Millisecond),
		gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": 0}))
	p.Enqueue(gatewaytest.Fault{FirstEventDelay: 300 * time.Millisecond}, gatewaytest.Fault{FirstEventDelay: 1500 * time.Millisecond})
	text, raw, err := streamChat(t, context.Background(), c, "gateway")
	require.NoError(t, err)
	assert.NotEmpty(t, text)
	assert.Equal(t, "1", raw.Header.Get("X-Gwtransport-Attempts"))
	// the attempt timeout still bounds it
	t0 := time.Now()
	_, _, err = streamChat(t, context.Background(), c, "gateway")
	assert.Less(t, time.Since(t0), 5*time.Second)
	t.Logf("second: %v after %v", err, time.Since(t0))
}

// TestReviewTTFTRoleOnlyThenSlow: role-only chunk at once, first content
// after 300 ms with a 100 ms first-event limit: fails over to the fallback.
func TestReviewTTFTRoleOnlyThenSlow(t *testing.T) {
	p := server(t, "primary", "key-p")
	f := server(t, "fallback", "key-f")
	c := openaiClient(p, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o", "mistral/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: f.URL, APIKey: "key-f"}),
		gwtransport.WithTimeout(time.Second), gwtransport.WithStreamFirstEvent(100*time.Millisecond))
	p.Enqueue(gatewaytest.Fault{
		Script:      `data: {"id":"r","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n" + `data: {"id":"r","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"late"},"finish_reason":"stop"}]}` + "\n\n" + "data: [DONE]\n\n",
		ScriptPause: 300 * time.Millisecond,
	})
	text, raw, err := streamChat(t, context.Background(), c, "gateway")
	require.NoError(t, err)
	assert.NotContains(t, text, "late")
	assert.Equal(t, "mistral/m", raw.Header.Get("X-Gwtransport-Target"))
}
