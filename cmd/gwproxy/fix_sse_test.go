package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSSETailEndsThePendingEvent: whatever a stream's bytes so far (split
// over writes in any way, LF, CRLF or CR line ends, a partial last line),
// the bytes sseTail.end adds before "event: error" make the error event
// one of its own: an SSE parser dispatches it last, with exactly the error
// as its data, and every complete event before it unchanged.
func TestSSETailEndsThePendingEvent(t *testing.T) {
	pieces := []string{"data: {\"a\":1}", "\n", "\r\n", "\r", ":comment", "event: x", "data: [DONE]"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var sb strings.Builder
		for n := rng.IntN(6); n > 0; n-- {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		stream := sb.String()
		var tail sseTail
		for rest := stream; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			tail.wrote([]byte(rest[:k]))
			rest = rest[k:]
		}
		end := tail.end()
		got := parseSSE(specLineEnds(stream+end) + "event: error\ndata: {\"error\":1}\n\n")
		require.NotEmpty(t, got, "%q + %q", stream, end)
		assert.Equal(t, sseEvent{"error", `{"error":1}`}, got[len(got)-1], "%q + %q", stream, end)
		assert.Equal(t, append([]sseEvent{}, parseSSE(specLineEnds(stream+"\n\n"))...), append([]sseEvent{}, got[:len(got)-1]...), "%q + %q: the events before the error", stream, end)
		// Never more than needed: no blank line is added after one.
		if strings.HasSuffix(stream, "\n\n") || strings.HasSuffix(stream, "\r\n\r\n") || stream == "" {
			assert.Empty(t, end, "%q", stream)
		}
	}
}

// specLineEnds rewrites the SSE line ends (CRLF, LF and a lone CR) as LF,
// for parseSSE, which reads LF and CRLF only.
func specLineEnds(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
