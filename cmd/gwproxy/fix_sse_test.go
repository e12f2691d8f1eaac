package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSSEFramerHoldsThePendingEvent: whatever a stream's bytes (split
// over reads in any way, LF, CRLF or CR line ends, a partial last line),
// sseFramer forwards exactly the stream's complete events, in order and
// unchanged, and holds back the bytes of an event not yet ended by its
// blank line: when the stream breaks there, the "event: error" written
// next is dispatched last as an event of its own, with exactly the error
// as its data, and the pending event is never dispatched (a cut
// "data: [DONE]" line never becomes a [DONE] event).
func TestSSEFramerHoldsThePendingEvent(t *testing.T) {
	pieces := []string{"data: {\"a\":1}", "\n", "\r\n", "\r", ":comment", "event: x", "data: [DONE]"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var sb strings.Builder
		for n := rng.IntN(8); n > 0; n-- {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		stream := sb.String()
		var fr sseFramer
		var fwd strings.Builder
		for rest := stream; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			fwd.Write(fr.add([]byte(rest[:k])))
			rest = rest[k:]
		}
		forwarded := fwd.String()
		require.Equal(t, stream, forwarded+string(fr.rest()), "%q: the bytes forwarded and held are the stream's", stream)
		want := sseDispatched(stream)
		assert.Equal(t, want, sseDispatched(forwarded), "%q (forwarded %q): the complete events", stream, forwarded)
		got := sseDispatched(forwarded + "event: error\ndata: {\"error\":1}\n\n")
		require.NotEmpty(t, got, "%q", forwarded)
		assert.Equal(t, sseEvent{"error", `{"error":1}`}, got[len(got)-1], "%q: the error event", forwarded)
		assert.Equal(t, want, got[:len(got)-1], "%q: the events before the error", forwarded)
		// Nothing held that no event needs: what is held is one pending
		// event's bytes (no blank line in it, after the optional LF of
		// the CRLF that ended the last event).
		held := strings.TrimPrefix(string(fr.rest()), "\n")
		assert.NotContains(t, specLineEnds("\n"+held), "\n\n", "%q: held %q holds a complete event", stream, fr.rest())
	}
}

// sseDispatched parses s per the SSE specification (line ends CRLF, LF
// or a lone CR; an event is dispatched at a blank line; an unterminated
// last line and an undispatched last event count for nothing).
func sseDispatched(s string) []sseEvent {
	lines := strings.Split(specLineEnds(s), "\n")
	lines = lines[:len(lines)-1] // the unterminated rest
	out := []sseEvent{}
	var typ string
	var data []string
	have := false
	for _, line := range lines {
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
			data, have = append(data, value), true
		}
	}
	return out
}

// specLineEnds rewrites the SSE line ends (CRLF, LF and a lone CR) as LF,
// for parseSSE, which reads LF and CRLF only.
func specLineEnds(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
