package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

// rv2Server answers each request with the next scripted body (the last
// one repeats) and records the request bodies.
type rv2Server struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	script []string
	ctype  string
	status int
}

func newRV2Server(t *testing.T, script ...string) *rv2Server {
	s := &rv2Server{script: script, ctype: "text/event-stream", status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		i := len(s.bodies)
		s.bodies = append(s.bodies, string(b))
		out := s.script[min(i, len(s.script)-1)]
		ct, st := s.ctype, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(st)
		io.WriteString(w, out)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rv2Server) reqs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func rv2Transport(t *testing.T, a, b *rv2Server, opts ...gwtransport.Option) *gwtransport.Transport {
	o := append([]gwtransport.Option{noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, APIKey: "ka"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, APIKey: "kb"}),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"pb/m2": gwtransport.ContinuePrefix}),
	}, opts...)
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m1", "pb/m2"}, o...)
	require.NoError(t, err)
	return tr
}

func rv2Raw(t *testing.T, tr *gwtransport.Transport, url, body string) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer ka")
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

const rv2Body = `{"model":"gateway","stream":true,"messages":[{"role":"user","content":"Hi"}]}`

// A continuation's leading chunk that has a role-only delta but a choice
// member that is not empty (Azure's content_filter_results with a filter
// hit) is not role-only under the README's definition ("other choice
// members empty or {}"), and stream.go's roleOnly agrees (it commits the
// continuation on it). But continuation.go's chunkContent ignores unknown
// choice members, so eventEnd drops the chunk: the caller never gets it.
func TestRV2ContinuationDropsLeadingChunkWithChoiceMembers(t *testing.T) {
	aScript := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
	lead := `{"id":"c2","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null,"content_filter_results":{"hate":{"filtered":true,"severity":"high"}}}]}`
	bScript := "data: " + lead + "\n\n" +
		"data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	a := newRV2Server(t, aScript)
	b := newRV2Server(t, bScript)
	tr := rv2Transport(t, a, b)
	_, out, err := rv2Raw(t, tr, a.URL, rv2Body)
	require.NoError(t, err)
	require.Len(t, b.reqs(), 1, "continued at pb")
	assert.Contains(t, out, `"content_filter_results":{"hate":{"filtered":true,"severity":"high"}}`,
		"the continuation's leading chunk carries a content filter result; it is not role-only; got:\n%s", out)

	// go-openai's view: the filter result never reaches the caller.
	a2 := newRV2Server(t, aScript)
	b2 := newRV2Server(t, bScript)
	tr2 := rv2Transport(t, a2, b2)
	st, err := goopenaiAt(a2.URL, "ka", tr2).CreateChatCompletionStream(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway",
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}}})
	require.NoError(t, err)
	defer st.Close()
	filtered, text := false, ""
	for {
		r, err := st.Recv()
		if err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		for _, ch := range r.Choices {
			text += ch.Delta.Content
			filtered = filtered || ch.ContentFilterResults.Hate.Filtered
		}
	}
	assert.Equal(t, "Hello", text)
	assert.True(t, filtered, "go-openai caller never sees the continuation's content filter hit")
}

// Legitimate "n" and "stream" spellings are not refused.
func TestRV2NStreamLegitSpellings(t *testing.T) {
	ok := `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`
	for _, body := range []string{
		`{"model":"gateway","n":1e0,"messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"gateway","n":1.0,"messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"gateway","n" : 1 ,"stream" :  false ,"messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"gateway","n":null,"stream":null,"messages":[{"role":"user","content":"Hi"}]}`,
		"{\"model\":\"gateway\",\"stream\":\tfalse\n,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
	} {
		a := newRV2Server(t, ok)
		a.ctype = "application/json"
		b := newRV2Server(t, ok)
		b.ctype = "application/json"
		tr := rv2Transport(t, a, b)
		res, out, err := rv2Raw(t, tr, a.URL, body)
		require.NoError(t, err, body)
		assert.Equal(t, 200, res.StatusCode, body)
		assert.Equal(t, ok, out, body)
	}
}

// A provider's forged gateway headers on an in-band error handed over.
func TestRV2InBandForgedHeaders(t *testing.T) {
	refusal := `{"error":{"message":"flagged","type":"invalid_request_error","code":"content_policy_violation"}}`
	a := newRV2Server(t, refusal)
	a.ctype = "application/json"
	a.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Gwtransport-Status-Rewritten", "204")
		w.Header().Set("X-Gwtransport-Target", "evil/x")
		w.Header().Set("X-Should-Retry", "true")
		w.WriteHeader(200)
		io.WriteString(w, refusal)
	})
	b := newRV2Server(t, refusal)
	tr := rv2Transport(t, a, b)
	res, out, err := rv2Raw(t, tr, a.URL, `{"model":"gateway","messages":[{"role":"user","content":"Hi"}]}`)
	require.NoError(t, err)
	assert.Equal(t, 400, res.StatusCode)
	assert.Equal(t, refusal, out)
	assert.Equal(t, "200", res.Header.Get("X-Gwtransport-Status-Rewritten"))
	assert.Equal(t, []string{"200"}, res.Header.Values("X-Gwtransport-Status-Rewritten"))
	assert.Equal(t, "pa/m1", res.Header.Get("X-Gwtransport-Target"))
	assert.Equal(t, []string{"false"}, res.Header.Values("X-Should-Retry"))
	assert.Len(t, b.reqs(), 0)
}

func rv2Stats(tr *gwtransport.Transport) map[string][3]int64 {
	out := map[string][3]int64{}
	for _, s := range tr.Stats() {
		out[s.Target] = [3]int64{s.Attempts, s.Successes, s.Failures}
	}
	return out
}

// A rescued break counts once for each target; the trail has the break once.
func TestRV2RescuedBreakCountsOnce(t *testing.T) {
	aScript := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
	bScript := "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	for _, closeEarly := range []bool{false, true} {
		a := newRV2Server(t, aScript)
		b := newRV2Server(t, bScript)
		var seen []gwtransport.Attempt
		tr := rv2Transport(t, a, b, gwtransport.WithOnAttempt(func(at gwtransport.Attempt) { seen = append(seen, at) }))
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(rv2Body))
		req.Header.Set("Authorization", "Bearer ka")
		res, err := (&http.Client{Transport: tr}).Do(req)
		require.NoError(t, err)
		var out []byte
		if closeEarly {
			// read up to [DONE] then close, as go-openai does
			buf := make([]byte, 1)
			for !strings.HasSuffix(string(out), "data: [DONE]\n\n") {
				n, err := res.Body.Read(buf)
				out = append(out, buf[:n]...)
				require.NoError(t, err)
			}
		} else {
			out, err = io.ReadAll(res.Body)
			require.NoError(t, err)
		}
		res.Body.Close()
		assert.Equal(t, 1, strings.Count(string(out), `"role":"assistant"`), "one role chunk: %s", out)
		assert.Contains(t, b.reqs()[0], `{"role":"assistant","content":"Hel","prefix":true}`)
		st := rv2Stats(tr)
		assert.Equal(t, [3]int64{1, 0, 1}, st["pa/m1"], "closeEarly=%v", closeEarly)
		assert.Equal(t, [3]int64{1, 1, 0}, st["pb/m2"], "closeEarly=%v", closeEarly)
		require.Len(t, seen, 3, "closeEarly=%v: %v", closeEarly, seen)
		assert.Equal(t, "pa/m1", seen[1].Target)
		assert.ErrorIs(t, seen[1].Err, gwtransport.ErrStreamTruncated)
		assert.True(t, seen[2].Continued)
	}
}

// Role-only chunks, then a cut: fails over as if nothing was sent; the caller
// gets one role chunk (the fallback's), and pa's break is not a committed one.
func TestRV2RoleOnlyThenCutFailsOver(t *testing.T) {
	role := "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null,\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
	a := newRV2Server(t, role+": keep\n\n"+role)
	b := newRV2Server(t, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"+
		"data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	tr := rv2Transport(t, a, b)
	res, out, err := rv2Raw(t, tr, a.URL, rv2Body)
	require.NoError(t, err)
	assert.Equal(t, "pb/m2", res.Header.Get(gwtransport.HeaderTarget))
	assert.NotContains(t, out, "c1")
	assert.Equal(t, 1, strings.Count(out, `"role":"assistant"`))
	// the fallback got the plain request, no prefill
	assert.NotContains(t, b.reqs()[0], `"prefix"`)
}

// First events that carry output in some member commit the stream (a cut
// after them is the caller's ErrStreamTruncated at pa); role-only ones do not
// (a cut after them fails over to pb).
func TestRV2RoleOnlyClassification(t *testing.T) {
	cases := []struct {
		chunk  string
		commit bool
	}{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]}`, false},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","refusal":"x"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":"","Content":"Hi"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","\u0063ontent":"Hi"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0.0,"delta":{"role":"assistant"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":"0","delta":{"role":"assistant"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":-1,"delta":{"role":"assistant"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"Delta":{"content":"Hi"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"message":{"content":"Hi"}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}],"Usage":{"total_tokens":3}}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"}}],"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"think"},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","audio":{"data":"AAAA"}},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":{"content":"Hi"}},"finish_reason":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":""}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"finiſh_reason":"stop"}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"},"logprobs":{"content":[{"token":"Hi"}]}}]}`, true},
		{`{"choices":[]}`, false},
	}
	for _, c := range cases {
		a := newRV2Server(t, "data: "+c.chunk+"\n\n")
		b := newRV2Server(t, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
		tr := rv2Transport(t, a, b, gwtransport.WithContinuation(false))
		res, _, err := rv2Raw(t, tr, a.URL, rv2Body)
		if c.commit {
			assert.ErrorIs(t, err, gwtransport.ErrStreamTruncated, c.chunk)
			assert.Len(t, b.reqs(), 0, c.chunk)
		} else {
			assert.NoError(t, err, c.chunk)
			if res != nil {
				assert.Equal(t, "pb/m2", res.Header.Get(gwtransport.HeaderTarget), c.chunk)
			}
		}
	}
}

// A role-only chunk at once, content only after the first-event limit: fails
// over (the role chunk is no first token).
func TestRV2RoleOnlyDoesNotStopFirstEventLimit(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		for i := 0; i < 6; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			io.WriteString(w, ": keep-alive\n\n")
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer slow.Close()
	a := &rv2Server{Server: slow}
	b := newRV2Server(t, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	tr := rv2Transport(t, a, b, gwtransport.WithStreamFirstEvent(120*time.Millisecond))
	start := time.Now()
	res, out, err := rv2Raw(t, tr, a.URL, rv2Body)
	require.NoError(t, err)
	assert.Equal(t, "pb/m2", res.Header.Get(gwtransport.HeaderTarget))
	assert.NotContains(t, out, "late")
	assert.Less(t, time.Since(start), 290*time.Millisecond)
}

// In-band content-policy refusal in a 200: both SDKs get their API error type.
func TestRV2InBandRefusalSDKs(t *testing.T) {
	refusal := `{"error":{"message":"flagged","type":"invalid_request_error","code":"content_policy_violation"}}`
	for _, ct := range []string{"application/json", "text/plain", "", "application/json; charset=utf-8"} {
		a := newRV2Server(t, refusal)
		a.ctype = ct
		b := newRV2Server(t, `{"choices":[]}`)
		tr := rv2Transport(t, a, b)
		_, err := goopenaiAt(a.URL, "ka", tr).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway",
			Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}}})
		var apiErr *goopenai.APIError
		require.ErrorAs(t, err, &apiErr, ct)
		assert.Equal(t, 400, apiErr.HTTPStatusCode, ct)
		assert.Equal(t, "content_policy_violation", apiErr.Code, ct)

		oc := openai.NewClient(option.WithBaseURL(a.URL), option.WithAPIKey("ka"), option.WithHTTPClient(&http.Client{Transport: tr}))
		_, err = oc.Chat.Completions.New(context.Background(), chatParams("gateway"))
		var oe *openai.Error
		require.ErrorAs(t, err, &oe, ct)
		assert.Equal(t, 400, oe.StatusCode, ct)
		assert.Equal(t, "content_policy_violation", oe.Code, ct)
		assert.Len(t, b.reqs(), 0, ct)
		assert.Len(t, a.reqs(), 2, ct)
	}
}

// A complete stream (ended by [DONE], no finish_reason) whose [DONE] line
// reaches the gateway before its blank line: go-openai stops at the [DONE]
// line and closes. README: "A stream closed by the caller after it was
// complete counts as a success (go-openai stops at [DONE] and closes)".
func TestRV2GoOpenAIDoneLineThenCloseCountsSuccess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"}}]}\n\n")
		io.WriteString(w, "data: [DONE]\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
		}
		io.WriteString(w, "\n")
	}))
	defer srv.Close()
	a := &rv2Server{Server: srv}
	b := newRV2Server(t, "unused")
	tr := rv2Transport(t, a, b, gwtransport.WithContinuation(false))
	text, err := goopenaiStreamAsk(context.Background(), goopenaiAt(a.URL, "ka", tr), "Hi")
	require.NoError(t, err)
	assert.Equal(t, "Hello", text)
	assert.Equal(t, [3]int64{1, 1, 0}, rv2Stats(tr)["pa/m1"], "attempts, successes, failures")
}

// The same stream as a half-open probe: complete, read whole by go-openai,
// yet the breaker is never closed ("a half-open probe that is a stream
// closes the breaker only once complete").
func TestRV2GoOpenAIDoneLineProbeNeverClosesBreaker(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"}}]}\n\n")
		io.WriteString(w, "data: [DONE]\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
		}
		io.WriteString(w, "\n")
	}))
	defer srv.Close()
	a := &rv2Server{Server: srv}
	b := newRV2Server(t, "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	clk := newFakeClock()
	tr := rv2Transport(t, a, b, gwtransport.WithContinuation(false), gwtransport.WithClock(clk), gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	c := goopenaiAt(a.URL, "ka", tr)
	read := func() string {
		text, err := goopenaiStreamAsk(context.Background(), c, "Hi")
		require.NoError(t, err)
		return text
	}
	assert.Equal(t, "Hello", read()) // pa 500 -> open; pb answers
	state := func() gwtransport.BreakerState {
		for _, s := range tr.Stats() {
			if s.Target == "pa/m1" {
				return s.Breaker
			}
		}
		return ""
	}
	require.Equal(t, gwtransport.BreakerOpen, state())
	require.NoError(t, clk.Sleep(context.Background(), 11*time.Second))
	assert.Equal(t, "Hello", read()) // pa's half-open probe: complete
	mu.Lock()
	assert.Equal(t, 2, n, "the probe went to pa")
	mu.Unlock()
	assert.Equal(t, gwtransport.BreakerClosed, state(), "a complete probe stream closes the breaker")
}
