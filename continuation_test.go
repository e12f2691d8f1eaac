package gwtransport_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// contReply has escapes, quotes, a newline, a tab and multi-byte runes, in
// tokens split after spaces.
const contReply = "Grüße, \"quoted\" \\back\\slash 日本語 tab\there line\nbreak <b>&amp; the end."

// contRig is a primary served by the caller's own base URL and two
// fallbacks, all answering contReply.
type contRig struct {
	a, b, c *gatewaytest.Server
	tr      *gwtransport.Transport
	targets []string
	opts    []gwtransport.Option
}

func newContRig(t *testing.T, modes [3]string, sopts [3][]gatewaytest.Option, opts ...gwtransport.Option) *contRig {
	t.Helper()
	mk := func(name, key string, mode string, extra []gatewaytest.Option) *gatewaytest.Server {
		o := append([]gatewaytest.Option{gatewaytest.WithReply(contReply)}, extra...)
		if mode != "" {
			o = append(o, gatewaytest.WithContinuation(mode))
		}
		return server(t, name, key, o...)
	}
	r := &contRig{
		a: mk("primary", "key-p", modes[0], sopts[0]),
		b: mk("second", "key-b", modes[1], sopts[1]),
		c: mk("third", "key-c", modes[2], sopts[2]),
	}
	r.targets = []string{"openai/gpt-4o", "fb/b-model", "fc/c-model"}
	caps := map[string]gwtransport.Continuation{}
	for i, m := range modes {
		if m != "" {
			caps[r.targets[i]] = gwtransport.Continuation(m)
		}
	}
	r.opts = append([]gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		provider("fb", r.b, "key-b"), provider("fc", r.c, "key-c"), gwtransport.WithModelContinuation(caps)}, opts...)
	tr, err := gwtransport.NewTransport(nil, r.targets, r.opts...)
	require.NoError(t, err)
	r.tr = tr
	return r
}

// rawChat sends a streamed chat body through the rig's transport with a
// plain http.Client.
func (r *contRig) rawChat(t *testing.T, ctx context.Context, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.a.URL+"/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p")
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: r.tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

const contBody = `{"model":"gateway","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}`

// sseRead reads a stream as an SSE client does: every dispatched event's
// data, the text of its chunks, the [DONE] count and the ids seen.
type sseRead struct {
	text   string
	done   int
	ids    map[string]bool
	models []string
	usage  []string // the model of each chunk with a usage
	events int
	err    error
}

func readSSE(body io.Reader) sseRead {
	out := sseRead{ids: map[string]bool{}}
	br := bufio.NewReader(body)
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			out.err = err
			if err == io.EOF {
				out.err = nil
			}
			return out
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if len(data) == 0 {
				continue
			}
			d := strings.Join(data, "\n")
			data = nil
			out.events++
			if d == "[DONE]" {
				out.done++
				continue
			}
			var ch struct {
				ID      string `json:"id"`
				Model   string `json:"model"`
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Usage json.RawMessage `json:"usage"`
			}
			if err := json.Unmarshal([]byte(d), &ch); err != nil {
				out.err = errors.New("undecodable event: " + d)
				return out
			}
			out.ids[ch.ID] = true
			out.models = append(out.models, ch.Model)
			if len(ch.Usage) > 0 && string(ch.Usage) != "null" {
				out.usage = append(out.usage, ch.Model)
			}
			for _, c := range ch.Choices {
				out.text += c.Delta.Content
			}
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
}

// lastAssistant returns the last message of a journaled chat body when it
// is an assistant message, and its flags.
func lastAssistant(t *testing.T, body []byte) (content string, prefix bool, final bool, ok bool) {
	t.Helper()
	var req struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Prefix  bool   `json:"prefix"`
		} `json:"messages"`
		ContinueFinalMessage bool  `json:"continue_final_message"`
		AddGenerationPrompt  *bool `json:"add_generation_prompt"`
	}
	require.NoError(t, json.Unmarshal(body, &req))
	m := req.Messages[len(req.Messages)-1]
	if m.Role != "assistant" {
		return "", false, false, false
	}
	return m.Content, m.Prefix, req.ContinueFinalMessage && req.AddGenerationPrompt != nil && !*req.AddGenerationPrompt, true
}

type breakCase struct {
	name  string
	fault gatewaytest.Fault
	err   error
	opts  []gwtransport.Option
	// delivered is the text the caller had before the break.
	delivered string
}

func breakCases() []breakCase {
	toks := strings.SplitAfter(contReply, " ")
	return []breakCase{
		{name: "cut", fault: gatewaytest.Fault{CutAfter: 3}, err: gwtransport.ErrStreamTruncated, delivered: strings.Join(toks[:3], "")},
		{name: "stall", fault: gatewaytest.Fault{StallAfter: 4}, err: gwtransport.ErrStreamIdle, delivered: strings.Join(toks[:4], ""),
			opts: []gwtransport.Option{gwtransport.WithStreamTimeouts(0, 40*time.Millisecond)}},
		// The malformed event stands for token 3: it never arrives.
		{name: "malformed", fault: gatewaytest.Fault{MalformedAt: 3}, err: gwtransport.ErrStreamMalformed, delivered: strings.Join(toks[:2], "")},
	}
}

// TestContinuationRawReader: each break, read by a plain SSE reader: the
// full reply exactly once, one [DONE], one id, the continuation's usage,
// both attempts in the trail and the trailers.
func TestContinuationRawReader(t *testing.T) {
	for _, bc := range breakCases() {
		for _, mode := range []string{"prefill", "prefix", "continue_final_message"} {
			t.Run(bc.name+"/"+mode, func(t *testing.T) {
				rig := newContRig(t, [3]string{"", mode, ""}, [3][]gatewaytest.Option{}, bc.opts...)
				rig.a.Enqueue(bc.fault)
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				res := rig.rawChat(t, ctx, contBody)
				got := readSSE(res.Body)
				require.NoError(t, got.err)
				assert.Equal(t, contReply, got.text)
				assert.Equal(t, 1, got.done)
				assert.Len(t, got.ids, 1, "every chunk carries the id the caller first saw")
				assert.True(t, got.ids["chatcmpl-1"])
				assert.Equal(t, []string{"b-model"}, got.usage, "the usage chunk is the continuation's")
				assert.Equal(t, "b-model", got.models[len(got.models)-1])

				// The fallback was asked to continue exactly the delivered text.
				j := rig.b.Journal()
				require.Len(t, j, 1)
				content, prefix, final, ok := lastAssistant(t, j[0].Body)
				require.True(t, ok)
				assert.Equal(t, bc.delivered, content)
				assert.Equal(t, mode == "prefix", prefix)
				assert.Equal(t, mode == "continue_final_message", final)
				assert.Equal(t, "b-model", j[0].Model)
				assert.Zero(t, rig.c.Count())

				as := trail.Attempts()
				require.Len(t, as, 3)
				assert.Equal(t, gwtransport.Succeed, as[0].Action)
				assert.Equal(t, "openai/gpt-4o", as[1].Target)
				assert.Equal(t, 1, as[1].Try)
				assert.Equal(t, 200, as[1].Status)
				assert.ErrorIs(t, as[1].Err, bc.err)
				assert.Equal(t, gwtransport.NextTarget, as[1].Action)
				assert.Equal(t, "fb/b-model", as[2].Target)
				assert.Equal(t, gwtransport.Succeed, as[2].Action)
				assert.True(t, as[2].Continued)
				assert.False(t, as[0].Continued)

				assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget), "headers were sent at the commit")
				assert.Equal(t, "fb/b-model", res.Trailer.Get(gwtransport.HeaderTarget))
				assert.Equal(t, "2", res.Trailer.Get(gwtransport.HeaderAttempts))
				assert.Equal(t, strings.ReplaceAll("openai/gpt-4o#1 200 "+as[1].Err.Error(), "\n", " "), res.Trailer.Get(gwtransport.HeaderFallbackReason))
			})
		}
	}
}

// TestContinuationOpenAIGo: through openai-go's streaming and its
// ChatCompletionAccumulator, which rejects a chunk whose id differs.
func TestContinuationOpenAIGo(t *testing.T) {
	for _, bc := range breakCases() {
		t.Run(bc.name, func(t *testing.T) {
			rig := newContRig(t, [3]string{"", "prefill", "prefill"}, [3][]gatewaytest.Option{})
			c := openaiClient(rig.a, "key-p")
			mustInit(t, c, rig.targets, append(rig.opts, bc.opts...)...)
			rig.a.Enqueue(bc.fault)
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			var raw *http.Response
			params := chatParams("gateway")
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			s := c.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&raw))
			defer s.Close()
			acc := openai.ChatCompletionAccumulator{}
			text, chunks := "", 0
			for s.Next() {
				ch := s.Current()
				chunks++
				require.True(t, acc.AddChunk(ch), "chunk %d rejected by the accumulator", chunks)
				for _, c := range ch.Choices {
					text += c.Delta.Content
				}
			}
			require.NoError(t, s.Err())
			assert.Equal(t, contReply, text)
			require.Len(t, acc.Choices, 1)
			assert.Equal(t, contReply, acc.Choices[0].Message.Content)
			assert.Equal(t, "stop", acc.Choices[0].FinishReason)
			assert.Equal(t, int64(12), acc.Usage.TotalTokens)
			assert.Equal(t, "b-model", acc.Model)
			assert.Equal(t, "chatcmpl-1", acc.ID)
			assert.Len(t, trail.Attempts(), 3)
			assert.Equal(t, "fb/b-model", raw.Trailer.Get(gwtransport.HeaderTarget))
			assert.Zero(t, rig.c.Count())
		})
	}
}

// TestContinuationGoOpenAI: through go-openai's CreateChatCompletionStream.
func TestContinuationGoOpenAI(t *testing.T) {
	for _, bc := range breakCases() {
		t.Run(bc.name, func(t *testing.T) {
			rig := newContRig(t, [3]string{"", "prefix", ""}, [3][]gatewaytest.Option{}, bc.opts...)
			rig.a.Enqueue(bc.fault)
			cfg := goopenai.DefaultConfig("key-p")
			cfg.BaseURL = rig.a.URL
			cfg.HTTPClient = &http.Client{Transport: rig.tr}
			cl := goopenai.NewClientWithConfig(cfg)
			st, err := cl.CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
				Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
				StreamOptions: &goopenai.StreamOptions{IncludeUsage: true},
			})
			require.NoError(t, err)
			defer st.Close()
			text, ids, usageModel := "", map[string]bool{}, ""
			for {
				r, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				ids[r.ID] = true
				if r.Usage != nil {
					usageModel = r.Model
				}
				for _, c := range r.Choices {
					text += c.Delta.Content
				}
			}
			assert.Equal(t, contReply, text)
			assert.Equal(t, map[string]bool{"chatcmpl-1": true}, ids)
			assert.Equal(t, "b-model", usageModel)
		})
	}
}

// TestContinuationScenario14: the break's continuation is refused (the
// capable-declared fallback rejects the prefill with a 400, the next one
// answers 503): the caller's read gets the original break, never the 400.
func TestContinuationScenario14(t *testing.T) {
	for _, bc := range breakCases() {
		t.Run(bc.name, func(t *testing.T) {
			rig := newContRig(t, [3]string{"", "prefill", "prefill"},
				[3][]gatewaytest.Option{nil, {gatewaytest.WithPrefillRejected()}, nil}, bc.opts...)
			rig.c.SetFault(&gatewaytest.Fault{Status: 503})
			rig.a.Enqueue(bc.fault)
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			res := rig.rawChat(t, ctx, contBody)
			got := readSSE(res.Body)
			require.ErrorIs(t, got.err, bc.err)
			var se *gwtransport.StreamError
			assert.False(t, errors.As(got.err, &se))
			assert.NotContains(t, got.err.Error(), "prefill")
			assert.Equal(t, bc.delivered, got.text)
			assert.Zero(t, got.done)
			assert.Equal(t, 1, rig.b.Count())
			assert.Equal(t, 1, rig.c.Count())
			as := trail.Attempts()
			require.Len(t, as, 4)
			assert.Equal(t, 400, as[2].Status)
			assert.True(t, as[2].Continued)
			assert.Equal(t, 503, as[3].Status)
			assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))

			// Through openai-go too: errors.Is reaches the original break.
			rig.b.Reset()
			rig.c.SetFault(&gatewaytest.Fault{Status: 503})
			c := openaiClient(rig.a, "key-p")
			mustInit(t, c, rig.targets, append(rig.opts, bc.opts...)...)
			rig.a.Enqueue(bc.fault)
			text, _, err := streamChat(t, context.Background(), c, "gateway")
			require.ErrorIs(t, err, bc.err)
			var apiErr *openai.Error
			assert.False(t, errors.As(err, &apiErr), "never the continuation's 400: %v", err)
			assert.Equal(t, bc.delivered, text)
		})
	}
}

// TestContinuationNotDeclared: without a declared capability no prefill
// is ever sent (a plain model would answer a fresh turn): the original
// break, and the fallbacks receive nothing.
func TestContinuationNotDeclared(t *testing.T) {
	for _, off := range []string{"undeclared", "switched off"} {
		t.Run(off, func(t *testing.T) {
			modes := [3]string{"", "", ""}
			var opts []gwtransport.Option
			if off == "switched off" {
				modes = [3]string{"prefill", "prefill", "prefill"}
				opts = append(opts, gwtransport.WithContinuation(false))
			}
			rig := newContRig(t, modes, [3][]gatewaytest.Option{}, opts...)
			rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
			got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
			require.ErrorIs(t, got.err, gwtransport.ErrStreamTruncated)
			assert.Zero(t, rig.b.Count())
			assert.Zero(t, rig.c.Count())
		})
	}
}

// TestContinuationNeverSplicesUnsafeStreams: a delivered delta with
// anything but role and content (a tool call, in any case; a duplicate or
// case-variant content; a refusal; reasoning; logprobs; a second choice),
// or a request asking n=2 or logprobs: the original break, and the
// capable fallback received NO request.
func TestContinuationNeverSplicesUnsafeStreams(t *testing.T) {
	ev := func(delta string) string {
		return `data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
	}
	ok := ev(`{"role":"assistant","content":"Hi "}`)
	cases := []struct {
		name, script, body string
	}{
		{"tool call", ok + ev(`{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{"}}]}`), ""},
		{"Tool_Calls", ok + ev(`{"Tool_Calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{"}}]}`), ""},
		{"function_call", ok + ev(`{"function_call":{"name":"f","arguments":"{"}}`), ""},
		{"duplicate content", ok + ev(`{"content":"a","content":"b"}`), ""},
		{"Content variant", ok + ev(`{"content":"a","Content":"b"}`), ""},
		{"CONTENT only", ok + ev(`{"CONTENT":"a"}`), ""},
		{"empty Content variant", ok + ev(`{"content":"a","Content":""}`), ""},
		{"Role variant", ok + ev(`{"content":"a","ROLE":null}`), ""},
		{"duplicate role", ok + ev(`{"role":"assistant","role":"user","content":"a"}`), ""},
		{"Index variant", ok + `data: {"id":"x","choices":[{"Index":0,"delta":{"content":"a"}}]}` + "\n\n", ""},
		{"refusal", ok + ev(`{"refusal":"I can't"}`), ""},
		{"reasoning", ok + ev(`{"reasoning_content":"thinking"}`), ""},
		{"audio", ok + ev(`{"audio":{"id":"a","data":"AAAA"}}`), ""},
		{"choice logprobs", ok + `data: {"id":"x","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}]}` + "\n\n", ""},
		{"second choice", ok + `data: {"id":"x","choices":[{"index":1,"delta":{"content":"a"}}]}` + "\n\n", ""},
		{"duplicate choices", ok + `data: {"id":"x","choices":[{"index":0,"delta":{"content":"a"}}],"choices":[{"index":0,"delta":{"content":"b"}}]}` + "\n\n", ""},
		{"Choices variant", ok + `data: {"id":"x","Choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n", ""},
		{"Delta variant", ok + `data: {"id":"x","choices":[{"index":0,"Delta":{"content":"a"}}]}` + "\n\n", ""},
		{"n=2", ok, `{"model":"gateway","stream":true,"n":2,"messages":[{"role":"user","content":"Hi"}]}`},
		{"logprobs", ok, `{"model":"gateway","stream":true,"logprobs":true,"messages":[{"role":"user","content":"Hi"}]}`},
		{"Logprobs variant", ok, `{"model":"gateway","stream":true,"LOGPROBS":true,"messages":[{"role":"user","content":"Hi"}]}`},
		{"top_logprobs", ok, `{"model":"gateway","stream":true,"top_logprobs":2,"messages":[{"role":"user","content":"Hi"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig := newContRig(t, [3]string{"prefill", "prefill", "prefill"}, [3][]gatewaytest.Option{})
			rig.a.Enqueue(gatewaytest.Fault{Script: tc.script})
			body := tc.body
			if body == "" {
				body = contBody
			}
			res := rig.rawChat(t, context.Background(), body)
			_, err := io.ReadAll(res.Body)
			require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			assert.Zero(t, rig.b.Count(), "the fallback received no request")
			assert.Zero(t, rig.c.Count())
			assert.Equal(t, 1, rig.a.Count(), "nor the primary a second one")
		})
	}
}

// TestContinuationSafeVariants: nulls a provider sends beside the content
// (OpenAI's "refusal": null, an empty tool_calls) do not prevent the
// rescue.
func TestContinuationSafeVariants(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
	toks := strings.SplitAfter(contReply, " ")
	q, _ := json.Marshal(toks[0])
	rig.a.Enqueue(gatewaytest.Fault{Script: `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"chatcmpl-1","choices":[{"delta":{"content":` + string(q) + `,"tool_calls":[],"reasoning_content":null}}]}` + "\n\n"})
	got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, contReply, got.text)
	assert.Equal(t, 1, rig.b.Count())
}

// TestContinuationChain: the continuation breaks too; the next capable
// target continues from the text accumulated across both parts. Targets
// after the broken one come first, in route order, the broken one last.
func TestContinuationChain(t *testing.T) {
	rig := newContRig(t, [3]string{"prefill", "prefill", "prefill"}, [3][]gatewaytest.Option{})
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.c.Enqueue(gatewaytest.Fault{CutAfter: 1})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	res := rig.rawChat(t, ctx, contBody)
	got := readSSE(res.Body)
	require.NoError(t, got.err)
	assert.Equal(t, contReply, got.text)
	assert.Equal(t, 1, got.done)
	assert.Len(t, got.ids, 1)
	toks := strings.SplitAfter(contReply, " ")
	c, _, _, _ := lastAssistant(t, rig.b.Journal()[0].Body)
	assert.Equal(t, strings.Join(toks[:2], ""), c)
	c, _, _, _ = lastAssistant(t, rig.c.Journal()[0].Body)
	assert.Equal(t, strings.Join(toks[:4], ""), c)
	ja := rig.a.Journal()
	require.Len(t, ja, 2, "the primary is tried last, after the others")
	c, _, _, _ = lastAssistant(t, ja[1].Body)
	assert.Equal(t, strings.Join(toks[:5], ""), c)
	var targets []string
	for _, a := range trail.Attempts() {
		targets = append(targets, a.Target+" "+a.Action.String())
	}
	assert.Equal(t, []string{
		"openai/gpt-4o succeed", "openai/gpt-4o next-target", "fb/b-model succeed", "fb/b-model next-target",
		"fc/c-model succeed", "fc/c-model next-target", "openai/gpt-4o succeed",
	}, targets)
	assert.Equal(t, "openai/gpt-4o", res.Trailer.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "4", res.Trailer.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, 2, trail.Attempts()[6].Try)
}

// TestContinuationBoundedByMaxAttempts: continuation attempts count
// against the request's max attempts.
func TestContinuationBoundedByMaxAttempts(t *testing.T) {
	rig := newContRig(t, [3]string{"prefill", "prefill", "prefill"}, [3][]gatewaytest.Option{}, gwtransport.WithMaxAttempts(2))
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{CutAfter: 2})
	got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
	require.ErrorIs(t, got.err, gwtransport.ErrStreamTruncated)
	assert.Equal(t, 1, rig.b.Count())
	assert.Zero(t, rig.c.Count())
	assert.Equal(t, 1, rig.a.Count())
}

// TestContinuationFeedsBreaker: a broken stream is an availability
// failure of its target, and its stats count it. Its commit is no success
// in between: consecutive breaks trip the consecutive-failures rule.
func TestContinuationFeedsBreaker(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{},
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 2, Cooldown: gwtransport.Duration(time.Hour)}))
	for i := 0; i < 2; i++ {
		rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
		got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
		require.NoError(t, got.err)
		require.Equal(t, contReply, got.text)
	}
	st := rig.tr.Stats()
	require.Equal(t, "openai/gpt-4o", st[0].Target)
	assert.Equal(t, gwtransport.BreakerOpen, st[0].Breaker)
	assert.Equal(t, int64(2), st[0].Failures)
	// The next request goes to the fallback at once.
	got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, 2, rig.a.Count())
}

// TestContinuationCloseMidContinuation: closing the body while a
// continuation attempt is in flight cancels it, with no goroutine left
// (goleak runs in TestMain).
func TestContinuationCloseMidContinuation(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{Hang: true})
	res := rig.rawChat(t, context.Background(), contBody)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(res.Body)
		done <- err
	}()
	require.Eventually(t, func() bool { return rig.b.Count() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, res.Body.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not end when the body was closed")
	}
}

// TestContinuationCallerCancel: the caller's context ends the rescue too,
// and says nothing about the target's breaker.
func TestContinuationCallerCancel(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	res := rig.rawChat(t, ctx, contBody)
	go func() {
		for rig.b.Count() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := io.ReadAll(res.Body)
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
}

// TestMalformedLimit: with a limit above 1, malformed events are dropped
// (never delivered) and counted; the limit-th breaks the stream.
func TestMalformedLimit(t *testing.T) {
	good := func(s string) string {
		q, _ := json.Marshal(s)
		return `data: {"id":"i","choices":[{"index":0,"delta":{"content":` + string(q) + `}}]}` + "\n\n"
	}
	bad := "data: {\"choices\": [ not json\n\n"
	badMulti := "event: x\ndata: {\"a\":1}\ndata: nope\n\n"
	finish := `data: {"id":"i","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"
	script := good("a") + bad + good("b") + badMulti + good("c") + finish
	for _, tc := range []struct {
		limit   int
		err     error
		text    string
		dropped int
	}{
		{1, gwtransport.ErrStreamMalformed, "a", 0},
		{2, gwtransport.ErrStreamMalformed, "ab", 1},
		{3, nil, "abc", 2},
	} {
		s := server(t, "p", "key-p")
		s.Enqueue(gatewaytest.Fault{Script: script})
		var events []gwtransport.Event
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithStreamMalformedLimit(tc.limit),
			gwtransport.WithOnEvent(func(e gwtransport.Event) {
				if e.Kind == gwtransport.EventStreamMalformed {
					events = append(events, e)
				}
			}))
		require.NoError(t, err)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/chat/completions", strings.NewReader(contBody))
		req.Header.Set("Authorization", "Bearer key-p")
		res, err := (&http.Client{Transport: tr}).Do(req)
		require.NoError(t, err)
		raw, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		if tc.err == nil {
			require.NoError(t, rerr)
		} else {
			require.ErrorIs(t, rerr, tc.err, "limit %d", tc.limit)
		}
		got := readSSE(bytes.NewReader(raw))
		require.NoError(t, got.err, "limit %d: nothing malformed delivered", tc.limit)
		assert.Equal(t, tc.text, got.text, "limit %d", tc.limit)
		assert.NotContains(t, string(raw), "not json")
		assert.NotContains(t, string(raw), "nope")
		assert.NotContains(t, string(raw), "event: x")
		assert.Equal(t, tc.dropped, trail.MalformedDropped())
		assert.Len(t, events, tc.dropped)
	}
}

// TestMalformedDroppedThenRescued: dropped malformed events are not part
// of the delivered text; the limit's event breaks the stream and the
// rescue continues from exactly what was delivered.
func TestMalformedDroppedThenRescued(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{}, gwtransport.WithStreamMalformedLimit(2))
	toks := strings.SplitAfter(contReply, " ")
	ev := func(s string) string {
		q, _ := json.Marshal(s)
		return `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":` + string(q) + `}}]}` + "\n\n"
	}
	rig.a.Enqueue(gatewaytest.Fault{Script: ev(toks[0]) + "data: garbage\n\n" + ev(toks[1]) + "data: garbage\n\n" + ev("never")})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	got := readSSE(rig.rawChat(t, ctx, contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, contReply, got.text)
	c, _, _, _ := lastAssistant(t, rig.b.Journal()[0].Body)
	assert.Equal(t, toks[0]+toks[1], c)
	assert.Equal(t, 1, trail.MalformedDropped())
	assert.ErrorIs(t, trail.Attempts()[1].Err, gwtransport.ErrStreamMalformed)
}

// TestContinuationConfig: continuation and stream_malformed_limit from a
// configuration file, validated with their paths, and round-tripped.
func TestContinuationConfig(t *testing.T) {
	doc := `
models:
  - target: openai/gpt-4o
  - target: fb/b-model
    continuation: prefix
providers:
  - name: fb
    base_url: http://127.0.0.1:1/v1
defaults:
  continuation: prefill
  stream_malformed_limit: 3
`
	cfg, err := gwtransport.LoadConfig([]byte(doc))
	require.NoError(t, err)

	require.NotNil(t, cfg.Models[1].Continuation)
	assert.Equal(t, gwtransport.ContinuePrefix, *cfg.Models[1].Continuation)
	js, err := cfg.JSON()
	require.NoError(t, err)
	back, err := gwtransport.LoadConfig(js)
	require.NoError(t, err)
	assert.Equal(t, cfg, back)

	for _, bad := range []struct{ doc, want string }{
		{"models:\n  - target: openai/gpt-4o\n    continuation: maybe\n", "models[0].continuation"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  continuation: yes-please\n", "defaults.continuation"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  stream_malformed_limit: 0\n", "defaults.stream_malformed_limit"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  continuaton: prefill\n", "continuaton"},
	} {
		cfg, err := gwtransport.LoadConfig([]byte(bad.doc))
		if err == nil {
			err = cfg.Validate()
		}
		require.Error(t, err, bad.doc)
		assert.Contains(t, err.Error(), bad.want)
	}

	// The file's capabilities take effect: the default for the primary,
	// prefix for the fallback.
	rig := newContRig(t, [3]string{"", "prefix", ""}, [3][]gatewaytest.Option{})
	cfg, err = gwtransport.LoadConfig([]byte(`
models:
  - target: openai/gpt-4o
    continuation: ""
  - target: fb/b-model
    continuation: prefix
providers:
  - name: fb
    base_url: ` + rig.b.URL + `
    api_key_env: FB_KEY
`))
	require.NoError(t, err)
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, envOf(map[string]string{"FB_KEY": "key-b"}), gwtransport.WithConfig(cfg))
	require.NoError(t, err)
	rig.tr = tr
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	got := readSSE(rig.rawChat(t, context.Background(), contBody).Body)
	require.NoError(t, got.err)
	assert.Equal(t, contReply, got.text)
}

// TestContinuationOptionErrors: bad capabilities and limits are refused,
// naming what and where.
func TestContinuationOptionErrors(t *testing.T) {
	_, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"openai/gpt-4o": "sometimes"}))
	require.ErrorContains(t, err, `continuation for "openai/gpt-4o": "sometimes" is not one of`)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"openai/gpt-4": gwtransport.ContinuePrefill}))
	require.ErrorContains(t, err, `continuation given for "openai/gpt-4", which is not one of the models`)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithStreamMalformedLimit(0))
	require.ErrorContains(t, err, "stream malformed limit must be at least 1")
}

// TestContinuationIsAnOrdinaryAttempt: the continuation request is the
// caller's, rewritten for its target as any attempt (model, model
// messages first), with the prefill last; a continuation that misses the
// first-event limit moves on to the next capable target.
func TestContinuationIsAnOrdinaryAttempt(t *testing.T) {
	rig := newContRig(t, [3]string{"", "prefill", "prefix"}, [3][]gatewaytest.Option{},
		gwtransport.WithStreamFirstEvent(50*time.Millisecond),
		gwtransport.WithModelMessages(map[string][]gwtransport.Message{"fc/c-model": {{Role: "system", Content: "be brief"}}}))
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rig.b.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	res := rig.rawChat(t, ctx, contBody)
	got := readSSE(res.Body)
	require.NoError(t, got.err)
	assert.Equal(t, contReply, got.text)
	as := trail.Attempts()
	require.Len(t, as, 4)
	assert.Equal(t, "fb/b-model", as[2].Target)
	assert.ErrorContains(t, as[2].Err, "timed out")
	assert.True(t, as[2].Continued)
	assert.Equal(t, "fc/c-model", as[3].Target)
	assert.Equal(t, gwtransport.Succeed, as[3].Action)

	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Prefix  bool   `json:"prefix"`
		} `json:"messages"`
		StreamOptions json.RawMessage `json:"stream_options"`
	}
	j := rig.c.Journal()
	require.Len(t, j, 1)
	require.NoError(t, json.Unmarshal(j[0].Body, &req))
	assert.Equal(t, "c-model", req.Model)
	assert.True(t, req.Stream)
	assert.JSONEq(t, `{"include_usage":true}`, string(req.StreamOptions))
	require.Len(t, req.Messages, 3)
	assert.Equal(t, "system", req.Messages[0].Role)
	assert.Equal(t, "be brief", req.Messages[0].Content)
	assert.Equal(t, "user", req.Messages[1].Role)
	assert.Equal(t, "assistant", req.Messages[2].Role)
	assert.True(t, req.Messages[2].Prefix)
	assert.Equal(t, strings.Join(strings.SplitAfter(contReply, " ")[:2], ""), req.Messages[2].Content)
	assert.Equal(t, gatewaytest.Mask("Bearer key-c"), j[0].Header.Get("Authorization"), "the target's own key")
	assert.Equal(t, "3", res.Trailer.Get(gwtransport.HeaderAttempts))
}

// TestContinuationBackToTheClientsOwnProvider: through an installed
// openai-go client, a continuation at the client's own provider goes
// through the client's own chain, after RoundTrip returned.
func TestContinuationBackToTheClientsOwnProvider(t *testing.T) {
	rig := newContRig(t, [3]string{"prefill", "prefill", "prefill"}, [3][]gatewaytest.Option{})
	c := openaiClient(rig.a, "key-p")
	mustInit(t, c, rig.targets, rig.opts...)
	rig.a.Enqueue(gatewaytest.Fault{CutAfter: 1})
	rig.b.Enqueue(gatewaytest.Fault{CutAfter: 1})
	rig.c.Enqueue(gatewaytest.Fault{CutAfter: 1})
	text, raw, err := streamChat(t, context.Background(), c, "gateway")
	require.NoError(t, err)
	assert.Equal(t, contReply, text)
	ja := rig.a.Journal()
	require.Len(t, ja, 2)
	assert.Equal(t, gatewaytest.Mask("Bearer key-p"), ja[1].Header.Get("Authorization"), "the client's own key, through its own chain")
	assert.Equal(t, "openai/gpt-4o", raw.Trailer.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "4", raw.Trailer.Get(gwtransport.HeaderAttempts))
}
