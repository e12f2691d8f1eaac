package gwtransport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// rvBig is a large chat body (> 8 KiB), tag-unique, model last.
func rvBig(tag, model string, size int) string {
	head := `{"messages":[{"role":"user","content":"` + tag + ` `
	tail := `"}],"model":"` + model + `"}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	return head + strings.Repeat("x", pad) + tail
}

// Many concurrent requests, distinct large bodies, every body kind, a
// fallback (a fails with 503, retried once) and model messages at b: each
// provider receives exactly its own request's bytes.
func TestRvPerfConcurrentDistinctBodies(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a", "bprov/model-b"},
		noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(1),
		gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithModelMessages(map[string][]gwtransport.Message{"bprov/model-b": {{Role: "system", Content: "S"}}}))
	require.NoError(t, err)
	client := &http.Client{Transport: tr}
	kinds := []string{"bytes.Reader", "strings.Reader", "reader only", "no GetBody", "unknown length"}
	const N = 60
	wantA, wantB := map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, N)
	for i := 0; i < N; i++ {
		size := 8<<10 - 2 + (i*7919)%(300<<10)
		body := rvBig(fmt.Sprintf("req-%03d-%s", i, strings.Repeat(string(rune('a'+i%26)), 5)), "gateway", size)
		wantA[strings.Replace(body, `"model":"gateway"`, `"model":"model-a"`, 1)] = true
		wantB[strings.Replace(strings.Replace(body, `"model":"gateway"`, `"model":"model-b"`, 1),
			`{"messages":[`, `{"messages":[{"role":"system","content":"S"},`, 1)] = true
		kind := kinds[i%len(kinds)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := bodyKinds[kind](a.URL+"/chat/completions", body)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				errs <- fmt.Errorf("%s: status %d", kind, res.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %T %v", err, err)
	}
	ja, jb := a.Journal(), b.Journal()
	assert.Equal(t, N, len(jb), "attempts at b")
	seenB := map[string]int{}
	for _, r := range ja {
		if !wantA[string(r.Body)] {
			t.Errorf("a received a body no caller sent (len %d): %q...", len(r.Body), r.Body[:40])
		}
	}
	for _, r := range jb {
		if !wantB[string(r.Body)] {
			t.Errorf("b received a body no caller sent (len %d): %q...", len(r.Body), r.Body[:40])
		}
		seenB[string(r.Body)]++
	}
	assert.Equal(t, N, len(seenB))
}

// Bodies right at the replay threshold, every kind, with fallback and model
// messages: exact bytes.
func TestRvPerfThresholdSizes(t *testing.T) {
	for _, size := range []int{8<<10 - 1, 8 << 10, 8<<10 + 1} {
		for kind, mk := range bodyKinds {
			t.Run(fmt.Sprint(size, kind), func(t *testing.T) {
				a := server(t, "a", "key-a")
				b := server(t, "b", "key-b")
				a.SetFault(&gatewaytest.Fault{Status: 503})
				tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a", "bprov/model-b"},
					noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0),
					gwtransport.WithModelMessages(map[string][]gwtransport.Message{"bprov/model-b": {{Role: "system", Content: "S"}}}))
				require.NoError(t, err)
				body := rvBig("T", "gateway", size)
				require.Len(t, body, size)
				req := mk(a.URL+"/chat/completions", body)
				req.Header.Set("Content-Type", "application/json")
				res, err := (&http.Client{Transport: tr}).Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				require.Len(t, b.Journal(), 1)
				want := strings.Replace(strings.Replace(body, `"model":"gateway"`, `"model":"model-b"`, 1),
					`{"messages":[`, `{"messages":[{"role":"system","content":"S"},`, 1)
				assert.Equal(t, want, string(b.Journal()[0].Body))
			})
		}
	}
}

// openai-go and go-openai with a 1 MB prompt, streamed, fallback to a
// target with model messages: b receives a's bytes with the model swapped
// and the message inserted.
func TestRvPerfHugePromptRealClients(t *testing.T) {
	prompt := strings.Repeat("word \"q\" é ", 90000)
	for _, client := range []string{"openai-go", "go-openai"} {
		t.Run(client, func(t *testing.T) {
			a := server(t, "a", "key-a")
			b := server(t, "b", "key-b")
			a.SetFault(&gatewaytest.Fault{Status: 503})
			mm := gwtransport.WithModelMessages(map[string][]gwtransport.Message{"bprov/model-b": {{Role: "system", Content: "Be brief."}}})
			if client == "openai-go" {
				c := openaiClient(a, "key-a")
				mustInit(t, c, []string{"openai/gpt-4o", "bprov/model-b"}, noEnv(), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0), mm)
				s := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{Model: "gateway",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}})
				for s.Next() {
				}
				require.NoError(t, s.Err())
				s.Close()
			} else {
				tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/gpt-4o", "bprov/model-b"},
					noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0), mm)
				require.NoError(t, err)
				cfg := goopenai.DefaultConfig("key-a")
				cfg.BaseURL = a.URL
				cfg.HTTPClient = &http.Client{Transport: tr}
				st, err := goopenai.NewClientWithConfig(cfg).CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
					Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: prompt}}})
				require.NoError(t, err)
				for {
					if _, err := st.Recv(); err != nil {
						require.ErrorIs(t, err, io.EOF)
						break
					}
				}
				st.Close()
			}
			require.Len(t, a.Journal(), 1)
			require.Len(t, b.Journal(), 1)
			ab := string(a.Journal()[0].Body)
			require.Greater(t, len(ab), 1<<20)
			want := strings.Replace(strings.Replace(ab, `"model":"gpt-4o"`, `"model":"model-b"`, 1),
				`"messages":[`, `"messages":[{"role":"system","content":"Be brief."},`, 1)
			assert.True(t, want == string(b.Journal()[0].Body), "b's body is not a's with model swapped and message inserted")
		})
	}
}
