package gwtransport

import (
	"encoding/json"
	"testing"
)

// BenchmarkScanBody: the scan of a 1 MB chat body (model after the
// messages, as openai-go writes it), prose and escape-heavy: the work the
// gateway adds to every large request.
func BenchmarkScanBody(b *testing.B) {
	for _, text := range []string{"prose", "escapes"} {
		body, err := json.Marshal(map[string]any{
			"messages": []map[string]string{{"role": "user", "content": benchPrompt(1<<20, text)}},
			"model":    "gateway",
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("text="+text, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var info bodyInfo
				if err := scanBody(body, &info); err != nil || string(info.model) != "gateway" {
					b.Fatal(err, string(info.model))
				}
			}
		})
	}
}
