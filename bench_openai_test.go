package gwtransport

// Benchmarks through a real openai-go client: direct, pass-through and
// gateway in one Benchmark function, so that `-count` interleaves them
// and load on the (shared) machine hits all three alike. Compare with
// `benchstat -col /via`.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// benchPrompt is a prompt of about size bytes: prose (what long contexts
// mostly are: documents, code, transcripts) or escape-heavy text (a quote
// every few words: every one becomes \" in JSON).
func benchPrompt(size int, text string) string {
	unit := "The committee met on Tuesday to review the quarterly figures. Revenue rose in every region, while costs held steady; the board asked for a fuller account of the new contracts before the next meeting.\n"
	if text == "escapes" {
		unit = `She said "yes", he said "no" \ and the "model" wrote "done"; "quotes" everywhere. `
	}
	return strings.Repeat(unit, size/len(unit)+1)[:size]
}

// benchOpenAIClients returns the direct openai-go client and one with the
// gateway installed (for pass-through and gateway).
func benchOpenAIClients(b *testing.B, url string, base http.RoundTripper) (direct, gw *openai.Client) {
	mk := func() *openai.Client {
		c := openai.NewClient(option.WithBaseURL(url), option.WithAPIKey("sk-bench"),
			option.WithHTTPClient(&http.Client{Transport: base}), option.WithMaxRetries(0))
		return &c
	}
	direct, gw = mk(), mk()
	m, err := Init(gw, []string{"openai/gpt-4o"}, WithEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Uninstall)
	return direct, gw
}

func openAICall(c *openai.Client, model, prompt string, stream bool) error {
	params := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
	if !stream {
		_, err := c.Chat.Completions.New(context.Background(), params)
		return err
	}
	// The bench upstream streams when asked by Accept (openai-go does not
	// set it): the header costs all three alike.
	s := c.Chat.Completions.NewStreaming(context.Background(), params, option.WithHeader("Accept", "text/event-stream"))
	for s.Next() {
	}
	err := s.Err()
	s.Close()
	return err
}

// BenchmarkOpenAI: a real openai-go client, direct vs pass-through vs
// gateway, 1 KB, 200 KB and 1 MB prompts, prose and escape-heavy,
// streamed (20 events) and not.
func BenchmarkOpenAI(b *testing.B) {
	for _, stream := range []bool{false, true} {
		for _, size := range []int{1 << 10, 200 << 10, 1 << 20} {
			for _, text := range []string{"prose", "escapes"} {
				if size == 1<<10 && text == "escapes" {
					continue
				}
				for _, via := range []string{"direct", "passthrough", "gateway"} {
					name := fmt.Sprintf("stream=%t/body=%s/text=%s/via=%s", stream, sizeName(size), text, via)
					b.Run(name, func(b *testing.B) {
						up := newBenchUpstream(b, 20)
						base := newBaseTransport()
						defer base.CloseIdleConnections()
						direct, gw := benchOpenAIClients(b, up.srv.URL+"/v1", base)
						c := gw
						if via == "direct" {
							c = direct
						}
						prompt := benchPrompt(size, text)
						model := modelFor(via)
						if err := openAICall(c, model, prompt, stream); err != nil {
							b.Fatal(err)
						}
						b.SetBytes(int64(size))
						b.ReportAllocs()
						b.ResetTimer()
						cpu := cpuTime()
						for i := 0; i < b.N; i++ {
							if err := openAICall(c, model, prompt, stream); err != nil {
								b.Fatal(err)
							}
						}
						b.StopTimer()
						reportCPU(b, cpu)
					})
				}
			}
		}
	}
}

// BenchmarkReplayThreshold: the gateway path for bodies around the size
// from which bodies with GetBody are replayed (replay.go), with the plain
// path (one copy, rewritten in memory) and the replay path (no copy,
// spliced on the fly) forced, through a raw http.Client, in one run.
func BenchmarkReplayThreshold(b *testing.B) {
	saved := replayMin
	defer func() { replayMin = saved }()
	for _, size := range []int{2 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10} {
		for _, path := range []string{"plain", "replay"} {
			b.Run(fmt.Sprintf("body=%s/path=%s", sizeName(size), path), func(b *testing.B) {
				replayMin = 1
				if path == "plain" {
					replayMin = 1 << 62
				}
				defer func() { replayMin = saved }()
				up := newBenchUpstream(b, 0)
				base := newBaseTransport()
				defer base.CloseIdleConnections()
				c := benchClients(b, base)["gateway"]
				body := benchBody(size, "gateway", false)
				url := up.srv.URL + "/v1/chat/completions"
				if _, err := post(c, url, body, false); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for i := 0; i < b.N; i++ {
					if _, err := post(c, url, body, false); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				reportCPU(b, cpu)
			})
		}
	}
}

// reportCPU adds the process CPU time per operation since start (see
// cpuTime).
func reportCPU(b *testing.B, start int64) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}
