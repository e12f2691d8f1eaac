package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkStreamBodyContinuation: the committed-stream guard with the
// rescue armed (events held, delivered content tracked), against the plain
// guard BenchmarkStreamBody measures.
func BenchmarkStreamBodyContinuation(b *testing.B) {
	payload := streamPayload("chat", 500)
	for _, mode := range []string{"plain", "rescue", "malformed-limit"} {
		b.Run("mode="+mode, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				up := newUpstream(io.NopCloser(bytes.NewReader(payload)))
				br := bufio.NewReaderSize(up, 4<<10)
				prefix, _, err := peekFirstEvent(br, "chat/completions")
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				sb := newStreamBody(prefix, br, up, cancel, time.Minute, time.Second, 1, "chat/completions")
				switch mode {
				case "rescue":
					x := &streamExt{malformedLimit: 1, cont: &continuer{ctx: ctx, cancel: cancel}}
					x.scan(sb.pending)
					x.commit()
					sb.ext = x
				case "malformed-limit":
					sb.ext = &streamExt{malformedLimit: 3}
				}
				if _, err := io.Copy(io.Discard, sb); err != nil {
					b.Fatal(err)
				}
				sb.Close()
			}
		})
	}
}
