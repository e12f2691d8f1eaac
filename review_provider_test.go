package gwtransport_test

// Adversarial review (hostile provider): the upstream's bytes are ours.

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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
)

// hostileSrv is a raw provider: h writes whatever bytes it likes; bodies
// of the requests it received are kept.
type hostileSrv struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func hostile(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *hostileSrv {
	t.Helper()
	s := &hostileSrv{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		n := len(s.bodies)
		s.mu.Unlock()
		bodyOf.Store(r, string(b))
		defer bodyOf.Delete(r)
		h(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hostileSrv) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// writeEvents writes SSE bytes, flushing each piece; cut aborts the
// connection afterwards (the client sees the chunked body end early).
func writeEvents(w http.ResponseWriter, pieces []string, cut bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	f := w.(http.Flusher)
	for _, p := range pieces {
		_, _ = io.WriteString(w, p)
		f.Flush()
	}
	if cut {
		panic(http.ErrAbortHandler)
	}
}

func rvChunk(content string) string {
	b, _ := json.Marshal(content)
	return `data: {"id":"chatcmpl-A","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}` + "\n\n"
}

const roleChunk = `data: {"id":"chatcmpl-A","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"

// continuationOf writes a well-formed continuation stream with the given
// text, a finish and [DONE].
func continuationOf(w http.ResponseWriter, text string) {
	b, _ := json.Marshal(text)
	writeEvents(w, []string{
		`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n",
		"data: [DONE]\n\n",
	}, false)
}

// prefillOf returns the content of the trailing assistant message of a
// chat body ("" when there is none).
func prefillOf(t *testing.T, body string) (string, bool) {
	t.Helper()
	var b struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &b))
	if n := len(b.Messages); n > 0 && b.Messages[n-1].Role == "assistant" {
		return b.Messages[n-1].Content, true
	}
	return "", false
}

// rescueRig: a hostile primary (the caller's own openai base URL) and a
// fallback declared ContinuePrefill.
func rescueRig(t *testing.T, primary, fallback func(w http.ResponseWriter, r *http.Request, n int), opts ...gwtransport.Option) (a, b *hostileSrv, tr *gwtransport.Transport) {
	t.Helper()
	a = hostile(t, primary)
	b = hostile(t, fallback)
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"}, append([]gwtransport.Option{
		noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"fb/b-model": gwtransport.ContinuePrefill}),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return a, b, tr
}

func openaiVia(a *hostileSrv, tr http.RoundTripper) openai.Client {
	return openai.NewClient(option.WithBaseURL(a.URL), option.WithAPIKey("key-p-123456"),
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
}

func goopenaiVia(a *hostileSrv, tr http.RoundTripper) *goopenai.Client {
	return goopenaiAt(a.URL, "key-p-123456", tr)
}

// goopenaiAt is a go-openai client of baseURL with key, through tr.
func goopenaiAt(baseURL, key string, tr http.RoundTripper) *goopenai.Client {
	cfg := goopenai.DefaultConfig(key)
	cfg.BaseURL = baseURL
	cfg.HTTPClient = &http.Client{Transport: tr}
	return goopenai.NewClientWithConfig(cfg)
}

func openaiStreamText(t *testing.T, c openai.Client) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the answer?")},
	})
	defer s.Close()
	text := ""
	for s.Next() {
		for _, ch := range s.Current().Choices {
			text += ch.Delta.Content
		}
	}
	return text, s.Err()
}

func goopenaiStreamText(t *testing.T, c *goopenai.Client) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return goopenaiStreamAsk(ctx, c, "What is the answer?")
}

// ---------------------------------------------------------------------
// Rescue: the gateway's reading of "delivered text" versus the SDKs'.

// An event named thread.* is decoded by openai-go as {"event","data"}: its
// content is invisible to the caller, yet the gateway counts it as
// delivered and sends it as the prefill. The caller's answer silently
// lacks it.
func TestReviewThreadEventContentCountedAsDelivered(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer"),
				"event: thread.message.delta\n" + rvChunk(" is forty")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, "-two.") })
	text, err := openaiStreamText(t, openaiVia(a, tr))
	// What the caller read is not what the gateway would send as the
	// prefill: the stream is never spliced, the break stays.
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Equal(t, "The answer", text)
	assert.Empty(t, b.requests(), "no continuation")
}

// openai-go stops at data starting with [DONE] whatever the event's name;
// the gateway does not count a [DONE] inside a thread.* event, rescues the
// cut that follows and splices a continuation after it. The openai-go
// caller gets a truncated answer and no error.
func TestReviewThreadDoneBeforeSplice(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer"), "event: thread.done\ndata: [DONE]\n\n"}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") })
	text, err := openaiStreamText(t, openaiVia(a, tr))
	t.Logf("openai-go read %q (err %v); continuation requests %d", text, err, len(b.requests()))
	if err == nil {
		assert.Equal(t, "The answer is forty-two.", text, "a clean end must carry the whole answer")
	}
}

// go-openai trims a line before matching ^data:\s* : a data line with
// leading white space is read by go-openai, never by the gateway. Its
// content is not in the prefill; the continuation repeats it.
func TestReviewLeadingSpaceDataNotInPrefill(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer"), " " + rvChunk(" is forty")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") })
	text, err := goopenaiStreamText(t, goopenaiVia(a, tr))
	reqs := b.requests()
	require.Len(t, reqs, 1, "one continuation")
	prefill, _ := prefillOf(t, reqs[0])
	t.Logf("go-openai read %q (err %v); prefill sent to the continuation %q", text, err, prefill)
	if err == nil {
		assert.Equal(t, prefill+" is forty-two.", text, "the caller must read exactly the prefill followed by the continuation: no text duplicated")
	}
}

// ---------------------------------------------------------------------
// Verified non-streamed bodies: an error inside a 200.

const inBand = `{"error":{"message":"The server is overloaded","type":"server_error","code":"overloaded"}}`

const completionB = `{"id":"chatcmpl-B","object":"chat.completion","created":1,"model":"b-model","choices":[{"index":0,"message":{"role":"assistant","content":"from B"},"finish_reason":"stop"}]}`

func nonStreamRig(t *testing.T, primary func(w http.ResponseWriter, r *http.Request, n int)) (a, b *hostileSrv, tr *gwtransport.Transport) {
	t.Helper()
	a = hostile(t, primary)
	b = hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completionB)
	})
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"},
		noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}))
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return a, b, tr
}

// go-openai decodes any 200 as JSON whatever its Content-Type: an error
// object sent as text/plain is taken as an empty success.
func TestReviewInBandErrorAsTextPlainGoOpenAI(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, inBand)
	})
	res, err := goopenaiVia(a, tr).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}},
	})
	t.Logf("go-openai: err %v, choices %d, fallback requests %d, primary requests %d", err, len(res.Choices), len(b.requests()), len(a.requests()))
	require.NoError(t, err)
	require.NotEmpty(t, res.Choices, "an error inside a 200 must fail over, never be the caller's empty success")
	assert.Equal(t, "from B", res.Choices[0].Message.Content)
}

// A Content-Encoding that net/http does not decode ("UTF-8", sent by
// misconfigured servers) switches verification off, but the body is plain
// JSON and both SDKs decode it: the error inside the 200 is an empty
// success through openai-go.
func TestReviewInBandErrorWithBogusContentEncodingOpenAI(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "UTF-8")
		_, _ = io.WriteString(w, inBand)
	})
	c := openaiVia(a, tr)
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	})
	n := 0
	if res != nil {
		n = len(res.Choices)
	}
	t.Logf("openai-go: err %v, choices %d, fallback requests %d, primary requests %d", err, n, len(b.requests()), len(a.requests()))
	require.NoError(t, err)
	require.NotEmpty(t, res.Choices, "an error inside a 200 must fail over, never be the caller's empty success")
	assert.Equal(t, "from B", res.Choices[0].Message.Content)
}

// openai-go takes any media type containing "application/json" as JSON;
// the gateway only application/json and +json.
func TestReviewInBandErrorJSONishContentTypeOpenAI(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/jsonl")
		_, _ = io.WriteString(w, inBand)
	})
	c := openaiVia(a, tr)
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	})
	n := 0
	if res != nil {
		n = len(res.Choices)
	}
	t.Logf("openai-go: err %v, choices %d, fallback requests %d", err, n, len(b.requests()))
	require.NoError(t, err)
	require.NotEmpty(t, res.Choices, "an error inside a 200 must fail over, never be the caller's empty success")
}

// The same lie about the encoding hides a cut JSON body: the caller's SDK
// fails to parse it instead of the gateway failing over.
func TestReviewTruncatedJSONWithBogusContentEncoding(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "UTF-8")
		_, _ = io.WriteString(w, completionB[:len(completionB)/2])
	})
	c := openaiVia(a, tr)
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	})
	t.Logf("openai-go: err %v, fallback requests %d", err, len(b.requests()))
	require.NoError(t, err, "a body that is not the JSON it says it is must fail over")
	assert.Equal(t, "from B", res.Choices[0].Message.Content)
}

var _ = strings.Contains

// Control for TestReviewThreadDoneBeforeSplice: without the rescue, the
// same provider bytes end the openai-go caller's stream in an error, so it
// is the splice that turns the cut into a clean, truncated answer.
func TestReviewThreadDoneControlWithoutRescue(t *testing.T) {
	a, _, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer"), "event: thread.done\ndata: [DONE]\n\n"}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") },
		gwtransport.WithContinuation(false))
	text, err := openaiStreamText(t, openaiVia(a, tr))
	t.Logf("openai-go read %q (err %v)", text, err)
	require.Error(t, err)
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
}

// ---------------------------------------------------------------------
// Breaker: a half-open probe answered by a complete stream that the caller
// closes after [DONE] (go-openai always does: it returns io.EOF at [DONE]
// and never reads the end of the body).

func TestReviewGoOpenAIProbeStreamNeverClosesBreaker(t *testing.T) {
	clock := newFakeClock()
	a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		continuationOf(w, "Hello there.")
	})
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"},
		noEnv(), seeded(1), gwtransport.WithClock(clock), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	c := goopenaiVia(a, tr)

	_, err = c.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
		Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}}})
	require.Error(t, err)
	require.Equal(t, gwtransport.BreakerOpen, tr.Stats()[0].Breaker)

	clock.mu.Lock()
	clock.now = clock.now.Add(11 * time.Second)
	clock.mu.Unlock()

	text, err := goopenaiStreamText(t, c) // the probe: a complete stream
	require.NoError(t, err)
	require.Equal(t, "Hello there.", text)

	st := tr.Stats()[0]
	t.Logf("after a complete probe stream: breaker %q until %v (clock %v)", st.Breaker, st.BreakerUntil.Sub(clock.Now()), clock.Now().Format(time.TimeOnly))
	assert.Equal(t, gwtransport.BreakerClosed, st.Breaker, "a half-open probe that is a complete stream closes the breaker")

	start := len(clock.Sleeps())
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	text, err = goopenaiStreamTextCtx(ctx, c)
	t.Logf("next request: %q err %v; cooling waits %v; attempts %v", text, err, clock.Sleeps()[start:], trail.Attempts())
	assert.NoError(t, err)
	assert.Empty(t, clock.Sleeps()[start:], "no wait for a target that just answered in full")
}

func goopenaiStreamTextCtx(ctx context.Context, c *goopenai.Client) (string, error) {
	return goopenaiStreamAsk(ctx, c, "Hi")
}

// goopenaiStreamAsk streams the answer to content through go-openai and
// returns the text read, with the stream's error (nil at a clean end).
func goopenaiStreamAsk(ctx context.Context, c *goopenai.Client, content string) (string, error) {
	s, err := c.CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{
		Model: "gateway", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: content}},
	})
	if err != nil {
		return "", err
	}
	defer s.Close()
	text := ""
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return text, nil
		}
		if err != nil {
			return text, err
		}
		for _, ch := range r.Choices {
			text += ch.Delta.Content
		}
	}
}

// ---------------------------------------------------------------------
// Time to first token: a role-only first chunk (what OpenAI sends at once),
// then silence. No token ever arrives; a healthy fallback exists.

func TestReviewRoleOnlyFirstChunkThenSilence(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk}, false)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, "from B") },
		gwtransport.WithContinuation(false),
		gwtransport.WithStreamTimeouts(200*time.Millisecond, 2*time.Second))
	start := time.Now()
	text, err := openaiStreamText(t, openaiVia(a, tr))
	took := time.Since(start)
	t.Logf("openai-go read %q err %v after %v; fallback requests %d", text, err, took.Round(time.Millisecond), len(b.requests()))
	assert.NoError(t, err, "no first token within the first-event limit: fail over at once")
	assert.Less(t, took, time.Second)
}

// ---------------------------------------------------------------------
// A continuation that starts with an SSE comment (a keep-alive, as
// OpenRouter sends) before its first content event: replayed into the
// caller's stream mid-answer.

func TestReviewContinuationKeepAlivePreludeOpenAI(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{": OPENROUTER PROCESSING\n\n",
				`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" is forty-two."},"finish_reason":null}]}` + "\n\n",
				`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n",
				"data: [DONE]\n\n"}, false)
		})
	text, err := openaiStreamText(t, openaiVia(a, tr))
	t.Logf("openai-go read %q (err %v); continuation requests %d", text, err, len(b.requests()))
	assert.NoError(t, err)
	assert.Equal(t, "The answer is forty-two.", text)
}

// A go-openai stream closed after [DONE] gives no verdict even with the
// breaker closed: successes never reset the consecutive-failures count, so
// failures far apart, with complete answers in between, open the breaker.
func TestReviewGoOpenAIStreamSuccessesNeverResetConsecutiveFailures(t *testing.T) {
	clock := newFakeClock()
	a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%4 == 1 { // 1, 5: a failed stream start; 2, 3, 4: complete answers
			w.WriteHeader(503)
			return
		}
		continuationOf(w, "Hello there.")
	})
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"},
		noEnv(), seeded(1), gwtransport.WithClock(clock), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 2, Cooldown: gwtransport.Duration(10 * time.Second)}))
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	c := goopenaiVia(a, tr)
	for i := 1; i <= 5; i++ {
		text, err := goopenaiStreamText(t, c)
		t.Logf("request %d: %q err %v; breaker %q", i, text, err, tr.Stats()[0].Breaker)
	}
	assert.Equal(t, gwtransport.BreakerClosed, tr.Stats()[0].Breaker,
		"two failures with three complete streams between them are not consecutive")
}

// ---------------------------------------------------------------------
// Attacks expected to hold (kept as regression tests).

func rawPost(t *testing.T, tr http.RoundTripper, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p-123456")
	req.Header.Set("Content-Type", "application/json")
	return (&http.Client{Transport: tr}).Do(req)
}

const plainBody = `{"model":"gateway","messages":[{"role":"user","content":"Hi"}]}`

func TestReviewVerifiedBodyTricksFailOver(t *testing.T) {
	gz := func(s string) []byte {
		var b strings.Builder
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return []byte(b.String())
	}
	cases := map[string]func(w http.ResponseWriter, r *http.Request){
		"content-length longer than the body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "500")
			_, _ = io.WriteString(w, completionB)
		},
		"gzip cut inside, Content-Encoding gzip": func(w http.ResponseWriter, r *http.Request) {
			z := gz(completionB)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(z)-12))
			_, _ = w.Write(z[:len(z)-12])
		},
		"gzip without Content-Encoding": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(gz(completionB))
		},
		"BOM": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "\ufeff"+completionB)
		},
		"chunked then reset mid-chunk": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, completionB[:40])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		},
		"complete JSON then a second value": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, completionB+`{"error":{"message":"x"}}`)
		},
		"case-variant Error member": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"Error":{"message":"overloaded","type":"server_error"},"choices":[]}`)
		},
		"escaped error member": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = io.WriteString(w, `{"\u0065rror":{"message":"overloaded"},"choices":[]}`)
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			h := h
			a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) { h(w, r) })
			c := openaiVia(a, tr)
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
			})
			require.NoError(t, err, "trail %v", trail.Attempts())
			assert.Equal(t, "from B", res.Choices[0].Message.Content)
			assert.Len(t, a.requests(), 3, "retried at the same target like a 5xx: %v", trail.Attempts())
			assert.Len(t, b.requests(), 1)
		})
	}
}

// Around the bound: at the bound verified, one byte over handed over
// whole, unverified.
func TestReviewVerifiedBoundEdges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
		over    int // bytes over the bound
	}{{"chunked at bound", true, 0}, {"chunked bound+1", true, 1}, {"length at bound", false, 0}, {"length bound+1", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			limit := int64(len(completionB))
			body := completionB + strings.Repeat(" ", tc.over)
			a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "application/json")
				if !tc.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				for i := 0; i < len(body); i += 7 {
					_, _ = io.WriteString(w, body[i:min(i+7, len(body))])
					if tc.chunked {
						w.(http.Flusher).Flush()
					}
				}
			})
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()),
				gwtransport.WithMaxVerifiedBody(limit))
			require.NoError(t, err)
			res, err := rawPost(t, tr, a.URL, plainBody)
			require.NoError(t, err)
			got, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			res.Body.Close()
			assert.Equal(t, body, string(got), "every byte once, in order")
			if tc.over == 0 {
				assert.Equal(t, int64(len(body)), res.ContentLength)
				assert.Empty(t, res.TransferEncoding)
			}
		})
	}
}

// A 200 content-policy refusal that echoes another provider's key (JSON
// escaped) is the caller's answer, with the key masked.
func TestReviewInBandRefusalEchoingKeyMasked(t *testing.T) {
	a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		// \u0073 is 's': "sk-b-secret-999" spelled with an escape, and the raw form.
		_, _ = io.WriteString(w, `{"error":{"message":"refused; keys \u0073k-b-secret-999 and sk-b-secret-999","type":"invalid_request_error","code":"content_policy_violation"}}`)
	})
	b := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "sk-b-secret-999"}))
	require.NoError(t, err)
	res, err := rawPost(t, tr, a.URL, plainBody)
	require.NoError(t, err)
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("status %d body %s", res.StatusCode, got)
	assert.Equal(t, 400, res.StatusCode)
	assert.Equal(t, "200", res.Header.Get(gwtransport.HeaderStatusRewritten))
	assert.Contains(t, string(got), `"code":"content_policy_violation"`)
	assert.NotContains(t, string(got), "secret-999")
	assert.NotContains(t, string(got), `\u0073k-b`)
	assert.Empty(t, b.requests(), "a refusal fails fast")
}

// A continuation target that refuses the prefill with a 400 (echoing a
// key): the caller's read gets the original break, never the 400.
func TestReviewPrefillRefusalNeverLeaks(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":{"message":"assistant prefill not supported key-b-123456","type":"invalid_request_error","code":"key-b-123456"}}`)
		})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	c := openaiVia(a, tr)
	s := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
	text := ""
	for s.Next() {
		for _, ch := range s.Current().Choices {
			text += ch.Delta.Content
		}
	}
	err := s.Err()
	s.Close()
	t.Logf("text %q err %v trail %v", text, err, trail.Attempts())
	assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.NotContains(t, err.Error(), "key-b-123456")
	assert.NotContains(t, err.Error(), "prefill")
	for _, at := range trail.Attempts() {
		assert.NotContains(t, at.String(), "key-b-123456")
	}
	assert.Len(t, b.requests(), 1)
}

// Keep-alives of every form, forever, before any content: the first-event
// limit fails over.
func TestReviewKeepAlivesForeverFailOver(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			for i := 0; ; i++ {
				_, err := io.WriteString(w, []string{": ping\n\n", "data:\n\n", "event: ping\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
					"data: {\"type\":\"ping\"}\n\n", "event: keepalive\n\n", "data: {\"type\":\"response.in_progress\"}\n\n"}[i%6])
				if err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, "from B") },
		gwtransport.WithStreamFirstEvent(300*time.Millisecond))
	start := time.Now()
	text, err := goopenaiStreamText(t, goopenaiVia(a, tr))
	t.Logf("%q err %v after %v", text, err, time.Since(start).Round(time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, "from B", text)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Len(t, b.requests(), 1)
}

// The first stream's id is spelled "ID" (go-openai reads it, encoding/json
// folding); the continuation's "id" is not replaced: the go-openai caller
// sees the id change mid-answer.
func TestReviewCaseVariantIDSplice(t *testing.T) {
	a, _, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{
				`data: {"ID":"chatcmpl-A","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n",
				`data: {"ID":"chatcmpl-A","choices":[{"index":0,"delta":{"content":"The answer"}}]}` + "\n\n"}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") })
	c := goopenaiVia(a, tr)
	s, err := c.CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{
		Model: "gateway", Stream: true, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}}})
	require.NoError(t, err)
	defer s.Close()
	ids := map[string]bool{}
	text := ""
	for {
		r, err := s.Recv()
		if err != nil {
			require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			break
		}
		ids[r.ID] = true
		for _, ch := range r.Choices {
			text += ch.Delta.Content
		}
	}
	t.Logf("text %q ids %v", text, ids)
	assert.Equal(t, "The answer", text, "never spliced: the decoders disagree on the id")
	assert.Len(t, ids, 1, "one answer, one id")
}

// Role-only first chunk, then silence, with the fallback declared capable:
// nothing but a role reached the caller, yet the rescue sends an empty
// assistant prefill (which Anthropic-style servers refuse) instead of the
// plain request.
func TestReviewRoleOnlyStallRescueSendsEmptyPrefill(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk}, false)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
		func(w http.ResponseWriter, r *http.Request, n int) {
			if p, ok := prefillOf(t, b2s(r)); ok && p == "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				_, _ = io.WriteString(w, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: all messages must have non-empty content except for the optional final assistant message"}}`)
				return
			}
			continuationOf(w, "from B")
		},
		gwtransport.WithStreamTimeouts(200*time.Millisecond, 500*time.Millisecond))
	_ = a
	text, err := openaiStreamText(t, openaiVia(a, tr))
	reqs := b.requests()
	t.Logf("openai-go read %q err %v; fallback got %d request(s): %v", text, err, len(reqs), reqs)
	assert.NoError(t, err, "nothing but a role was delivered: the fallback can answer the request as it is")
	assert.Equal(t, "from B", text)
}

var bodyOf sync.Map

func b2s(r *http.Request) string {
	v, _ := bodyOf.Load(r)
	s, _ := v.(string)
	return s
}

// The attempt timeout covers a verified body: a provider dribbling a byte
// at a time (never idle) past the attempt timeout is failed over; a
// caller's deadline during the same read never counts against it.
func TestReviewDribbledBodyAttemptTimeout(t *testing.T) {
	dribble := func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i < len(completionB); i++ {
			if _, err := io.WriteString(w, completionB[i:i+1]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	t.Run("attempt timeout fails over", func(t *testing.T) {
		a := hostile(t, dribble)
		b := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, completionB)
		})
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"},
			noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()), gwtransport.WithTimeout(300*time.Millisecond),
			gwtransport.WithBodyIdle(time.Second),
			gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}))
		require.NoError(t, err)
		start := time.Now()
		res, err := rawPost(t, tr, a.URL, plainBody)
		require.NoError(t, err)
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Logf("after %v: %s (target %s)", time.Since(start).Round(time.Millisecond), got, res.Header.Get(gwtransport.HeaderTarget))
		assert.Equal(t, completionB, string(got))
		assert.Equal(t, "fb/b-model", res.Header.Get(gwtransport.HeaderTarget))
		assert.Less(t, time.Since(start), 1500*time.Millisecond)
	})
	t.Run("caller deadline never blames", func(t *testing.T) {
		a := hostile(t, dribble)
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1}))
		require.NoError(t, err)
		for i := 0; i < 2; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/chat/completions", strings.NewReader(plainBody))
			req.Header.Set("Authorization", "Bearer key-p-123456")
			_, err = (&http.Client{Transport: tr}).Do(req)
			cancel()
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		}
		st := tr.Stats()[0]
		assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
		assert.Zero(t, st.Failures)
	})
}

// A lone high surrogate followed by an escaped letter: encoding/json reads
// "\ufffdA", openai-go (gjson) "\ufffd" (it consumes the next escape).
// The gateway takes one reading for the prefill; the openai-go caller
// read another.
func TestReviewSurrogateContentReadings(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk,
				`data: {"id":"chatcmpl-A","choices":[{"index":0,"delta":{"content":"x\ud83d\u0041y"}}]}` + "\n\n"}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " end.") })
	text, err := openaiStreamText(t, openaiVia(a, tr))
	// Decoders read a lone surrogate differently: never spliced.
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.NotContains(t, text, "end.")
	assert.Empty(t, b.requests(), "no continuation")
}

// Consecutive broken streams open the breaker even when each is rescued.
func TestReviewRescuedBrokenStreamsOpenBreaker(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") },
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 3, Cooldown: gwtransport.Duration(time.Minute)}))
	for i := 0; i < 3; i++ {
		text, err := openaiStreamText(t, openaiVia(a, tr))
		require.NoError(t, err)
		require.Equal(t, "The answer is forty-two.", text)
	}
	assert.Equal(t, gwtransport.BreakerOpen, tr.Stats()[0].Breaker)
	assert.Len(t, a.requests(), 3)
	assert.Len(t, b.requests(), 3)
}

// The continuation fails in band after some text: once spliced, the
// continuation is the stream, and its own failure is what the caller's read
// gets (as the README says), never a success.
func TestReviewContinuationInBandErrorSurfaces(t *testing.T) {
	a, _, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer")}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{
				`data: {"id":"chatcmpl-B","choices":[{"index":0,"delta":{"content":" is"}}]}` + "\n\n",
				`data: {"error":{"message":"The server is overloaded","type":"server_error","code":"overloaded"}}` + "\n\n",
			}, false)
		})
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","stream":true,"messages":[{"role":"user","content":"Hi"}]}`))
	req.Header.Set("Authorization", "Bearer key-p-123456")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("read %d bytes, err %v", len(got), err)
	var se *gwtransport.StreamError
	require.ErrorAs(t, err, &se, "the spliced part's own failure")
	assert.Equal(t, "overloaded", se.Code)
	assert.Contains(t, string(got), `" is"`, "the continuation's text before its failure was delivered")
}

// bytes.TrimSpace is not JSON's white space: data framed by U+00A0 (or
// \f, \v, U+0085) passes the gateway's json.Valid after trimming, but no
// SDK's decoder accepts it. As the first content event it commits the
// stream (no failover); the caller's SDK fails on it.
func TestReviewNonJSONWhiteSpaceFirstEvent(t *testing.T) {
	for _, sdk := range []string{"openai-go", "go-openai"} {
		t.Run(sdk, func(t *testing.T) {
			a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeEvents(w, []string{
					"data: \u00a0" + `{"id":"chatcmpl-A","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"}}]}` + "\u00a0\n\n",
					`data: {"id":"chatcmpl-A","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n",
					"data: [DONE]\n\n"}, false)
			})
			b := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, "from B") })
			tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), seeded(1),
				gwtransport.WithClock(newFakeClock()),
				gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}))
			require.NoError(t, err)
			var text string
			if sdk == "openai-go" {
				text, err = openaiStreamText(t, openaiVia(a, tr))
			} else {
				text, err = goopenaiStreamText(t, goopenaiVia(a, tr))
			}
			t.Logf("%s read %q err %v; fallback requests %d", sdk, text, err, len(b.requests()))
			require.NoError(t, err, "a first event no decoder can read is malformed: fail over")
			assert.Equal(t, "from B", text)
		})
	}
}

// The same after the commit, with a capable fallback: the event is
// delivered (and its text counted for the prefill) instead of breaking
// the stream and being rescued.
func TestReviewNonJSONWhiteSpaceAfterCommit(t *testing.T) {
	a, b, tr := rescueRig(t,
		func(w http.ResponseWriter, r *http.Request, n int) {
			writeEvents(w, []string{roleChunk, rvChunk("The answer"),
				"data: \u00a0" + `{"id":"chatcmpl-A","choices":[{"index":0,"delta":{"content":" is forty"}}]}` + "\n\n"}, true)
		},
		func(w http.ResponseWriter, r *http.Request, n int) { continuationOf(w, " is forty-two.") })
	text, err := openaiStreamText(t, openaiVia(a, tr))
	t.Logf("openai-go read %q err %v; continuation requests %v", text, err, b.requests())
	require.NoError(t, err, "a malformed event is never delivered: the stream breaks there and is rescued")
	assert.Equal(t, "The answer is forty-two.", text)
}

// A 200 with an error whose code echoes the caller's own key and the
// fallback's key: retried, failed over; no key in the reason header or
// the trail.
func TestReviewInBandErrorCodeEchoMasked(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"error":{"message":"bad","type":"server_error","code":"key-p-123456/key-b-123456"}}`)
	})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/chat/completions", strings.NewReader(plainBody))
	req.Header.Set("Authorization", "Bearer key-p-123456")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	reason := res.Header.Get(gwtransport.HeaderFallbackReason)
	t.Logf("reason %q trail %v", reason, trail.Attempts())
	assert.Equal(t, completionB, string(body))
	assert.NotContains(t, reason, "123456")
	for _, at := range trail.Attempts() {
		assert.NotContains(t, at.String(), "123456")
	}
	assert.Len(t, b.requests(), 1)
}

// Non-streamed requests are never held to the first-event limit.
func TestReviewNonStreamedSlowHeadersNotFirstEvent(t *testing.T) {
	a, b, tr := nonStreamRig(t, func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(400 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, strings.Replace(completionB, "from B", "from A", 1))
	})
	_ = gwtransport.Reconfigure(tr, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithStreamFirstEvent(100*time.Millisecond),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: b.URL, APIKey: "key-b-123456"}))
	res, err := rawPost(t, tr, a.URL, plainBody)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, string(body), "from A")
}

// CRLF line endings, every byte in its own write, `data:` without a space,
// comments and event: lines inside the events, role-only chunk then
// content in a second event: the splice is whole under both SDKs.
func TestReviewSpliceWireVariantsHold(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	bytewise := func(w http.ResponseWriter, s string) {
		for i := 0; i < len(s); i++ {
			_, _ = io.WriteString(w, s[i:i+1])
			w.(http.Flusher).Flush()
		}
	}
	for _, sdk := range []string{"openai-go", "go-openai"} {
		t.Run(sdk, func(t *testing.T) {
			a, b, tr := rescueRig(t,
				func(w http.ResponseWriter, r *http.Request, n int) {
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(200)
					bytewise(w, crlf(roleChunk+": c\n"+strings.Replace(rvChunk("The answer"), "data: ", "data:", 1)+
						"event: message\n"+rvChunk(" is")))
					panic(http.ErrAbortHandler)
				},
				func(w http.ResponseWriter, r *http.Request, n int) {
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(200)
					bytewise(w, crlf(`data: {"id":"chatcmpl-B","choices":[{"index":0,"delta":{"role":"assistant"}}]}`+"\n\n"+
						`data:{"id":"chatcmpl-B","choices":[{"index":0,"delta":{"content":" forty-two."}}]}`+"\n\n"+
						`data: {"id":"chatcmpl-B","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n: bye\ndata: [DONE]\n\n"))
				})
			var text string
			var err error
			if sdk == "openai-go" {
				text, err = openaiStreamText(t, openaiVia(a, tr))
			} else {
				text, err = goopenaiStreamText(t, goopenaiVia(a, tr))
			}
			reqs := b.requests()
			require.Len(t, reqs, 1)
			p, _ := prefillOf(t, reqs[0])
			require.NoError(t, err)
			assert.Equal(t, "The answer is", p)
			assert.Equal(t, "The answer is forty-two.", text)
		})
	}
}

// Control for TestReviewGoOpenAIProbeStreamNeverClosesBreaker: the same
// probe read by openai-go (which drains the body to its end) closes it.
func TestReviewOpenAIProbeStreamClosesBreakerControl(t *testing.T) {
	clock := newFakeClock()
	a := hostile(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		continuationOf(w, "Hello there.")
	})
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"},
		noEnv(), seeded(1), gwtransport.WithClock(clock), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	require.NoError(t, err)
	c := openaiVia(a, tr)
	_, err = c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
	require.Error(t, err)
	clock.mu.Lock()
	clock.now = clock.now.Add(11 * time.Second)
	clock.mu.Unlock()
	text, err := openaiStreamText(t, c)
	require.NoError(t, err)
	require.Equal(t, "Hello there.", text)
	assert.Equal(t, gwtransport.BreakerClosed, tr.Stats()[0].Breaker)
}
