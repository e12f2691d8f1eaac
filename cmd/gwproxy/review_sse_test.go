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

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct{ typ, data string }

// parseSSE parses a stream per the SSE specification (WHATWG): lines, a
// blank line dispatches; data lines are joined with "\n". A trailing event
// without its blank line is not dispatched.
func parseSSE(s string) []sseEvent {
	var out []sseEvent
	var typ string
	var data []string
	have := false
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if line == "" {
			if have {
				out = append(out, sseEvent{typ, strings.Join(data, "\n")})
			}
			typ, data, have = "", nil, false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data = append(data, value)
			have = true
		}
	}
	return out
}

// TestReviewErrorEventAfterPartialEvent: a provider cuts its stream after
// a complete data line whose blank line (the event's end) never came. The
// proxy writes "event: error\ndata: ..." straight after it: an SSE client
// folds both into one event, of type error, whose data is the chunk and the
// error joined by "\n" (no JSON decoder reads it). The stream's last
// dispatched event must be an error event whose data is the OpenAI-shaped
// error.
func TestReviewErrorEventAfterPartialEvent(t *testing.T) {
	a, b, p := reviewStreamCfg(t)
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`
	a.Enqueue(gatewaytest.Fault{Script: chunk + "\n\n" + chunk + "\n"})
	status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, status, "%s", got)
	require.Error(t, err, "the broken stream ended cleanly: %q", got)
	t.Logf("%q", got)
	evs := parseSSE(got)
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	assert.Equal(t, "error", last.typ)
	var e errorBody
	assert.NoError(t, json.Unmarshal([]byte(last.data), &e), "the error event's data is not the error object: %q", last.data)
	assert.Equal(t, 0, b.Count())
}
