package gwtransport_test

// The crash-test suite of LLM gateways (16 fault scenarios), end to end:
// every scenario through the real openai-go and go-openai clients, streamed
// and not, with the README's recommended configuration. Its durations are
// scaled down (the first-event, idle and attempt limits to tens of
// milliseconds) and its waits run on an injected clock: no test waits for
// real seconds. A rescued scenario is asserted by the caller's whole text,
// the model that answered, and the exact attempts of the trail.

import (
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

// crashReply is the answer both providers give, 60 tokens (words): the same model deployed
// twice, so that a continuation at the fallback completes the primary's
// text.
const crashReply = "Streams break in the middle of a sentence, and a gateway that continues them must neither repeat nor lose a word of what the caller already read: it holds each event until its end, counts only what was delivered, asks a capable fallback to go on from there, and splices the rest into the same stream so that the caller reads one answer, whole, with one final sentinel at its end."

const (
	crashPrimary  = "openai/gpt-4o"
	crashFallback = "mistral/mistral-large-latest"
)

// recommended is the README's recommended configuration ("Recommended
// configuration"): a primary and a fallback that accepts a continuation as
// a prefix.
func recommended() []gwtransport.Option {
	return []gwtransport.Option{
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{
			crashFallback: gwtransport.ContinuePrefix,
		}),
	}
}

// scaled shrinks the recommended configuration's durations for the tests
// (real timers measure them), and makes the fallback the local server.
func scaled(fallback *gatewaytest.Server, clock *fakeClock) []gwtransport.Option {
	return []gwtransport.Option{
		noEnv(), seeded(7), gwtransport.WithClock(clock),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: fallback.URL, APIKey: "key-f"}),
		gwtransport.WithTimeout(time.Second), // ten times the idle limits: a loaded machine must not turn an idle into a timeout
		gwtransport.WithStreamFirstEvent(100 * time.Millisecond),
		gwtransport.WithStreamIdle(100 * time.Millisecond),
		gwtransport.WithBodyIdle(100 * time.Millisecond),
		gwtransport.WithStreamFinishGrace(50 * time.Millisecond),
	}
}

// crashResult is what a caller saw.
type crashResult struct {
	text     string
	model    string
	usage    int64
	err      error
	status   int // the API error's status, if any
	code     string
	message  string
	attempts []gwtransport.Attempt
}

// crashClient asks one chat question through a real SDK client.
type crashClient struct {
	name string
	ask  func(t *testing.T, ctx context.Context, stream bool) crashResult
}

// crashRig is a primary served by the client's own base URL and a
// continuation-capable fallback.
type crashRig struct {
	primary, fallback *gatewaytest.Server
	clock             *fakeClock
}

func newCrashRig(t *testing.T, fallbackOpts ...gatewaytest.Option) *crashRig {
	t.Helper()
	fo := append([]gatewaytest.Option{gatewaytest.WithReply(crashReply), gatewaytest.WithContinuation("prefix"), gatewaytest.WithStreamChunks(60)}, fallbackOpts...)
	return &crashRig{
		primary:  server(t, "primary", "key-p", gatewaytest.WithReply(crashReply), gatewaytest.WithStreamChunks(60)),
		fallback: server(t, "fallback", "key-f", fo...),
		clock:    newFakeClock(),
	}
}

func (r *crashRig) options(extra []gwtransport.Option) []gwtransport.Option {
	return append(append(scaled(r.fallback, r.clock), recommended()...), extra...)
}

// openaiGo installs the gateway into a real openai-go client with Init.
func (r *crashRig) openaiGo(t *testing.T, extra ...gwtransport.Option) crashClient {
	t.Helper()
	c := openaiClient(r.primary, "key-p")
	mustInit(t, c, []string{crashPrimary, crashFallback}, r.options(extra)...)
	return crashClient{name: "openai-go", ask: func(t *testing.T, ctx context.Context, stream bool) (out crashResult) {
		ctx, trail := gwtransport.ContextWithTrail(ctx)
		defer func() {
			out.attempts = trail.Attempts()
			var apiErr *openai.Error
			if errors.As(out.err, &apiErr) {
				out.status, out.code, out.message = apiErr.StatusCode, apiErr.Code, apiErr.Message
			}
		}()
		params := chatParams("gateway")
		if !stream {
			res, err := c.Chat.Completions.New(ctx, params)
			if err != nil {
				return crashResult{err: err}
			}
			return crashResult{text: res.Choices[0].Message.Content, model: res.Model, usage: res.Usage.TotalTokens}
		}
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		s := c.Chat.Completions.NewStreaming(ctx, params, option.WithMaxRetries(0))
		defer s.Close()
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			ch := s.Current()
			if !acc.AddChunk(ch) {
				return crashResult{text: out.text, err: errors.New("the accumulator refused a chunk: " + ch.RawJSON())}
			}
			for _, c := range ch.Choices {
				out.text += c.Delta.Content
			}
			out.model = ch.Model
		}
		if err := s.Err(); err != nil {
			return crashResult{text: out.text, err: err}
		}
		if len(acc.Choices) > 0 && acc.Choices[0].Message.Content != out.text {
			return crashResult{text: out.text, err: errors.New("the accumulator's text differs: " + acc.Choices[0].Message.Content)}
		}
		out.usage = acc.Usage.TotalTokens
		return out
	}}
}

// goOpenAI puts the gateway under a real go-openai client with NewTransport.
func (r *crashRig) goOpenAI(t *testing.T, extra ...gwtransport.Option) crashClient {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, []string{crashPrimary, crashFallback}, r.options(extra)...)
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("key-p")
	cfg.BaseURL = r.primary.URL
	cfg.HTTPClient = &http.Client{Transport: tr}
	c := goopenai.NewClientWithConfig(cfg)
	return crashClient{name: "go-openai", ask: func(t *testing.T, ctx context.Context, stream bool) (out crashResult) {
		ctx, trail := gwtransport.ContextWithTrail(ctx)
		defer func() {
			out.attempts = trail.Attempts()
			var apiErr *goopenai.APIError
			if errors.As(out.err, &apiErr) {
				out.status, out.message = apiErr.HTTPStatusCode, apiErr.Message
				if s, ok := apiErr.Code.(string); ok {
					out.code = s
				}
			}
		}()
		req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}}
		if !stream {
			res, err := c.CreateChatCompletion(ctx, req)
			if err != nil {
				return crashResult{err: err}
			}
			return crashResult{text: res.Choices[0].Message.Content, model: res.Model, usage: int64(res.Usage.TotalTokens)}
		}
		req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
		s, err := c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			return crashResult{err: err}
		}
		defer s.Close()
		for {
			ch, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				out.err = err
				return out
			}
			for _, c := range ch.Choices {
				out.text += c.Delta.Content
			}
			out.model = ch.Model
			if ch.Usage != nil {
				out.usage = int64(ch.Usage.TotalTokens)
			}
		}
	}}
}

// crashScenario is one scenario: the faults it sets, and what the caller
// must see.
type crashScenario struct {
	name string
	// streamOnly / plainOnly restrict the scenario to one mode.
	streamOnly, plainOnly bool
	setup                 func(r *crashRig, stream bool)
	check                 func(t *testing.T, r *crashRig, res crashResult, stream bool)
}

// rescued asserts a rescued answer: the whole reply, from the named model,
// with the attempts given as "target status-or-error" in order.
func rescued(t *testing.T, res crashResult, model string, targets ...string) {
	t.Helper()
	require.NoError(t, res.err)
	assert.Equal(t, crashReply, res.text)
	assert.Equal(t, model, res.model)
	assert.NotZero(t, res.usage, "the caller sees the usage")
	got := make([]string, len(res.attempts))
	for i, a := range res.attempts {
		got[i] = a.Target
	}
	assert.Equal(t, targets, got, "the attempts' targets")
}

func crashScenarios() []crashScenario {
	return []crashScenario{
		{name: "01 429 with Retry-After 2", setup: func(r *crashRig, _ bool) {
			r.primary.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "2"}})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "gpt-4o", crashPrimary, crashPrimary)
			assert.Equal(t, []time.Duration{2 * time.Second}, r.clock.Sleeps(), "waited the Retry-After, on the clock")
		}},
		{name: "02 429 forever without a header", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 429})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashPrimary, crashFallback)
			sleeps := r.clock.Sleeps()
			require.Len(t, sleeps, 2)
			assert.Less(t, sleeps[0], sleeps[1], "exponential backoff")
		}},
		{name: "03 500 once", setup: func(r *crashRig, _ bool) {
			r.primary.Enqueue(gatewaytest.Fault{Status: 500})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "gpt-4o", crashPrimary, crashPrimary)
		}},
		{name: "04 503 forever, a healthy fallback", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 503})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashPrimary, crashFallback)
		}},
		{name: "04 503 forever, nowhere to go", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 503, Message: "primary overloaded"})
			r.fallback.SetFault(&gatewaytest.Fault{Status: 503, Message: "fallback overloaded"})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			require.Error(t, res.err)
			assert.Equal(t, 503, res.status)
			assert.Equal(t, "fallback overloaded", res.message)
			assert.Len(t, res.attempts, 6, "bounded: 3 attempts at each target, no SDK retries on top")
			assert.Equal(t, 3, r.primary.Count())
			assert.Equal(t, 3, r.fallback.Count())
		}},
		{name: "05 reset before headers", setup: func(r *crashRig, _ bool) {
			r.primary.Enqueue(gatewaytest.Fault{Reset: true})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "gpt-4o", crashPrimary, crashPrimary)
		}},
		{name: "06 accepts and never answers", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Hang: true})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashFallback)
			assert.Equal(t, 1, r.primary.Count(), "no second wait on a silent target")
		}},
		{name: "07 first token after 20 s", streamOnly: true, setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{FirstEventDelay: 20 * time.Second})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashFallback)
		}},
		{name: "07 body after 20 s", plainOnly: true, setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{BodyStallAfter: 1})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashPrimary, crashFallback)
		}},
		{name: "08 dies after 40 of 60 tokens", setup: func(r *crashRig, stream bool) {
			if stream {
				r.primary.SetFault(&gatewaytest.Fault{CutAfter: 40})
			} else {
				r.primary.SetFault(&gatewaytest.Fault{BodyCutAfter: 40})
			}
		}, check: rescuedMidway},
		{name: "09 stalls for 30 s", setup: func(r *crashRig, stream bool) {
			if stream {
				r.primary.SetFault(&gatewaytest.Fault{StallAfter: 30})
			} else {
				r.primary.SetFault(&gatewaytest.Fault{BodyStallAfter: 30})
			}
		}, check: rescuedMidway},
		{name: "10 one malformed event", setup: func(r *crashRig, stream bool) {
			if stream {
				r.primary.SetFault(&gatewaytest.Fault{MalformedAt: 30})
			} else {
				r.primary.SetFault(&gatewaytest.Fault{Status: 200, Body: `{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"Streams br`})
			}
		}, check: rescuedMidway},
		{name: "11 complete without [DONE]", setup: func(r *crashRig, stream bool) {
			r.primary.SetFault(&gatewaytest.Fault{NoDone: true, HoldOpen: true})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "gpt-4o", crashPrimary)
		}},
		{name: "12 context_length_exceeded", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 400, Code: "context_length_exceeded", Message: "This model's maximum context length is 8192 tokens."})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashFallback)
			assert.Empty(t, r.clock.Sleeps())
		}},
		{name: "13 content_policy_violation", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 400, Code: "content_policy_violation", Message: "Your request was rejected by the safety system."})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			require.Error(t, res.err)
			assert.Equal(t, 400, res.status)
			assert.Equal(t, "content_policy_violation", res.code)
			assert.Equal(t, "Your request was rejected by the safety system.", res.message)
			assert.Len(t, res.attempts, 1)
			assert.Zero(t, r.fallback.Count())
		}},
		{name: "16 primary 503, the fallback's model and usage", setup: func(r *crashRig, _ bool) {
			r.primary.SetFault(&gatewaytest.Fault{Status: 503})
		}, check: func(t *testing.T, r *crashRig, res crashResult, _ bool) {
			rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashPrimary, crashFallback)
		}},
	}
}

// rescuedMidway checks an answer broken in the middle: a stream continued
// at the fallback; a body retried at the primary, then failed over.
func rescuedMidway(t *testing.T, r *crashRig, res crashResult, stream bool) {
	t.Helper()
	if stream {
		assertContinued(t, r, res)
		return
	}
	rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashPrimary, crashFallback)
}

// assertContinued checks a stream rescued after its commit: the whole
// reply, the fallback's model and usage, the trail (the primary's commit,
// its break, the fallback's continuation), and the fallback asked to go on
// from exactly the text delivered, as a prefix message.
func assertContinued(t *testing.T, r *crashRig, res crashResult) {
	t.Helper()
	rescued(t, res, "mistral-large-latest", crashPrimary, crashPrimary, crashFallback)
	require.Len(t, res.attempts, 3)
	assert.Equal(t, gwtransport.Succeed, res.attempts[0].Action, "the commit")
	assert.Equal(t, gwtransport.NextTarget, res.attempts[1].Action, "the break")
	assert.Error(t, res.attempts[1].Err)
	assert.True(t, res.attempts[2].Continued, "the continuation")
	j := r.fallback.Journal()
	require.Len(t, j, 1)
	var body struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Prefix  bool   `json:"prefix"`
		} `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(j[0].Body, &body))
	last := body.Messages[len(body.Messages)-1]
	assert.Equal(t, "assistant", last.Role)
	assert.True(t, last.Prefix)
	assert.NotEmpty(t, last.Content)
	assert.True(t, strings.HasPrefix(crashReply, last.Content), "the prefill is the delivered beginning of the reply: %q", last.Content)
}

// TestCrashSuite runs every scenario but 14 and 15 (below) through both
// SDKs, streamed and not: each is rescued, or ends in the error the
// scenario asks for.
func TestCrashSuite(t *testing.T) {
	for _, sc := range crashScenarios() {
		for _, stream := range []bool{false, true} {
			if (sc.streamOnly && !stream) || (sc.plainOnly && stream) {
				continue
			}
			for _, sdk := range []string{"openai-go", "go-openai"} {
				name := sc.name + "/" + sdk + "/plain"
				if stream {
					name = sc.name + "/" + sdk + "/stream"
				}
				t.Run(name, func(t *testing.T) {
					r := newCrashRig(t)
					c := r.client(t, sdk)
					sc.setup(r, stream)
					res := c.ask(t, context.Background(), stream)
					sc.check(t, r, res, stream)
				})
			}
		}
	}
}

func (r *crashRig) client(t *testing.T, sdk string, extra ...gwtransport.Option) crashClient {
	if sdk == "openai-go" {
		return r.openaiGo(t, extra...)
	}
	return r.goOpenAI(t, extra...)
}

// Scenario 14: a fallback that rejects an assistant prefill never hides the
// real failure. Streamed: the primary's stream is cut, the fallback refuses
// the continuation with a 400, and the caller's read ends in the original
// truncation. Not streamed: the primary's 503 is what the caller sees.
func TestCrashSuiteScenario14(t *testing.T) {
	for _, sdk := range []string{"openai-go", "go-openai"} {
		t.Run(sdk+"/stream", func(t *testing.T) {
			r := newCrashRig(t, gatewaytest.WithPrefillRejected())
			c := r.client(t, sdk)
			r.primary.SetFault(&gatewaytest.Fault{CutAfter: 40})
			res := c.ask(t, context.Background(), true)
			require.Error(t, res.err)
			assert.ErrorIs(t, res.err, gwtransport.ErrStreamTruncated, "the original break, never the prefill's 400: %v", res.err)
			assert.NotContains(t, res.err.Error(), "400")
			assert.Equal(t, crashReply[:len(res.text)], res.text, "what was delivered is the reply's beginning")
			assert.NotEmpty(t, res.text)
			require.Len(t, r.fallback.Journal(), 1, "the continuation was tried")
		})
		t.Run(sdk+"/plain", func(t *testing.T) {
			r := newCrashRig(t, gatewaytest.WithPrefillRejected())
			c := r.client(t, sdk, gwtransport.WithMaxRetries(0))
			r.primary.SetFault(&gatewaytest.Fault{Status: 503, Message: "primary overloaded"})
			r.fallback.SetFault(&gatewaytest.Fault{Status: 400, Message: "assistant prefill is not supported"})
			res := c.ask(t, context.Background(), false)
			require.Error(t, res.err)
			assert.Equal(t, 503, res.status)
			assert.Equal(t, "primary overloaded", res.message)
		})
	}
}

// Scenario 15: the primary answers 503 for 60 s then recovers; a request
// every 4 s is served by the fallback meanwhile and by the primary again
// within 30 s of its recovery, with the default circuit breaker.
func TestCrashSuiteScenario15(t *testing.T) {
	for _, sdk := range []string{"openai-go", "go-openai"} {
		for _, stream := range []bool{false, true} {
			name := sdk + "/plain"
			if stream {
				name = sdk + "/stream"
			}
			t.Run(name, func(t *testing.T) {
				r := newCrashRig(t)
				c := r.client(t, sdk)
				start := r.clock.Now()
				recovered := time.Duration(-1)
				for tick := time.Duration(0); tick <= 120*time.Second; tick += 4 * time.Second {
					_ = r.clock.Sleep(context.Background(), start.Add(tick).Sub(r.clock.Now()))
					down := tick < 60*time.Second
					if down {
						r.primary.SetFault(&gatewaytest.Fault{Status: 503})
					} else {
						r.primary.SetFault(nil)
					}
					res := c.ask(t, context.Background(), stream)
					require.NoError(t, res.err, "at %s", tick)
					assert.Equal(t, crashReply, res.text, "at %s", tick)
					switch {
					case down:
						assert.Equal(t, "mistral-large-latest", res.model, "at %s", tick)
					case res.model == "gpt-4o" && recovered < 0:
						recovered = tick - 60*time.Second
					}
				}
				require.GreaterOrEqual(t, recovered, time.Duration(0), "the primary serves again")
				assert.LessOrEqual(t, recovered, 30*time.Second)
			})
		}
	}
}
