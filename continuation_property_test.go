package gwtransport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// The ways a provider's stream breaks in the property test.
const (
	brkNone        = iota
	brkCutBetween  // the connection drops between two events
	brkCutMidLine  // it drops in the middle of a data line
	brkCutMidEvent // it drops after a whole data line, before its blank line
	brkMalformed   // a data line that is not JSON
	brkStall       // nothing more, the connection open
	brkAfterFinish // the finish chunk, then the connection drops: complete
	brkKinds
)

// propWorld is the state the three providers of the property test share.
type propWorld struct {
	mu     sync.Mutex
	rng    *rand.Rand
	reply  string
	plan   []int // the break of each request, in order
	reject bool  // every prefill is refused (400)
	// Of the first request: where it broke and what it had sent whole.
	firstAt     int
	firstTokens []string
	firstRole   bool
}

func (w *propWorld) handler(name string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		_ = json.Unmarshal(body, &req)
		last := req.Messages[len(req.Messages)-1]
		w.mu.Lock()
		rest := w.reply
		if last.Role == "assistant" {
			if w.reject {
				w.mu.Unlock()
				rw.Header().Set("Content-Type", "application/json")
				rw.WriteHeader(400)
				_, _ = io.WriteString(rw, `{"error":{"message":"assistant prefill is not supported","type":"invalid_request_error"}}`)
				return
			}
			// The rest after the prefill when it is a prefix, else the
			// whole reply (the test then sees the duplicate).
			rest = strings.TrimPrefix(rest, last.Content)
		}
		first := last.Role != "assistant"
		kind := brkNone
		if len(w.plan) > 0 {
			kind, w.plan = w.plan[0], w.plan[1:]
		}
		toks := randomTokens(w.rng, rest)
		at := w.rng.IntN(len(toks) + 1)
		role := w.rng.IntN(3) != 0 // most providers open with a role-only chunk
		if !first && kind != brkNone && kind != brkAfterFinish {
			// A continuation breaks after its commit point (a token that
			// is not empty: a role-only chunk commits nothing), so that
			// each break is rescued anew. One that broke before it would
			// be a failed attempt of the same rescue, which tries each
			// capable target once.
			k := slices.IndexFunc(toks, func(s string) bool { return s != "" })
			switch {
			case k < 0:
				kind = brkNone
			case at <= k:
				at = k + 1
			}
		}
		if first && w.firstTokens == nil {
			w.firstAt, w.firstTokens, w.firstRole = at, toks, role
		}
		w.mu.Unlock()

		rw.Header().Set("Content-Type", "text/event-stream")
		rw.WriteHeader(200)
		fl := rw.(http.Flusher)
		id := fmt.Sprintf("chatcmpl-%s-%d", name, time.Now().UnixNano())
		write := func(s string) {
			_, _ = io.WriteString(rw, s)
			fl.Flush()
		}
		chunk := func(delta string, finish string) string {
			return `data: {"id":"` + id + `","object":"chat.completion.chunk","model":"` + name + `","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}` + "\n\n"
		}
		content := func(s string) string {
			q, _ := json.Marshal(s)
			return chunk(`{"content":`+string(q)+`}`, "null")
		}
		if role {
			write(chunk(`{"role":"assistant","content":""}`, "null"))
		}
		for i := 0; i <= len(toks); i++ {
			if i == at {
				switch kind {
				case brkCutBetween:
					panic(http.ErrAbortHandler)
				case brkCutMidLine:
					write(`data: {"id":"` + id + `","choices":[{"index":0,"delta":{"content":"LEAK`)
					panic(http.ErrAbortHandler)
				case brkCutMidEvent:
					write(strings.TrimSuffix(content("LEAK"), "\n"))
					panic(http.ErrAbortHandler)
				case brkMalformed:
					write("data: {\"choices\": LEAK\n\n")
				case brkStall:
					<-r.Context().Done()
					return
				}
			}
			if i < len(toks) {
				write(content(toks[i]))
			}
		}
		write(chunk(`{}`, `"stop"`))
		if kind == brkAfterFinish {
			panic(http.ErrAbortHandler)
		}
		write(`data: {"id":"` + id + `","object":"chat.completion.chunk","model":"` + name + `","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n")
		write("data: [DONE]\n\n")
	}
}

// randomTokens splits s at random rune boundaries, with empty tokens
// among them.
func randomTokens(rng *rand.Rand, s string) []string {
	rs := []rune(s)
	var out []string
	for len(rs) > 0 {
		if rng.IntN(6) == 0 {
			out = append(out, "")
		}
		n := 1 + rng.IntN(min(len(rs), 5))
		out = append(out, string(rs[:n]))
		rs = rs[n:]
	}
	return out
}

// randomReply draws text with escapes, quotes, control characters and
// multi-byte runes.
func randomReply(rng *rand.Rand) string {
	alphabet := []rune("ab Z0 \"\\\n\t/<>&é日😀\u2028\x00\x1f}{[]:,")
	n := rng.IntN(40)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// TestContinuationProperty: random replies, random token splits, random
// breaks (between events, in the middle of a line, after a data line but
// before its blank line, a malformed event, a stall, after the finish but
// before [DONE]) across three capable targets. The caller's text is never
// duplicated nor missing anything: it is the whole reply when every break
// was rescued; when every continuation is refused, the read fails with the
// original break's error, after exactly the content of the events sent
// whole before it.
func TestContinuationProperty(t *testing.T) {
	w := &propWorld{}
	var urls []string
	for _, name := range []string{"p0", "p1", "p2"} {
		s := httptest.NewServer(w.handler(name))
		t.Cleanup(s.Close)
		urls = append(urls, s.URL+"/v1")
	}
	iterations := 300
	if testing.Short() {
		iterations = 60
	}
	for it := 0; it < iterations; it++ {
		seed := uint64(it)
		rng := rand.New(rand.NewPCG(seed, 77))
		w.mu.Lock()
		w.rng = rand.New(rand.NewPCG(seed, 78))
		w.reply = randomReply(rng)
		w.reject = rng.IntN(4) == 0
		w.plan, w.firstTokens = nil, nil
		for n := rng.IntN(5); n > 0; n-- {
			k := 1 + rng.IntN(brkKinds-1)
			if k == brkStall && rng.IntN(3) != 0 {
				k = brkCutBetween // stalls cost real milliseconds: fewer of them
			}
			w.plan = append(w.plan, k)
		}
		plan := append([]int(nil), w.plan...)
		reject := w.reject
		w.mu.Unlock()

		modes := []gwtransport.Continuation{gwtransport.ContinuePrefill, gwtransport.ContinuePrefix, gwtransport.ContinueFinalMessage}
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "p1/m1", "p2/m2"}, noEnv(),
			gwtransport.WithClock(newFakeClock()),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: urls[1], APIKey: "k"}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "p2", BaseURL: urls[2], APIKey: "k"}),
			gwtransport.WithStreamTimeouts(200*time.Millisecond, 25*time.Millisecond),
			gwtransport.WithStreamFinishGrace(20*time.Millisecond),
			gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{
				"openai/gpt-4o": modes[rng.IntN(3)], "p1/m1": modes[rng.IntN(3)], "p2/m2": modes[rng.IntN(3)],
			}))
		require.NoError(t, err)
		ctx := fmt.Sprintf("iteration %d: reply %q plan %v reject %v", it, w.reply, plan, reject)

		var text string
		var readErr error
		if it%3 == 0 {
			// openai-go, with its accumulator.
			c := openai.NewClient(option.WithBaseURL(urls[0]), option.WithAPIKey("k"), option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
			s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
			acc := openai.ChatCompletionAccumulator{}
			for s.Next() {
				require.True(t, acc.AddChunk(s.Current()), ctx)
				for _, ch := range s.Current().Choices {
					text += ch.Delta.Content
				}
			}
			readErr = s.Err()
			s.Close()
		} else {
			req, _ := http.NewRequest(http.MethodPost, urls[0]+"/chat/completions", strings.NewReader(`{"model":"gateway","stream":true,"messages":[{"role":"user","content":"go"}]}`))
			req.Header.Set("Authorization", "Bearer k")
			res, err := (&http.Client{Transport: tr}).Do(req)
			require.NoError(t, err, ctx)
			got := readSSE(res.Body)
			res.Body.Close()
			text, readErr = got.text, got.err
			require.LessOrEqual(t, got.done, 1, ctx)
			if readErr == nil {
				if !slices.Contains(plan, brkAfterFinish) {
					require.Equal(t, 1, got.done, ctx)
				}
				require.Len(t, got.ids, 1, ctx)
			}
			require.NotContains(t, text, "LEAK", ctx)
		}
		w.mu.Lock()
		reply, firstAt, firstTokens := w.reply, w.firstAt, w.firstTokens
		w.mu.Unlock()
		// Whatever happened, the text is never duplicated nor missing a
		// part: it is a prefix of the reply, the whole of it on success.
		require.True(t, strings.HasPrefix(reply, text), "%s: got %q", ctx, text)
		if readErr == nil {
			require.Equal(t, reply, text, ctx)
		}
		first := brkNone
		if len(plan) > 0 {
			first = plan[0]
		}
		if first != brkNone && first != brkAfterFinish && strings.Join(firstTokens[:firstAt], "") == "" {
			// The first stream broke before any content event (a role-only
			// chunk and chunks of empty content are none): an ordinary
			// failover, before the commit point.
			continue
		}
		if !reject || first == brkNone || first == brkAfterFinish {
			if readErr == nil {
				require.Equal(t, reply, text, ctx)
				continue
			}
			// A break at the head of the first stream, before any content
			// event, is an ordinary failover: only then may a later break
			// go unrescued when the attempts ran out; never here.
			require.NoError(t, readErr, ctx)
			continue
		}
		if strings.Join(firstTokens[:firstAt], "") == "" {
			// Nothing delivered but a role: the continuation is the plain
			// request, which a target refusing prefills answers too.
			continue
		}
		// Every continuation is refused: the first break is final.
		require.Error(t, readErr, ctx)
		switch first {
		case brkCutBetween, brkCutMidLine, brkCutMidEvent:
			require.ErrorIs(t, readErr, gwtransport.ErrStreamTruncated, ctx)
		case brkMalformed:
			require.ErrorIs(t, readErr, gwtransport.ErrStreamMalformed, ctx)
		case brkStall:
			require.ErrorIs(t, readErr, gwtransport.ErrStreamIdle, ctx)
		}
		require.Equal(t, strings.Join(firstTokens[:firstAt], ""), text, ctx)
	}
}
