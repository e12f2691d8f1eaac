package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReview2RescueAfterPendingLine: a stream cut after a content event's
// data line but before its blank line, rescued by a continuation on the
// next target: the bytes the client receives must parse as SSE events each
// of whose data is valid JSON (or [DONE]).
func TestReview2RescueAfterPendingLine(t *testing.T) {
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	cfg = strings.Replace(cfg, "defaults:\n  max_retries: 0\n", "defaults:\n  max_retries: 0\n  continuation: prefill\n", 1)
	p := startProxy(t, cfg, proxyOpts{env: env})
	ev := func(s string) string {
		return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"` + s + `"},"finish_reason":null}]}` + "\n"
	}
	a.Enqueue(gatewaytest.Fault{Script: ev("Hello") + "\n" + ev(" wor")})
	status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, status, "%s", got)
	t.Logf("client got %q (err %v)", got, err)
	// Parse as an SSE client does.
	for _, evt := range strings.Split(strings.ReplaceAll(got, "\r\n", "\n"), "\n\n") {
		var data []string
		for _, line := range strings.Split(evt, "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(d, " "))
			}
		}
		if len(data) == 0 {
			continue
		}
		joined := strings.Join(data, "\n")
		assert.True(t, joined == "[DONE]" || review2ValidJSON(joined), "event data is no JSON: %q", joined)
	}
}

func review2ValidJSON(s string) bool { return json.Valid([]byte(s)) }
