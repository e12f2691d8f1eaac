package gwtransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

const soakReply = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty"
const soakMaxAttempts = 5

// soakLocal is a third provider with a key pool, written by hand: random
// faults per request, continuation of a trailing assistant message
// ("prefill"), sometimes refused.
type soakLocal struct {
	mu   sync.Mutex
	rng  *rand.Rand
	ids  map[string]int
	srv  *httptest.Server
	stop chan struct{}
}

func (l *soakLocal) roll() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.IntN(14)
}

func (l *soakLocal) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.ids[r.Header.Get("X-Client-Request-Id")]++
	l.mu.Unlock()
	var req struct {
		Stream   bool `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(body, &req)
	rest := soakReply
	prefill := false
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "assistant" {
		prefill = true
		if strings.HasPrefix(soakReply, req.Messages[n-1].Content) {
			rest = soakReply[len(req.Messages[n-1].Content):]
		}
	}
	f := l.roll()
	if prefill && f == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":{"message":"prefill not supported","type":"invalid_request_error"}}`)
		return
	}
	switch f {
	case 1:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}`)
		return
	case 2:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After-Ms", "5")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}`)
		return
	case 3:
		w.WriteHeader(503)
		return
	}
	if !req.Stream {
		b, _ := json.Marshal(map[string]any{"id": "l1", "object": "chat.completion", "created": 1, "model": "m",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": rest}, "finish_reason": "stop"}}})
		switch f {
		case 4: // in-band error in a 200
			b = []byte(`{"error":{"message":"overloaded","type":"server_error","code":"server_error"}}`)
		case 5: // garbled body with the right length
			b = append([]byte(nil), b...)
			b[len(b)/2] = '\x01'
		case 6: // cut mid-body
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(200)
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			_ = c.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	ev := func(s string) { _, _ = io.WriteString(w, "data: "+s+"\n\n"); fl.Flush() }
	ev(`{"id":"loc","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	toks := strings.SplitAfter(rest, " ")
	for i, tk := range toks {
		if tk == "" {
			continue
		}
		if i == 2 {
			switch f {
			case 7: // cut inside an event
				_, _ = io.WriteString(w, `data: {"id":"loc","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"GARB`)
				fl.Flush()
				hj, _ := w.(http.Hijacker)
				c, _, _ := hj.Hijack()
				_ = c.Close()
				return
			case 8: // malformed event
				ev(`{not json`)
			case 9: // stall
				select {
				case <-r.Context().Done():
				case <-l.stop:
				}
				return
			case 10: // in-band error mid-stream
				ev(`{"error":{"message":"overloaded","type":"server_error","code":"server_error"}}`)
				return
			}
		}
		b, _ := json.Marshal(tk)
		ev(`{"id":"loc","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}`)
	}
	ev(`{"id":"loc","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	fl.Flush()
}

// randomFault draws a gatewaytest fault.
func randomFault(rng *rand.Rand) gatewaytest.Fault {
	switch rng.IntN(16) {
	case 0:
		return gatewaytest.Fault{Status: 429, Code: "rate_limit_exceeded", Type: "rate_limit_error", Message: "slow"}
	case 1:
		return gatewaytest.Fault{Status: 429, Code: "rate_limit_exceeded", Type: "rate_limit_error", Message: "slow", Header: map[string]string{"Retry-After-Ms": "10"}}
	case 2:
		return gatewaytest.Fault{Status: 500, Type: "server_error", Message: "boom"}
	case 3:
		return gatewaytest.Fault{Reset: true}
	case 4:
		return gatewaytest.Fault{Hang: true}
	case 5:
		return gatewaytest.Fault{FirstEventDelay: 250 * time.Millisecond}
	case 6:
		return gatewaytest.Fault{CutAfter: 1 + rng.IntN(15)}
	case 7:
		return gatewaytest.Fault{StallAfter: 1 + rng.IntN(15)}
	case 8:
		return gatewaytest.Fault{MalformedAt: 1 + rng.IntN(15)}
	case 9:
		return gatewaytest.Fault{BodyCutAfter: 1 + rng.IntN(200)}
	case 10:
		return gatewaytest.Fault{BodyStallAfter: 1 + rng.IntN(200)}
	case 11:
		return gatewaytest.Fault{Status: 200, Body: `{"error":{"message":"overloaded","type":"server_error","code":"server_error"}}`}
	case 12:
		return gatewaytest.Fault{ErrorEvent: true}
	case 13:
		return gatewaytest.Fault{Delay: 20 * time.Millisecond}
	}
	return gatewaytest.Fault{}
}

type soakOutcome struct {
	mode    int
	id      string
	client  string
	stream  bool
	text    string
	err     error
	trail   []gwtransport.Attempt
	header  http.Header
	trailer http.Header
}

// TestReviewSoak drives many concurrent requests through the README's
// recommended configuration (scaled to milliseconds) with random faults.
func TestReviewSoak(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runSoak(t, seed, false) })
		t.Run(fmt.Sprint("recommended-", seed), func(t *testing.T) { runSoak(t, seed, true) })
	}
}

func runSoak(t *testing.T, seed uint64, literal bool) {
	rng := rand.New(rand.NewPCG(seed, 99))
	primary := server(t, "primary", "key-p", gatewaytest.WithReply(soakReply))
	fallback := server(t, "fallback", "key-f", gatewaytest.WithReply(soakReply), gatewaytest.WithContinuation("prefix"))
	local := &soakLocal{rng: rand.New(rand.NewPCG(seed, 7)), ids: map[string]int{}, stop: make(chan struct{})}
	local.srv = httptest.NewServer(http.HandlerFunc(local.handle))
	defer local.srv.Close()
	defer close(local.stop)

	const N = 240
	for i := 0; i < 4*N; i++ {
		primary.Enqueue(randomFault(rng))
		fallback.Enqueue(randomFault(rng))
	}

	targets := []string{"openai/gpt-4o", "mistral/mistral-large-latest", "local/m"}
	opts := func() []gwtransport.Option {
		return []gwtransport.Option{
			noEnv(), seeded(seed),
			gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{
				"mistral/mistral-large-latest": gwtransport.ContinuePrefix,
				"local/m":                      gwtransport.ContinuePrefill,
			}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: fallback.URL, APIKey: "key-f"}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.srv.URL, APIKeys: []string{"k1", "k2"}, KeyInterval: gwtransport.Duration(15 * time.Millisecond)}),
			gwtransport.WithMaxAttempts(soakMaxAttempts),
			gwtransport.WithTimeout(300 * time.Millisecond),
			gwtransport.WithStreamFirstEvent(120 * time.Millisecond),
			gwtransport.WithStreamIdle(100 * time.Millisecond),
			gwtransport.WithBodyIdle(100 * time.Millisecond),
			gwtransport.WithStreamFinishGrace(50 * time.Millisecond),
			gwtransport.WithBackoff(gwtransport.Backoff{Initial: 2 * time.Millisecond, Multiplier: 2, Max: 10 * time.Millisecond, Jitter: 0.25}),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 3, Cooldown: gwtransport.Duration(40 * time.Millisecond)}),
			gwtransport.WithMaxRetryWait(150 * time.Millisecond),
			gwtransport.WithMaxRest(150 * time.Millisecond),
		}
	}

	maxAttempts := soakMaxAttempts
	if literal {
		// The README's recommended configuration as it is: two targets, the
		// fallback ContinuePrefix, every other setting at its default but the
		// durations (scaled to milliseconds, as TestCrashSuite does) and the
		// clock of the waits (backoff, breaker cooldown: fake).
		targets = []string{"openai/gpt-4o", "mistral/mistral-large-latest"}
		maxAttempts = 10
		clock := newFakeClock()
		opts = func() []gwtransport.Option {
			return []gwtransport.Option{
				noEnv(), seeded(seed), gwtransport.WithClock(clock),
				gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{
					"mistral/mistral-large-latest": gwtransport.ContinuePrefix,
				}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: fallback.URL, APIKey: "key-f"}),
				gwtransport.WithTimeout(300 * time.Millisecond),
				gwtransport.WithStreamFirstEvent(120 * time.Millisecond),
				gwtransport.WithStreamIdle(100 * time.Millisecond),
				gwtransport.WithBodyIdle(100 * time.Millisecond),
				gwtransport.WithStreamFinishGrace(50 * time.Millisecond),
			}
		}
	}
	var hookMu sync.Mutex
	hooked := 0
	hook := gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { hookMu.Lock(); hooked++; hookMu.Unlock() })
	oc := openaiClient(primary, "key-p")
	mgr := mustInit(t, oc, targets, append(opts(), hook)...)
	tr, err := gwtransport.NewTransport(nil, targets, append(opts(), hook)...)
	require.NoError(t, err)
	defer tr.CloseIdleConnections()
	cfg := goopenai.DefaultConfig("key-p")
	cfg.BaseURL = primary.URL
	hdr := &idTransport{base: tr}
	cfg.HTTPClient = &http.Client{Transport: hdr}
	gc := goopenai.NewClientWithConfig(cfg)

	var wg sync.WaitGroup
	results := make([]soakOutcome, N)
	sem := make(chan struct{}, 32)
	for i := 0; i < N; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			id := fmt.Sprintf("req-%d-%d", seed, i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ctx, trail := gwtransport.ContextWithTrail(ctx)
			ctx = context.WithValue(ctx, idKey{}, id)
			o := soakOutcome{id: id, stream: i%2 == 0}
			if o.stream {
				o.mode = (i / 4) % 4 // 0, 1: normal; 2: slow reader; 3: cancels mid-stream
				if o.mode < 2 {
					o.mode = 0
				} else {
					o.mode--
				}
			}
			if i%4 < 2 {
				o.client = "openai-go"
				o.text, o.header, o.trailer, o.err = soakOpenAI(ctx, oc, id, o.stream, o.mode, cancel)
			} else {
				o.client = "go-openai"
				o.text, o.err = soakGoOpenAI(ctx, gc, o.stream, o.mode, cancel)
				o.header, o.trailer = hdr.get(id)
			}
			o.trail = trail.Attempts()
			results[i] = o
		}(i)
	}
	wg.Wait()

	// server-side attempts per request
	sent := map[string]int{}
	for _, s := range []*gatewaytest.Server{primary, fallback} {
		for _, r := range s.Journal() {
			sent[r.Header.Get("X-Client-Request-Id")]++
		}
	}
	local.mu.Lock()
	for k, v := range local.ids {
		sent[k] += v
	}
	local.mu.Unlock()

	var ok, failed, spliced, noTarget, cancelled, cancelledComplete int
	totalSent, allTimeouts := 0, 0
	errKinds := map[string]int{}
	for _, o := range results {
		totalSent += sent[o.id]
		tag := fmt.Sprintf("%s %s stream=%v", o.id, o.client, o.stream)
		if o.mode == 2 {
			cancelled++
			if o.err == nil && o.text == soakReply {
				cancelledComplete++
			}
		}
		if o.err == nil {
			ok++
			if o.text != soakReply {
				t.Errorf("%s: success with wrong text %q; trail %v", tag, o.text, o.trail)
			}
		} else {
			failed++
			k := o.err.Error()
			if len(k) > 60 {
				k = k[:60]
			}
			errKinds[k]++
			var ge *gwtransport.Error
			// (errors.Is(o.err, ErrNoTarget) also holds when a sent request
			// recorded a target skipped for its keys' KeyInterval; then
			// RetryAfterOf is false: only the Stop case is promised.)
			if errors.As(o.err, &ge) && errors.Is(ge.Stop, gwtransport.ErrNoTarget) {
				noTarget++
				if d, has := gwtransport.RetryAfterOf(o.err); !has || d <= 0 {
					t.Errorf("%s: ErrNoTarget without RetryAfter: %v %v (%v)", tag, d, has, o.err)
				}
			}
		}
		if sent[o.id] > maxAttempts {
			t.Errorf("%s: %d attempts reached providers (max %d); trail %v", tag, sent[o.id], maxAttempts, o.trail)
		}
		// the trail: every attempt sent, plus one record per committed break
		// (same target and try as the attempt before it, status 200, an error)
		sentInTrail, timeouts, skipped := 0, 0, 0
		for j, a := range o.trail {
			isBreak := j > 0 && a.Status == 200 && a.Err != nil && o.trail[j-1].Target == a.Target && o.trail[j-1].Try == a.Try
			switch {
			case isBreak:
			case errors.Is(a.Err, gwtransport.ErrNoTarget):
				skipped++ // a target skipped unsent (keys within KeyInterval)
			default:
				sentInTrail++
				if a.Status == 0 && a.Err != nil && strings.Contains(a.Err.Error(), "timed out") {
					timeouts++ // may time out before the server's handler saw it
				}
			}
		}
		allTimeouts += timeouts
		if sentInTrail < sent[o.id] || sentInTrail-sent[o.id] > timeouts {
			t.Errorf("%s: trail shows %d attempts sent (%d timeouts), providers saw %d; trail %v", tag, sentInTrail, timeouts, sent[o.id], o.trail)
		}
		cont := 0
		for _, a := range o.trail {
			if a.Continued {
				cont++
			}
		}
		if cont > 0 {
			spliced++
		}
		if o.client == "openai-go" && o.stream && cont > 0 && o.err == nil {
			last := ""
			for _, a := range o.trail {
				last = a.Target
			}
			if o.trailer.Get("X-Gwtransport-Target") != last || o.trailer.Get("X-Gwtransport-Attempts") == "" {
				t.Errorf("%s: spliced stream's trailer %v, trail %v", tag, o.trailer, o.trail)
			}
		}
		// the final header says how many attempts were sent
		h := o.trailer.Get("X-Gwtransport-Attempts")
		if h == "" {
			h = o.header.Get("X-Gwtransport-Attempts")
		}
		// go-openai stops at [DONE] and closes: the trailer of a spliced
		// stream is never read (documented: the trail is where it shows).
		if h != "" && o.err == nil && !(o.client == "go-openai" && o.stream && cont > 0) {
			if n, _ := strconv.Atoi(h); n != sentInTrail {
				t.Errorf("%s: X-Gwtransport-Attempts %s (trailer %q) but %d sent; trail %v", tag, h, o.trailer.Get("X-Gwtransport-Attempts"), sent[o.id], o.trail)
			}
		}
	}
	trailTotal := 0
	for _, o := range results {
		trailTotal += len(o.trail)
	}
	hookMu.Lock()
	if hooked != trailTotal {
		t.Errorf("WithOnAttempt saw %d attempts, the trails hold %d", hooked, trailTotal)
	}
	hookMu.Unlock()
	var att, succ, fail int64
	for _, s := range append(mgr.Stats(), tr.Stats()...) {
		att += s.Attempts
		succ += s.Successes
		fail += s.Failures
		require.GreaterOrEqual(t, s.Attempts, s.Successes+s.Failures, s.Target)
	}
	t.Logf("seed %d: ok %d failed %d (no target %d) spliced %d; sent %d; stats attempts %d successes %d failures %d; errors %v",
		seed, ok, failed, noTarget, spliced, totalSent, att, succ, fail, errKinds)
	if att < int64(totalSent) || att-int64(totalSent) > int64(allTimeouts) {
		t.Errorf("Stats attempts %d != attempts sent %d", att, totalSent)
	}
	t.Logf("cancelled %d (of which complete %d)", cancelled, cancelledComplete)
	if succ != int64(ok) {
		t.Errorf("Stats successes %d != successful requests %d", succ, ok)
	}
}

type idKey struct{}

// idTransport tags each go-openai request and keeps its response headers and trailers.
type idTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	res  map[string]*http.Response
}

func (t *idTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	id, _ := r.Context().Value(idKey{}).(string)
	r = r.Clone(r.Context())
	r.Header.Set("X-Client-Request-Id", id)
	res, err := t.base.RoundTrip(r)
	if res != nil {
		t.mu.Lock()
		if t.res == nil {
			t.res = map[string]*http.Response{}
		}
		t.res[id] = res
		t.mu.Unlock()
	}
	return res, err
}

func (t *idTransport) get(id string) (http.Header, http.Header) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.res[id]; r != nil {
		return r.Header, r.Trailer
	}
	return nil, nil
}

func soakOpenAI(ctx context.Context, c *openai.Client, id string, stream bool, mode int, cancel func()) (string, http.Header, http.Header, error) {
	var raw *http.Response
	opts := []option.RequestOption{option.WithHeader("X-Client-Request-Id", id), option.WithResponseInto(&raw)}
	hdrs := func() (http.Header, http.Header) {
		if raw == nil {
			return nil, nil
		}
		return raw.Header, raw.Trailer
	}
	if !stream {
		res, err := c.Chat.Completions.New(ctx, chatParams("gateway"), opts...)
		h, tr := hdrs()
		if err != nil {
			return "", h, tr, err
		}
		return res.Choices[0].Message.Content, h, tr, nil
	}
	s := c.Chat.Completions.NewStreaming(ctx, chatParams("gateway"), opts...)
	defer s.Close()
	text := ""
	var acc openai.ChatCompletionAccumulator
	n := 0
	for s.Next() {
		n++
		soakPace(n, mode, cancel)
		ch := s.Current()
		if !acc.AddChunk(ch) {
			h, tr := hdrs()
			return text, h, tr, errors.New("accumulator refused " + ch.RawJSON())
		}
		for _, c := range ch.Choices {
			text += c.Delta.Content
		}
	}
	h, tr := hdrs()
	return text, h, tr, s.Err()
}

func soakGoOpenAI(ctx context.Context, c *goopenai.Client, stream bool, mode int, cancel func()) (string, error) {
	req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}}
	if !stream {
		res, err := c.CreateChatCompletion(ctx, req)
		if err != nil {
			return "", err
		}
		return res.Choices[0].Message.Content, nil
	}
	s, err := c.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return "", err
	}
	defer s.Close()
	text := ""
	n := 0
	for {
		n++
		soakPace(n, mode, cancel)
		ch, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return text, nil
		}
		if err != nil {
			return text, err
		}
		for _, c := range ch.Choices {
			text += c.Delta.Content
		}
	}
}

// soakPace: mode 1 pauses 150 ms (longer than the idle limit) before the
// 3rd chunk; mode 2 cancels the request before the 4th.
func soakPace(n, mode int, cancel func()) {
	switch {
	case mode == 1 && n == 3:
		time.Sleep(150 * time.Millisecond)
	case mode == 2 && n == 4:
		cancel()
	}
}
