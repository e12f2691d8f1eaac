package gwtransport_test

// Time to first token through the real openai-go client: a role-only first
// chunk (OpenAI sends it at once, the first token later) does not commit,
// so the first-event limit still fails over; a content chunk does.

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

func TestTimeToFirstTokenRoleOnlyChunk(t *testing.T) {
	const (
		firstEvent = 100 * time.Millisecond
		idle       = time.Second
	)
	chunk := func(choice string) string {
		return `data: {"id":"chatcmpl-A","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[` + choice + `],"usage":null}` + "\n\n"
	}
	// Each form, and the role openai-go reads from it.
	roleForms := map[string][2]string{
		"openai":        {chunk(`{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`), "assistant"},
		"no content":    {chunk(`{"index":0,"delta":{"role":"assistant"},"finish_reason":null}`), "assistant"},
		"content null":  {chunk(`{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[]}}`), "assistant"},
		"Role variant":  {chunk(`{"index":0,"delta":{"Role":"assistant","content":""}}`), ""},
		"azure filters": {chunk(`{"content_filter_results":{},"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}`), "assistant"},
	}
	token := chunk(`{"index":0,"delta":{"content":"Hello"},"finish_reason":null}`)
	finish := chunk(`{"index":0,"delta":{},"finish_reason":"stop"}`) + "data: [DONE]\n\n"
	type want struct {
		text, target   string
		role, finished string
		err            error
		primary, fb    int
		maxTook        time.Duration
		minTook        time.Duration
	}
	type tc struct {
		name   string
		pieces []string
		stall  bool // after the pieces, hold the stream open
		cut    bool
		want   want
	}
	var cases []tc
	for name, form := range roleForms {
		role := form[0]
		cases = append(cases,
			tc{"role only then silence/" + name, []string{role}, true, false,
				want{text: "from B", role: "assistant", finished: "stop", target: "fb/b-model", primary: 1, fb: 1, minTook: firstEvent, maxTook: idle / 2}},
			// Cut before the commit: retried at the target (three tries),
			// then failed over.
			tc{"role only then cut/" + name, []string{role, role}, false, true,
				want{text: "from B", role: "assistant", finished: "stop", target: "fb/b-model", primary: 3, fb: 1, maxTook: idle / 2}},
			tc{"role only then token in time/" + name, []string{role, token, finish}, false, false,
				want{text: "Hello", role: form[1], finished: "stop", target: "openai/gpt-4o", primary: 1, maxTook: idle / 2}},
		)
	}
	cases = append(cases,
		tc{"token then silence: committed, idle limit", []string{token}, true, false,
			want{text: "Hello", target: "openai/gpt-4o", err: gwtransport.ErrStreamIdle, primary: 1, minTook: idle}},
		tc{"role only then finish", []string{roleForms["openai"][0], finish}, false, false,
			want{text: "", role: "assistant", finished: "stop", target: "openai/gpt-4o", primary: 1, maxTook: idle / 2}},
		tc{"role then keep-alives then silence", []string{roleForms["openai"][0], ": keep-alive\n\n", `data: {"type":"ping"}` + "\n\n"}, true, false,
			want{text: "from B", role: "assistant", finished: "stop", target: "fb/b-model", primary: 1, fb: 1, minTook: firstEvent, maxTook: idle / 2}},
		tc{"role then token late: fails over", []string{roleForms["openai"][0], "PAUSE", token, finish}, false, false,
			want{text: "from B", role: "assistant", finished: "stop", target: "fb/b-model", primary: 1, fb: 1, minTook: firstEvent, maxTook: idle / 2}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
				for i, p := range c.pieces {
					if p == "PAUSE" {
						writeEvents(w, c.pieces[:i], false)
						// Well past the first-event limit, well within the
						// idle limit.
						select {
						case <-time.After(3 * firstEvent):
						case <-r.Context().Done():
							return
						}
						for _, p := range c.pieces[i+1:] {
							_, _ = io.WriteString(w, p)
							w.(http.Flusher).Flush()
						}
						return
					}
				}
				writeEvents(w, c.pieces, c.cut)
				if c.stall {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
			})
			b := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, "from B") })
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"},
				noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
				gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}),
				gwtransport.WithContinuation(false),
				gwtransport.WithStreamTimeouts(firstEvent, idle))
			require.NoError(t, err)
			defer tr.CloseIdleConnections()
			client := openaiVia(a, tr)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var res *http.Response
			start := time.Now()
			st := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
			}, option.WithResponseInto(&res))
			// Not openai-go's ChatCompletionAccumulator: it panics on
			// "tool_calls": [] (a delta's first tool call is read blind).
			text, role, finished := "", "", ""
			for st.Next() {
				for _, ch := range st.Current().Choices {
					text += ch.Delta.Content
					role += ch.Delta.Role
					finished += ch.FinishReason
				}
			}
			st.Close()
			took := time.Since(start)
			if c.want.err != nil {
				assert.ErrorIs(t, st.Err(), c.want.err)
			} else {
				assert.NoError(t, st.Err())
			}
			require.NotNil(t, res)
			assert.Equal(t, c.want.target, res.Header.Get("X-Gwtransport-Target"))
			assert.Equal(t, c.want.text, text)
			assert.Equal(t, c.want.role, role, "the role chunk is replayed once")
			assert.Len(t, a.requests(), c.want.primary, "primary requests")
			assert.Len(t, b.requests(), c.want.fb, "fallback requests")
			assert.GreaterOrEqual(t, took, c.want.minTook)
			if c.want.maxTook > 0 {
				assert.Less(t, took, c.want.maxTook)
			}
			assert.Equal(t, c.want.finished, finished)
		})
	}
}
