package gwtransport_test

// A new user's tests: written from go doc, README and notes/g10.md only.
// Setup as the docs recommend: a primary openai/gpt-4o and a fallback
// declared ContinuePrefix, both gatewaytest servers.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
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

const nbReply = "The quick brown fox jumps over the lazy dog and keeps running far away"

type nbClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *nbClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *nbClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

type nbSetup struct {
	primary, fallback *gatewaytest.Server
	client            openai.Client
	goClient          *goopenai.Client
	trail             *gwtransport.Trail
}

// nbNew builds primary openai/gpt-4o and fallback mistral/mistral-large
// (ContinuePrefix unless opts override), both replying nbReply.
func nbNew(t *testing.T, fallbackOpts []gatewaytest.Option, opts ...gwtransport.Option) *nbSetup {
	t.Helper()
	s := &nbSetup{}
	s.primary = gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(nbReply))
	fo := append([]gatewaytest.Option{gatewaytest.WithName("fallback"), gatewaytest.WithAPIKey("sk-f"), gatewaytest.WithReply(nbReply), gatewaytest.WithContinuation("prefix")}, fallbackOpts...)
	s.fallback = gatewaytest.NewServer(fo...)
	t.Cleanup(s.primary.Close)
	t.Cleanup(s.fallback.Close)
	base := []gwtransport.Option{
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: s.fallback.URL, APIKey: "sk-f"}),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/mistral-large": gwtransport.ContinuePrefix}),
		gwtransport.WithClock(&nbClock{now: time.Now()}),
	}
	all := append(base, opts...)
	models := []string{"openai/gpt-4o", "mistral/mistral-large"}
	s.client = openai.NewClient(option.WithBaseURL(s.primary.URL), option.WithAPIKey("sk-p"))
	_, err := gwtransport.Init(&s.client, models, all...)
	require.NoError(t, err)
	tr, err := gwtransport.NewTransport(nil, models, append(all, gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: s.primary.URL, APIKey: "sk-p"}))...)
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("sk-p")
	cfg.BaseURL = s.primary.URL
	cfg.HTTPClient = &http.Client{Transport: tr}
	s.goClient = goopenai.NewClientWithConfig(cfg)
	return s
}

func nbParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story")}}
}

// openai-go streamed, with ChatCompletionAccumulator; returns text, raw response, err.
func (s *nbSetup) oaStream(t *testing.T, ctx context.Context) (string, *http.Response, openai.ChatCompletionAccumulator, error) {
	t.Helper()
	ctx, s.trail = gwtransport.WithTrail(ctx)
	var res *http.Response
	st := s.client.Chat.Completions.NewStreaming(ctx, nbParams(), option.WithResponseInto(&res))
	defer st.Close()
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	text := ""
	if len(acc.Choices) > 0 {
		text = acc.Choices[0].Message.Content
	}
	return text, res, acc, st.Err()
}

func (s *nbSetup) goStream(t *testing.T, ctx context.Context) (string, error) {
	t.Helper()
	st, err := s.goClient.CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{Model: "gateway", Stream: true,
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Tell me a story"}}})
	if err != nil {
		return "", err
	}
	defer st.Close()
	var b strings.Builder
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		if len(r.Choices) > 0 {
			b.WriteString(r.Choices[0].Delta.Content)
		}
	}
}

// --- streamed rescue: scenario 8 (cut), 10 (malformed) ---

func TestNewbieStreamCutRescuedOpenAIGo(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	text, res, acc, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	assert.Equal(t, 1, s.fallback.Count())
	// the docs: read the trailers from res.Trailer after EOF
	require.NotNil(t, res)
	assert.Equal(t, "mistral/mistral-large", res.Trailer.Get("X-Gwtransport-Target"), "trailer %v header %v", res.Trailer, res.Header)
	assert.NotEmpty(t, acc.ID)
	// the continuation's usage
	t.Logf("usage %+v model %q", acc.Usage, acc.Model)
	var cont bool
	for _, a := range s.trail.Attempts() {
		t.Logf("attempt %v", a)
		cont = cont || a.Continued
	}
	assert.True(t, cont)
}

func TestNewbieStreamCutRescuedGoOpenAI(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	text, err := s.goStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
}

func TestNewbieStreamMalformedRescued(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{MalformedAt: 3})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	s.primary.Enqueue(gatewaytest.Fault{MalformedAt: 3})
	text, err = s.goStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
}

func TestNewbieMalformedLimitDrops(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithStreamMalformedLimit(2))
	s.primary.Enqueue(gatewaytest.Fault{MalformedAt: 3})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, s.trail.MalformedDropped())
	assert.Equal(t, 0, s.fallback.Count())
	// one token is lost: documented ("skipping it could silently drop text")
	assert.NotEqual(t, nbReply, text)
	t.Logf("text with one dropped event: %q", text)
}

// Scenario 14: fallback refuses the prefill: original error, not the 400.
func TestNewbieStreamPrefillRejectedOriginalError(t *testing.T) {
	s := nbNew(t, []gatewaytest.Option{gatewaytest.WithPrefillRejected()})
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	_, _, _, err := s.oaStream(t, context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	_, err = s.goStream(t, context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
}

// Continuation off unless declared: a fallback that could continue but is
// not declared is never sent a prefill.
func TestNewbieUndeclaredNeverPrefilled(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{}))
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	_, _, _, err := s.oaStream(t, context.Background())
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Equal(t, 0, s.fallback.Count())
}

func TestNewbieWithContinuationFalse(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithContinuation(false))
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	_, _, _, err := s.oaStream(t, context.Background())
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Equal(t, 0, s.fallback.Count())
}

// Scenario 11: no [DONE]
func TestNewbieNoDone(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{NoDone: true, HoldOpen: true})
	start := time.Now()
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// --- defaults that take real time ---

// Scenario 7 with the default 15 s first-event limit.
func TestNewbieDefaultFirstEvent15s(t *testing.T) {
	t.Parallel()
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{FirstEventDelay: 20 * time.Second})
	start := time.Now()
	text, res, _, err := s.oaStream(t, context.Background())
	el := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	assert.InDelta(t, 15, el.Seconds(), 1.5)
	assert.Equal(t, "mistral/mistral-large", res.Header.Get("X-Gwtransport-Target"))
}

// Scenario 9 with the default 30 s idle: rescued.
func TestNewbieDefaultIdle30s(t *testing.T) {
	t.Parallel()
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{StallAfter: 3})
	start := time.Now()
	text, err := s.goStream(t, context.Background())
	el := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	assert.InDelta(t, 30, el.Seconds(), 2)
}

// Non-streamed body stall, default 30 s body idle.
func TestNewbieDefaultBodyIdle30s(t *testing.T) {
	t.Parallel()
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{BodyStallAfter: 20})
	ctx, trail := gwtransport.WithTrail(context.Background())
	start := time.Now()
	r, err := s.client.Chat.Completions.New(ctx, nbParams())
	el := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.InDelta(t, 30, el.Seconds(), 2)
	require.NotEmpty(t, trail.Attempts())
	assert.ErrorIs(t, trail.Attempts()[0].Err, gwtransport.ErrResponseIdle)
}

// --- non-streamed verification ---

func TestNewbieBodyCutRetried(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{BodyCutAfter: 30})
	ctx, trail := gwtransport.WithTrail(context.Background())
	r, err := s.client.Chat.Completions.New(ctx, nbParams())
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.Equal(t, 2, s.primary.Count(), "retried at the same target")
	assert.ErrorIs(t, trail.Attempts()[0].Err, gwtransport.ErrResponseTruncated)

	s.primary.Enqueue(gatewaytest.Fault{BodyCutAfter: 30})
	gr, err := s.goClient.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway",
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	require.NoError(t, err)
	assert.Equal(t, nbReply, gr.Choices[0].Message.Content)
}

func TestNewbieBodyCutAlwaysFinalError(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.SetFault(&gatewaytest.Fault{BodyCutAfter: 30})
	s.fallback.SetFault(&gatewaytest.Fault{BodyCutAfter: 30})
	_, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	assert.ErrorIs(t, err, gwtransport.ErrResponseTruncated)
	var ge *gwtransport.Error
	assert.ErrorAs(t, err, &ge)
}

func TestNewbieInBandErrorFailsOver(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.SetFault(&gatewaytest.Fault{Status: 200, Body: `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`})
	r, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.Equal(t, 1, s.fallback.Count())
}

// WithMaxVerifiedBody(0): verification off.
func TestNewbieMaxVerifiedBodyZeroOff(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithMaxVerifiedBody(0))
	s.primary.Enqueue(gatewaytest.Fault{BodyCutAfter: 30})
	_, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	assert.Equal(t, 0, s.fallback.Count())
	assert.Equal(t, 1, s.primary.Count())
}

// --- per-model vs route first-event ---

func TestNewbieModelFirstEventZeroLifts(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithStreamFirstEvent(200*time.Millisecond),
		gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": 0}))
	s.primary.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, "openai/gpt-4o", res.Header.Get("X-Gwtransport-Target"))
	assert.Equal(t, 0, s.fallback.Count())
}

func TestNewbieModelFirstEventLonger(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithStreamFirstEvent(200*time.Millisecond),
		gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": 3 * time.Second}))
	s.primary.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, "openai/gpt-4o", res.Header.Get("X-Gwtransport-Target"))
}

// Options order: per-model given before the route value still wins?
func TestNewbieModelFirstEventBeforeRoute(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": 0}),
		gwtransport.WithStreamFirstEvent(200*time.Millisecond))
	s.primary.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, "openai/gpt-4o", res.Header.Get("X-Gwtransport-Target"))
}

// The smaller of attempt timeout and first event applies.
func TestNewbieTimeoutSmallerThanFirstEvent(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithTimeout(300*time.Millisecond),
		gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": 5 * time.Second}))
	s.primary.Enqueue(gatewaytest.Fault{FirstEventDelay: 2 * time.Second})
	start := time.Now()
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	assert.Equal(t, "mistral/mistral-large", res.Header.Get("X-Gwtransport-Target"))
}

// --- config file ---

func TestNewbieConfigFile(t *testing.T) {
	p := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(nbReply))
	f := gatewaytest.NewServer(gatewaytest.WithName("fallback"), gatewaytest.WithAPIKey("sk-f"), gatewaytest.WithReply(nbReply), gatewaytest.WithContinuation("prefix"))
	defer p.Close()
	defer f.Close()
	yml := `
models:
  - target: openai/gpt-4o
    stream_first_event: 0s
  - target: mistral/mistral-large
    continuation: prefix
defaults:
  stream_first_event: 200ms
  stream_malformed_limit: 2
  max_verified_body: 0
  body_idle: 1s
providers:
  - name: mistral
    base_url: ` + f.URL + `
    api_key_env: MY_MISTRAL
`
	cfg, err := gwtransport.LoadConfig([]byte(yml))
	require.NoError(t, err)
	client := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-p"))
	_, err = gwtransport.Init(&client, nil, gwtransport.WithConfig(cfg),
		gwtransport.WithEnv(func(k string) (string, bool) {
			if k == "MY_MISTRAL" {
				return "sk-f", true
			}
			return "", false
		}))
	require.NoError(t, err)
	s := &nbSetup{primary: p, fallback: f, client: client}

	// per-model 0s lifts the route's 200ms
	p.Enqueue(gatewaytest.Fault{FirstEventDelay: 700 * time.Millisecond})
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, "openai/gpt-4o", res.Header.Get("X-Gwtransport-Target"))

	// malformed limit 2: one dropped
	p.Enqueue(gatewaytest.Fault{MalformedAt: 2})
	_, _, _, err = s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, s.trail.MalformedDropped())

	// continuation declared in the file: a cut is rescued
	p.Enqueue(gatewaytest.Fault{CutAfter: 3})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)

	// max_verified_body 0: verification off, a cut body reaches the caller
	n := f.Count()
	p.Enqueue(gatewaytest.Fault{BodyCutAfter: 30})
	_, err = client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	assert.Equal(t, n, f.Count())
}

func TestNewbieConfigBodyIdle(t *testing.T) {
	p := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(nbReply))
	defer p.Close()
	cfg, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\ndefaults:\n  body_idle: 300ms\n  max_retries: 0\n"))
	require.NoError(t, err)
	client := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-p"))
	_, err = gwtransport.Init(&client, nil, gwtransport.WithConfig(cfg), gwtransport.WithEnv(func(string) (string, bool) { return "", false }))
	require.NoError(t, err)
	p.Enqueue(gatewaytest.Fault{BodyStallAfter: 20})
	start := time.Now()
	_, err = client.Chat.Completions.New(context.Background(), nbParams())
	assert.ErrorIs(t, err, gwtransport.ErrResponseIdle)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// --- gatewaytest as documented ---

func TestNewbieGatewaytestPrefixNotPrefix(t *testing.T) {
	f := gatewaytest.NewServer(gatewaytest.WithReply("alpha beta gamma"), gatewaytest.WithContinuation("prefix"))
	defer f.Close()
	c := openai.NewClient(option.WithBaseURL(f.URL), option.WithAPIKey("x"))
	post := func(body string) string {
		var out map[string]any
		err := c.Post(context.Background(), "chat/completions", []byte(body), &out)
		require.NoError(t, err)
		return out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	}
	// prefix of the reply: the rest
	assert.Equal(t, " gamma", post(`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"alpha beta","prefix":true}]}`))
	// not a prefix: whole reply
	assert.Equal(t, "alpha beta gamma", post(`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"zzz","prefix":true}]}`))
	// without the flag: whole reply
	assert.Equal(t, "alpha beta gamma", post(`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":"alpha beta"}]}`))
}

func TestNewbieGatewaytestReplyChunks(t *testing.T) {
	f := gatewaytest.NewServer(gatewaytest.WithReply(nbReply))
	defer f.Close()
	c := openai.NewClient(option.WithBaseURL(f.URL), option.WithAPIKey("x"))
	st := c.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var parts []string
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			parts = append(parts, ch.Choices[0].Delta.Content)
		}
	}
	require.NoError(t, st.Err())
	assert.Equal(t, nbReply, strings.Join(parts, ""))
	t.Logf("%d content events: %q", len(parts), parts)
}

// --- batch 2 ---

// Raw SSE as the caller reads it through the gateway: one [DONE], one id,
// whole text.
func TestNewbieSpliceRawSSE(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	hc := &http.Client{}
	_, err := gwtransport.Init(hc, []string{"openai/gpt-4o", "mistral/mistral-large"},
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: s.primary.URL, APIKey: "sk-p"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: s.fallback.URL, APIKey: "sk-f"}),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/mistral-large": gwtransport.ContinuePrefix}))
	require.NoError(t, err)
	req, _ := http.NewRequest("POST", s.primary.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer sk-p")
	res, err := hc.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	body := string(b)
	assert.Equal(t, 1, strings.Count(body, "data: [DONE]"), body)
	t.Logf("trailer %v\n%s", res.Trailer, body)
	j := s.fallback.Journal()
	require.Len(t, j, 1)
	t.Logf("continuation request: %s", j[0].Body)
	assert.Contains(t, string(j[0].Body), `"prefix":true`)
}

// The continuation itself never sends its first event: bounded by the
// first-event limit; the caller gets the original error.
func TestNewbieContinuationSilent(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithStreamFirstEvent(300*time.Millisecond))
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	s.fallback.Enqueue(gatewaytest.Fault{FirstEventDelay: 5 * time.Second})
	start := time.Now()
	_, _, _, err := s.oaStream(t, context.Background())
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// The continuation is cut too: only capable target already used -> original error.
func TestNewbieContinuationCutToo(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	s.fallback.Enqueue(gatewaytest.Fault{CutAfter: 3})
	text, _, _, err := s.oaStream(t, context.Background())
	for _, a := range s.trail.Attempts() {
		t.Logf("attempt %v continued=%v", a, a.Continued)
	}
	for _, r := range s.fallback.Journal() {
		t.Logf("fallback got %s", r.Body)
	}
	t.Logf("text %q", text)
	// a broken continuation is itself continued (the broken one last): rescued
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
}

// Every continuation is cut after one event: bounded by WithMaxAttempts,
// then the original error.
func TestNewbieContinuationCutForever(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithMaxAttempts(5))
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 2})
	s.fallback.SetFault(&gatewaytest.Fault{CutAfter: 1})
	text, _, _, err := s.oaStream(t, context.Background())
	t.Logf("text %q err %v; primary %d fallback %d", text, err, s.primary.Count(), s.fallback.Count())
	require.Error(t, err)
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.LessOrEqual(t, s.primary.Count()+s.fallback.Count(), 5)
	for _, a := range s.trail.Attempts() {
		t.Logf("attempt %v continued=%v", a, a.Continued)
	}
}

// Cut in the middle of an event: the partial event is never delivered,
// the continuation starts from exactly what was delivered.
func TestNewbieCutMidEvent(t *testing.T) {
	s := nbNew(t, nil)
	ev := func(c string) string {
		return `data: {"id":"p1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"` + c + `"},"finish_reason":null}]}` + "\n\n"
	}
	s.primary.Enqueue(gatewaytest.Fault{Script: ev("The ") + ev("quick ") + `data: {"id":"p1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"brown "}`})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	j := s.fallback.Journal()
	require.Len(t, j, 1)
	assert.Contains(t, string(j[0].Body), `"content":"The quick "`)
}

// Scenario 15 with a fake clock: primary 503 for 60 s, request every 4 s.
func TestNewbieScenario15(t *testing.T) {
	clk := &nbClock{now: time.Now()}
	s := nbNew(t, nil, gwtransport.WithClock(clk))
	s.primary.SetFault(&gatewaytest.Fault{Status: 503})
	start := clk.Now()
	var back time.Duration = -1
	for i := 0; i < 40; i++ {
		el := clk.Now().Sub(start)
		if el >= 60*time.Second {
			s.primary.SetFault(nil)
		}
		_, res, _, err := s.oaStream(t, context.Background())
		require.NoError(t, err, "request %d at %v", i, el)
		if el >= 60*time.Second && res.Header.Get("X-Gwtransport-Target") == "openai/gpt-4o" && back < 0 {
			back = el - 60*time.Second
		}
		clk.mu.Lock()
		clk.now = start.Add(time.Duration(i+1) * 4 * time.Second)
		clk.mu.Unlock()
	}
	t.Logf("back on primary %v after recovery; primary got %d requests", back, s.primary.Count())
	assert.True(t, back >= 0 && back <= 30*time.Second)
}

// Scenario 1 and 13, 12, 16 non-streamed through go-openai.
func TestNewbieScenariosGoOpenAI(t *testing.T) {
	clk := &nbClock{now: time.Now()}
	s := nbNew(t, nil, gwtransport.WithClock(clk))
	req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	// 1
	s.primary.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "2"}})
	t0 := clk.Now()
	r, err := s.goClient.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	t.Logf("s1: slept %v on clock, primary %d fallback %d", clk.Now().Sub(t0), s.primary.Count(), s.fallback.Count())
	// 13
	s.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "content_policy_violation", Type: "invalid_request_error", Message: "nope: policy"})
	_, err = s.goClient.CreateChatCompletion(context.Background(), req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope: policy")
	// 12
	s.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "context_length_exceeded", Type: "invalid_request_error", Message: "too long"})
	r, err = s.goClient.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "mistral-large", r.Model)
	// 16
	s.primary.SetFault(&gatewaytest.Fault{Status: 503})
	r, err = s.goClient.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "mistral-large", r.Model)
	assert.NotZero(t, r.Usage.TotalTokens)
}

// Scenario 6, non-streamed hang: attempt timeout then fail over at once.
func TestNewbieHangNonStreamed(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithTimeout(300*time.Millisecond))
	s.primary.SetFault(&gatewaytest.Fault{Hang: true})
	start := time.Now()
	r, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, 1, s.primary.Count())
}

// Timeout covers a verified body (g10): a body that trickles within body
// idle but past the attempt timeout.
func TestNewbieAttemptTimeoutCoversBody(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithTimeout(300*time.Millisecond), gwtransport.WithBodyIdle(0))
	s.primary.SetFault(&gatewaytest.Fault{BodyStallAfter: 20})
	start := time.Now()
	r, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// Caller's deadline during a continuation: the caller's ctx error, no leak.
func TestNewbieCallerDeadlineDuringContinuation(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	s.fallback.Enqueue(gatewaytest.Fault{StallAfter: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, _, err := s.oaStream(t, ctx)
	require.Error(t, err)
	t.Logf("err: %v", err)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// --- batch 3 ---

// In-band content-policy refusal in a 200: "fails fast and the caller gets
// the provider's bytes"; what does an openai-go user see?
func TestNewbieInBandPolicyRefusalOpenAIGo(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.SetFault(&gatewaytest.Fault{Status: 200, Body: `{"error":{"message":"blocked by policy","type":"invalid_request_error","code":"content_policy_violation"}}`})
	var res *http.Response
	r, err := s.client.Chat.Completions.New(context.Background(), nbParams(), option.WithResponseInto(&res))
	if res != nil {
		t.Logf("status %d", res.StatusCode)
	}
	t.Logf("r=%v err=%v", r != nil, err)
	if res != nil {
		t.Logf("headers %v", res.Header)
	}
	if r != nil {
		t.Logf("choices %d, raw %s", len(r.Choices), r.RawJSON())
	}
	var oerr *openai.Error
	require.ErrorAs(t, err, &oerr, "an error inside a 200 is an error: the caller must not get a ChatCompletion with no choices")
	assert.Nil(t, r)
	assert.Equal(t, 400, oerr.StatusCode)
	assert.Equal(t, "content_policy_violation", oerr.Code)
	assert.Equal(t, "invalid_request_error", oerr.Type)
	assert.Equal(t, "blocked by policy", oerr.Message)
	require.NotNil(t, res)
	assert.Equal(t, "200", res.Header.Get(gwtransport.HeaderStatusRewritten))
	assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
	assert.Equal(t, 0, s.fallback.Count())
	gr, gerr := s.goClient.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	t.Logf("go-openai: choices=%d err=%v", len(gr.Choices), gerr)
	var gapi *goopenai.APIError
	require.ErrorAs(t, gerr, &gapi)
	assert.Equal(t, 400, gapi.HTTPStatusCode)
	assert.Equal(t, "content_policy_violation", gapi.Code)
	assert.Equal(t, "invalid_request_error", gapi.Type)
	assert.Equal(t, "blocked by policy", gapi.Message)
	assert.Equal(t, 0, s.fallback.Count())
}

func TestNewbieMalformedLimitZero(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, gwtransport.WithStreamMalformedLimit(n))
		t.Logf("WithStreamMalformedLimit(%d): %v", n, err)
	}
	for _, v := range []string{"0", "-1"} {
		_, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\ndefaults:\n  stream_malformed_limit: " + v + "\n"))
		t.Logf("config stream_malformed_limit %s: %v", v, err)
	}
	for _, v := range []string{"-1", "bogus"} {
		_, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\n    continuation: " + v + "\n"))
		t.Logf("config continuation %s: %v", v, err)
	}
	_, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\ndefaults:\n  max_verified_body: -5\n"))
	t.Logf("config max_verified_body -5: %v", err)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"openai/gpt-5": gwtransport.ContinuePrefix}))
	t.Logf("unknown continuation key: %v", err)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"openai/gpt-4o": "bogus"}))
	t.Logf("bogus continuation value: %v", err)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, gwtransport.WithMaxVerifiedBody(-1))
	t.Logf("WithMaxVerifiedBody(-1): %v", err)
	_, err = gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, gwtransport.WithModelFirstEvent(map[string]time.Duration{"openai/gpt-4o": -time.Second}))
	t.Logf("WithModelFirstEvent(-1s): %v", err)
}

// ErrNoTarget through openai-go: RetryAfterOf reaches it.
func TestNewbieRetryAfterThroughOpenAIGo(t *testing.T) {
	clk := &nbClock{now: time.Now()}
	s := nbNew(t, nil, gwtransport.WithClock(clk),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(120 * time.Second)}),
		gwtransport.WithMaxRetries(0))
	s.primary.SetFault(&gatewaytest.Fault{Status: 503})
	s.fallback.SetFault(&gatewaytest.Fault{Status: 503})
	_, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	clk.mu.Lock()
	clk.now = clk.now.Add(20 * time.Second)
	clk.mu.Unlock()
	_, err = s.client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	t.Logf("err %v", err)
	assert.ErrorIs(t, err, gwtransport.ErrNoTarget)
	d, ok := gwtransport.RetryAfterOf(err)
	assert.True(t, ok)
	assert.Equal(t, 100*time.Second, d)
	_, gerr := s.goClient.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	// go-openai's transport is a separate gateway (NewTransport): its own breakers
	t.Logf("go-openai err %v", gerr)
}

// --- batch 4: real-world chunk shapes ---

func oaChunk(delta string) string {
	return `data: {"id":"chatcmpl-real","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_abc","choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"xyz"}` + "\n\n"
}

// The recommended configuration's primary is openai/gpt-4o: its real
// stream's first chunk carries "refusal": null and every chunk
// "logprobs": null. Such a stream cut after some text must still be rescued.
func TestNewbieRealOpenAIChunkShapeRescued(t *testing.T) {
	s := nbNew(t, nil)
	script := oaChunk(`{"role":"assistant","content":"","refusal":null}`) +
		oaChunk(`{"content":"The "}`) + oaChunk(`{"content":"quick "}`) + oaChunk(`{"content":"brown "}`)
	s.primary.Enqueue(gatewaytest.Fault{Script: script})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err, "fallback requests: %d", s.fallback.Count())
	assert.Equal(t, nbReply, text)
}

// Same without refusal:null (only logprobs:null at choice level).
func TestNewbieRealOpenAIChunkShapeNoRefusalRescued(t *testing.T) {
	s := nbNew(t, nil)
	script := oaChunk(`{"role":"assistant","content":""}`) +
		oaChunk(`{"content":"The "}`) + oaChunk(`{"content":"quick "}`) + oaChunk(`{"content":"brown "}`)
	s.primary.Enqueue(gatewaytest.Fault{Script: script})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err, "fallback requests: %d", s.fallback.Count())
	assert.Equal(t, nbReply, text)
}

// The continuation's id and leading role-only chunk.
func TestNewbieContinuationIDAndRoleChunk(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	ch := func(d string) string {
		return `data: {"id":"cont-9","object":"chat.completion.chunk","created":2,"model":"mistral-large","choices":[{"index":0,"delta":` + d + `,"finish_reason":null}]}` + "\n\n"
	}
	s.fallback.Enqueue(gatewaytest.Fault{Script: ch(`{"role":"assistant"}`) + ch(`{"content":"jumps over the lazy dog and keeps running far away"}`) +
		`data: {"id":"cont-9","object":"chat.completion.chunk","created":2,"model":"mistral-large","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"})
	ctx, trail := gwtransport.WithTrail(context.Background())
	st := s.client.Chat.Completions.NewStreaming(ctx, nbParams())
	defer st.Close()
	var ids []string
	var b strings.Builder
	roles := 0
	for st.Next() {
		c := st.Current()
		ids = append(ids, c.ID)
		if len(c.Choices) > 0 {
			b.WriteString(c.Choices[0].Delta.Content)
			if c.Choices[0].Delta.Role != "" && c.Choices[0].Delta.Content == "" {
				roles++
			}
		}
	}
	require.NoError(t, st.Err())
	_ = trail
	assert.Equal(t, nbReply, b.String())
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	assert.Equal(t, 0, roles)
}

// In-band error event after the commit (availability error).
func TestNewbieInBandErrorMidStream(t *testing.T) {
	s := nbNew(t, nil)
	script := oaChunk(`{"role":"assistant","content":"The "}`) + oaChunk(`{"content":"quick "}`) +
		`data: {"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}` + "\n\n"
	s.primary.Enqueue(gatewaytest.Fault{Script: script})
	text, _, _, err := s.oaStream(t, context.Background())
	t.Logf("text %q err %v fallback %d", text, err, s.fallback.Count())
	for _, a := range s.trail.Attempts() {
		t.Logf("attempt %v", a)
	}
}

// The trail and WithOnAttempt record a break that is not rescued.
func TestNewbieBreakRecordedWhenNotRescued(t *testing.T) {
	for _, name := range []string{"cut", "inband"} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var hook []gwtransport.Attempt
			s := nbNew(t, nil, gwtransport.WithContinuation(false), gwtransport.WithOnAttempt(func(a gwtransport.Attempt) {
				mu.Lock()
				hook = append(hook, a)
				mu.Unlock()
			}))
			if name == "cut" {
				s.primary.Enqueue(gatewaytest.Fault{CutAfter: 3})
			} else {
				s.primary.Enqueue(gatewaytest.Fault{Script: oaChunk(`{"role":"assistant","content":"The "}`) + oaChunk(`{"content":"quick "}`) +
					`data: {"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}` + "\n\n"})
			}
			_, _, _, err := s.oaStream(t, context.Background())
			require.Error(t, err)
			var withErr int
			for _, a := range s.trail.Attempts() {
				t.Logf("trail %v", a)
				if a.Err != nil {
					withErr++
				}
			}
			mu.Lock()
			for _, a := range hook {
				t.Logf("hook %v", a)
			}
			mu.Unlock()
			assert.Equal(t, 1, withErr, "the break is recorded in the trail")
		})
	}
}

func TestNewbieBreakRecordedVariants(t *testing.T) {
	cases := map[string]func() *nbSetup{
		"undeclared": func() *nbSetup {
			return nbNew(t, nil, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{}))
		},
		"prefill-rejected": func() *nbSetup { return nbNew(t, []gatewaytest.Option{gatewaytest.WithPrefillRejected()}) },
		"single-target": func() *nbSetup {
			s := nbNew(t, nil)
			c := openai.NewClient(option.WithBaseURL(s.primary.URL), option.WithAPIKey("sk-p"))
			_, err := gwtransport.Init(&c, []string{"openai/gpt-4o"}, gwtransport.WithEnv(func(string) (string, bool) { return "", false }))
			require.NoError(t, err)
			s.client = c
			return s
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			s := mk()
			s.primary.Enqueue(gatewaytest.Fault{CutAfter: 3})
			_, _, _, err := s.oaStream(t, context.Background())
			require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			var withErr int
			for _, a := range s.trail.Attempts() {
				t.Logf("trail %v", a)
				if a.Err != nil {
					withErr++
				}
			}
			assert.GreaterOrEqual(t, withErr, 1, "the break is recorded in the trail")
		})
	}
}

// Stats and events after a broken stream nobody could rescue.
func TestNewbieBrokenStreamStatsAndEvents(t *testing.T) {
	p := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(nbReply))
	defer p.Close()
	var mu sync.Mutex
	var evs []gwtransport.Event
	c := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-p"))
	mgr, err := gwtransport.Init(&c, []string{"openai/gpt-4o"}, gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithOnEvent(func(e gwtransport.Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() }))
	require.NoError(t, err)
	s := &nbSetup{primary: p, client: c}
	p.Enqueue(gatewaytest.Fault{CutAfter: 3})
	_, _, _, err = s.oaStream(t, context.Background())
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	st := mgr.Stats()
	t.Logf("stats attempts=%d successes=%d failures=%d", st[0].Attempts, st[0].Successes, st[0].Failures)
	mu.Lock()
	for _, e := range evs {
		if e.Attempt != nil {
			t.Logf("event %s %s err=%v", e.Kind, e.Target, e.Attempt.Err)
		} else {
			t.Logf("event %s %s", e.Kind, e.Target)
		}
	}
	mu.Unlock()
	assert.Equal(t, int64(1), st[0].Failures, "a broken stream is a failure")
	assert.LessOrEqual(t, st[0].Successes+st[0].Failures, st[0].Attempts, "TargetStats: Attempts made at this target, of which Successes and Failures")
	assert.Equal(t, int64(0), st[0].Successes, "a broken stream is not a success")
}

// --- batch 5 ---

func TestNewbieStreamedScenarios2_4_12_13_16(t *testing.T) {
	clk := &nbClock{now: time.Now()}
	s := nbNew(t, nil, gwtransport.WithClock(clk))
	// 2: 429 forever, no header: bounded, fail over
	s.primary.SetFault(&gatewaytest.Fault{Status: 429})
	text, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	assert.Equal(t, "mistral/mistral-large", res.Header.Get("X-Gwtransport-Target"))
	t.Logf("s2: primary %d requests", s.primary.Count())
	s.primary.SetFault(nil)
	// 12 via go-openai streamed
	s.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "context_length_exceeded", Type: "invalid_request_error", Message: "too long"})
	text, err = s.goStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	// 13 streamed, both SDKs
	s.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "content_policy_violation", Type: "invalid_request_error", Message: "nope: policy"})
	_, _, _, err = s.oaStream(t, context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope: policy")
	s.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "content_policy_violation", Type: "invalid_request_error", Message: "nope: policy"})
	_, err = s.goStream(t, context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope: policy")
	// 4: 503 forever everywhere: original error
	s.primary.SetFault(&gatewaytest.Fault{Status: 503, Message: "primary down"})
	s.fallback.SetFault(&gatewaytest.Fault{Status: 503, Message: "fallback down"})
	_, _, _, err = s.oaStream(t, context.Background())
	require.Error(t, err)
	t.Logf("s4 err: %v", err)
	var oe *openai.Error
	if assert.ErrorAs(t, err, &oe) {
		assert.Equal(t, 503, oe.StatusCode)
	}
}

// A fallback's refusal never hides a body failure.
func TestNewbieFallbackRefusalDoesNotHideBodyCut(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.SetFault(&gatewaytest.Fault{BodyCutAfter: 30})
	s.fallback.SetFault(&gatewaytest.Fault{Status: 400, Code: "invalid_value", Type: "invalid_request_error", Message: "bad param for mistral"})
	_, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	t.Logf("err %v", err)
	assert.ErrorIs(t, err, gwtransport.ErrResponseTruncated)
	_, gerr := s.goClient.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	t.Logf("go-openai err %v", gerr)
	assert.ErrorIs(t, gerr, gwtransport.ErrResponseTruncated)
}

// A body over the 8 MiB default is handed over unverified, whole.
func TestNewbieLargeBodyUnverified(t *testing.T) {
	big := strings.Repeat("word ", 9<<20/5)
	p := gatewaytest.NewServer(gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(big))
	defer p.Close()
	c := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-p"))
	_, err := gwtransport.Init(&c, []string{"openai/gpt-4o"}, gwtransport.WithEnv(func(string) (string, bool) { return "", false }))
	require.NoError(t, err)
	r, err := c.Chat.Completions.New(context.Background(), nbParams())
	require.NoError(t, err)
	assert.Equal(t, len(big), len(r.Choices[0].Message.Content))
	// cut big body: never a success
	p.Enqueue(gatewaytest.Fault{BodyCutAfter: 8<<20 + 100})
	_, err = c.Chat.Completions.New(context.Background(), nbParams())
	require.Error(t, err)
	t.Logf("cut big: %v", err)
}

// Non-streamed requests are never held to the 15 s first-event default.
func TestNewbieNonStreamedNotHeldToFirstEvent(t *testing.T) {
	t.Parallel()
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{Delay: 17 * time.Second})
	r, err := s.client.Chat.Completions.New(context.Background(), nbParams())
	require.NoError(t, err)
	assert.Equal(t, nbReply, r.Choices[0].Message.Content)
	assert.Equal(t, 0, s.fallback.Count())
}

// Options inside WithRoute: continuation and malformed limit per route.
func TestNewbieRouteLevelOptions(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithRoute("gateway-b", []string{"openai/gpt-4o", "mistral/mistral-large"},
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/mistral-large": gwtransport.ContinuePrefix}),
		gwtransport.WithStreamMalformedLimit(3)))
	p := nbParams()
	p.Model = "gateway-b"
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	st := s.client.Chat.Completions.NewStreaming(context.Background(), p)
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	st.Close()
	require.NoError(t, st.Err())
	assert.Equal(t, nbReply, acc.Choices[0].Message.Content)
}

func TestNewbieConfigRouteInheritance(t *testing.T) {
	p := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-p"), gatewaytest.WithReply(nbReply))
	f := gatewaytest.NewServer(gatewaytest.WithName("fallback"), gatewaytest.WithAPIKey("sk-f"), gatewaytest.WithReply(nbReply), gatewaytest.WithContinuation("prefix"))
	defer p.Close()
	defer f.Close()
	yml := `
defaults:
  stream_first_event: 200ms
  continuation: prefix
models:
  - target: openai/gpt-4o
    continuation: ""
  - target: mistral/mistral-large
routes:
  - name: slow
    defaults:
      stream_first_event: 3s
      continuation: ""
    models:
      - target: openai/gpt-4o
      - target: mistral/mistral-large
providers:
  - name: mistral
    base_url: ` + f.URL + `
    api_key_env: MY_MISTRAL
`
	cfg, err := gwtransport.LoadConfig([]byte(yml))
	require.NoError(t, err)
	client := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-p"))
	_, err = gwtransport.Init(&client, nil, gwtransport.WithConfig(cfg), gwtransport.WithEnv(func(k string) (string, bool) {
		if k == "MY_MISTRAL" {
			return "sk-f", true
		}
		return "", false
	}))
	require.NoError(t, err)
	s := &nbSetup{primary: p, fallback: f, client: client}
	// default route: 200ms first event -> fallback
	p.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	_, res, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, "mistral/mistral-large", res.Header.Get("X-Gwtransport-Target"))
	// default route: cut -> rescued at mistral (inherits prefix), primary explicitly none
	p.Enqueue(gatewaytest.Fault{CutAfter: 3})
	text, _, _, err := s.oaStream(t, context.Background())
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	// route "slow": 3s first event -> stays on primary; continuation none -> cut not rescued
	n := f.Count()
	var r2 *http.Response
	pp := nbParams()
	pp.Model = "slow"
	p.Enqueue(gatewaytest.Fault{FirstEventDelay: time.Second})
	st := client.Chat.Completions.NewStreaming(context.Background(), pp, option.WithResponseInto(&r2))
	for st.Next() {
	}
	st.Close()
	require.NoError(t, st.Err())
	assert.Equal(t, "openai/gpt-4o", r2.Header.Get("X-Gwtransport-Target"))
	p.Enqueue(gatewaytest.Fault{CutAfter: 3})
	st = client.Chat.Completions.NewStreaming(context.Background(), pp)
	for st.Next() {
	}
	st.Close()
	assert.ErrorIs(t, st.Err(), gwtransport.ErrStreamTruncated)
	assert.Equal(t, n, f.Count())
}

// The primary sends OpenAI's role-only first chunk then dies: no text was
// delivered, so any fallback could answer afresh.
func TestNewbieCutAfterRoleOnlyChunk(t *testing.T) {
	for _, declared := range []bool{false, true} {
		var opts []gwtransport.Option
		if !declared {
			opts = append(opts, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{}))
		}
		s := nbNew(t, nil, opts...)
		s.primary.Enqueue(gatewaytest.Fault{Script: oaChunk(`{"role":"assistant","content":"","refusal":null}`)})
		text, _, _, err := s.oaStream(t, context.Background())
		t.Logf("declared=%v: text %q err %v fallback %d", declared, text, err, s.fallback.Count())
		for _, r := range s.fallback.Journal() {
			t.Logf("fallback got %s", r.Body)
		}
		assert.NoError(t, err)
		assert.Equal(t, nbReply, text)
	}
}

// Scenario 7 in OpenAI's real shape: the role-only chunk comes at once with
// the headers, the first token late. Does the first-event limit fail over?
func TestNewbieFirstTokenLateAfterRoleChunk(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithStreamFirstEvent(500*time.Millisecond))
	s.primary.Enqueue(gatewaytest.Fault{ScriptPause: 3 * time.Second,
		Script: oaChunk(`{"role":"assistant","content":"","refusal":null}`) + oaChunk(`{"content":"The quick brown fox jumps over the lazy dog and keeps running far away"}`) +
			`data: {"id":"chatcmpl-real","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"})
	start := time.Now()
	text, res, _, err := s.oaStream(t, context.Background())
	el := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, nbReply, text)
	t.Logf("took %v, target %s", el, res.Header.Get("X-Gwtransport-Target"))
	assert.Less(t, el, 2*time.Second, "a first token later than the first-event limit fails over")
}

// Explicit defaults in the request ("n": 1, "logprobs": false, include_usage)
// must not stop a rescue.
func TestNewbieExplicitDefaultsStillRescued(t *testing.T) {
	cases := map[string]func(*openai.ChatCompletionNewParams){
		"n1":            func(p *openai.ChatCompletionNewParams) { p.N = openai.Int(1) },
		"logprobsFalse": func(p *openai.ChatCompletionNewParams) { p.Logprobs = openai.Bool(false) },
		"includeUsage": func(p *openai.ChatCompletionNewParams) {
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			s := nbNew(t, nil)
			s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
			p := nbParams()
			mod(&p)
			st := s.client.Chat.Completions.NewStreaming(context.Background(), p)
			acc := openai.ChatCompletionAccumulator{}
			for st.Next() {
				acc.AddChunk(st.Current())
			}
			st.Close()
			assert.NoError(t, st.Err(), "fallback %d", s.fallback.Count())
			if len(acc.Choices) > 0 {
				assert.Equal(t, nbReply, acc.Choices[0].Message.Content)
			}
		})
	}
}

func TestNewbieOtherContinuationModes(t *testing.T) {
	for _, m := range []gwtransport.Continuation{gwtransport.ContinuePrefill, gwtransport.ContinueFinalMessage} {
		t.Run(string(m), func(t *testing.T) {
			s := nbNew(t, []gatewaytest.Option{gatewaytest.WithContinuation(string(m))},
				gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/mistral-large": m}))
			s.primary.Enqueue(gatewaytest.Fault{CutAfter: 5})
			text, _, _, err := s.oaStream(t, context.Background())
			require.NoError(t, err)
			assert.Equal(t, nbReply, text)
			t.Logf("%s", s.fallback.Journal()[0].Body)
			s.primary.Enqueue(gatewaytest.Fault{CutAfter: 5})
			text, err = s.goStream(t, context.Background())
			require.NoError(t, err)
			assert.Equal(t, nbReply, text)
		})
	}
}

// Declared mode differs from what the provider does: the docs warn of duplicates.
func TestNewbieMismatchedModeDuplicates(t *testing.T) {
	s := nbNew(t, nil, gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/mistral-large": gwtransport.ContinuePrefill}))
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	text, _, _, err := s.oaStream(t, context.Background())
	t.Logf("declared prefill, server wants prefix: text %q err %v", text, err)
}

// The caller closes while a continuation is in flight (stalled fallback).
func TestNewbieCloseDuringContinuation(t *testing.T) {
	s := nbNew(t, nil)
	s.primary.Enqueue(gatewaytest.Fault{CutAfter: 4})
	s.fallback.Enqueue(gatewaytest.Fault{FirstEventDelay: 10 * time.Second})
	st := s.client.Chat.Completions.NewStreaming(context.Background(), nbParams())
	n := 0
	for n < 4 && st.Next() {
		n++
	}
	go func() { time.Sleep(200 * time.Millisecond); st.Close() }()
	start := time.Now()
	for st.Next() {
	}
	assert.Less(t, time.Since(start), 2*time.Second)
	t.Logf("err after close: %v", st.Err())
}
