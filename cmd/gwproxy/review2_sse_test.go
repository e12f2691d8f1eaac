package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReview2CutInsideDoneLine: the provider sends a content chunk (no
// finish_reason) and then "data: [DONE]" without its line end, and the
// connection drops. The engine sees a stream that never finished; gwproxy
// "ends the pending event first" with a line end and a blank line, which
// makes the cut "data: [DONE]" a complete [DONE] event: every OpenAI SDK
// stops reading there and reports a clean end, never reading the error
// event after it.
func TestReview2CutInsideDoneLine(t *testing.T) {
	a, _, p := reviewStreamCfg(t)
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	a.Enqueue(gatewaytest.Fault{Script: chunk + "data: [DONE]"})
	status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, status, "%s", got)
	t.Logf("client got %q (err %v)", got, err)
	assert.NotContains(t, got, "data: [DONE]\n\n", "the client got a complete [DONE] event for an unfinished stream")
	assert.NotContains(t, got, "data: [DONE]\n", "the client got a [DONE] line for an unfinished stream")
}

// TestReview2DoneLineCutBeforeBlankLine: the provider's "data: [DONE]"
// line arrives, then the connection drops before the blank line that
// would dispatch the event. The engine judges the stream broken ("stream
// ended before it was complete": a [DONE] was never delivered), and
// passes the line through; gwproxy's sseTail then ends the pending event
// with a blank line, delivering a complete [DONE] event before its error
// event: the client reads a complete stream.
func TestReview2DoneLineCutBeforeBlankLine(t *testing.T) {
	a, _, p := reviewStreamCfg(t)
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	for _, tail := range []string{"data: [DONE]\n", "data: [DONE]\r\n", "data: [DONE]\r", "data: [DONE]\ndata: x\n"} {
		a.Reset()
		a.Enqueue(gatewaytest.Fault{Script: chunk + tail})
		status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
		require.Equal(t, 200, status, "%s", got)
		t.Logf("%q: client got %q (err %v)", tail, got, err)
		assert.Error(t, err)
		for _, ev := range review2SSEData(got) {
			assert.NotEqual(t, "[DONE]", ev, "tail %q: the client got a complete [DONE] event for a stream the engine judged broken: %q", tail, got)
		}
	}
}

// review2SSEData parses a stream as an SSE client does (line ends CRLF, LF
// or CR; an event is dispatched at a blank line) and returns each
// dispatched event's data.
func review2SSEData(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var out, data []string
	have := false
	for _, line := range strings.Split(s, "\n") {
		if line == "" {
			if have {
				out = append(out, strings.Join(data, "\n"))
			}
			data, have = nil, false
			continue
		}
		if d, ok := strings.CutPrefix(line, "data:"); ok {
			data, have = append(data, strings.TrimPrefix(d, " ")), true
		}
	}
	return out
}
