package gwtransport_test

// A hostile provider against the stream guarantees: answers to a streamed
// request that are no stream, duplicate JSON keys that finish a stream for
// one decoder only, Gemini's array-shaped in-band errors, and completeness
// markers of another operation. The primary is the client's own provider
// (openai); the fallback "fb" streams a complete answer "OK".

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// streamPair starts a primary answering with primary and a well-behaved
// fallback that streams "OK", counting its requests.
func streamPair(t *testing.T, primary http.HandlerFunc) (prim, fb *httptest.Server, fbHits *atomic.Int32) {
	t.Helper()
	hits := new(atomic.Int32)
	prim = httptest.NewServer(primary)
	t.Cleanup(prim.Close)
	fb = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Path == "/responses" {
			io.WriteString(w, ev(rCreated)+ev(rDelta)+ev(rCompleted))
			return
		}
		io.WriteString(w, ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"OK"},"finish_reason":null}]}`))
		io.WriteString(w, ev(c0stop))
		io.WriteString(w, done)
	}))
	t.Cleanup(fb.Close)
	return prim, fb, hits
}

func streamPairClient(t *testing.T, prim, fb *httptest.Server) *openai.Client {
	t.Helper()
	c := openai.NewClient(option.WithBaseURL(prim.URL), option.WithAPIKey("key-p"), option.WithHTTPClient(&http.Client{}), option.WithMaxRetries(0))
	mustInit(t, &c, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fb.URL, APIKey: "key-fb"}))
	return &c
}

// scripted answers every request with status, Content-Type ct (none at
// all, not even a sniffed one, when ct is nil) and body.
func scripted(status int, ct *string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		if ct != nil {
			w.Header()["Content-Type"] = []string{*ct}
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// sse answers every request 200 text/event-stream with script.
func sse(script string) http.HandlerFunc {
	ct := "text/event-stream"
	return scripted(200, &ct, script)
}

// chatStream reads a streamed chat request with n choices through c: the
// text, the finish reason seen per choice index, the target that answered
// and the stream's error.
func chatStream(t *testing.T, c *openai.Client, n int64) (text string, finished map[int64]string, target string, err error) {
	t.Helper()
	p := chatParams("gateway")
	if n > 1 {
		p.N = openai.Int(n)
	}
	var raw *http.Response
	s := c.Chat.Completions.NewStreaming(context.Background(), p, option.WithResponseInto(&raw))
	defer s.Close()
	finished = map[int64]string{}
	for s.Next() {
		for _, ch := range s.Current().Choices {
			text += ch.Delta.Content
			if ch.FinishReason != "" {
				finished[ch.Index] = ch.FinishReason
			}
		}
	}
	require.NotNil(t, raw)
	return text, finished, raw.Header.Get(gwtransport.HeaderTarget), s.Err()
}

// TestStreamAnyContentTypeIsGuarded: every 2xx answer to a streamed
// request is read as a stream whatever its Content-Type. One that is no
// stream (a JSON error, a whole JSON answer, an empty 204, plain text)
// fails over to the fallback; one in SSE form commits at its first content
// event and is then guarded: cut, it ends in ErrStreamTruncated, never in a
// clean end; complete, it ends cleanly from the primary.
func TestStreamAnyContentTypeIsGuarded(t *testing.T) {
	cts := []*string{nil}
	for _, ct := range []string{"application/json", "text/plain", "text/event-stream; charset", "text/event-stream;;", "application/octet-stream", "", "text/event-stream"} {
		cts = append(cts, &ct)
	}
	name := func(ct *string) string {
		if ct == nil {
			return "no Content-Type"
		}
		return fmt.Sprintf("%q", *ct)
	}
	for _, ct := range cts {
		t.Run(name(ct)+"/cut after content", func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, scripted(200, ct, ev(c0)))
			text, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), 1)
			require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			assert.Equal(t, "Hi", text)
			assert.Empty(t, fin)
			assert.Equal(t, "openai/gpt-4o", target)
			assert.Zero(t, fbHits.Load())
		})
		t.Run(name(ct)+"/complete", func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, scripted(200, ct, ev(c0)+ev(c0stop)+done))
			text, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), 1)
			require.NoError(t, err)
			assert.Equal(t, "Hi", text)
			assert.Equal(t, map[int64]string{0: "stop"}, fin)
			assert.Equal(t, "openai/gpt-4o", target)
			assert.Zero(t, fbHits.Load())
		})
	}
	jsonCT, textCT := "application/json", "text/plain"
	noStream := []struct {
		name   string
		status int
		ct     *string
		body   string
	}{
		{"200 JSON error", 200, &jsonCT, `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`},
		{"200 whole JSON answer", 200, &jsonCT, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}`},
		{"200 empty", 200, nil, ""},
		{"204", 204, nil, ""},
		{"201 plain text", 201, &textCT, "all good\n\n"},
		{"200 comments only", 200, nil, ": keep-alive\n\n: keep-alive\n\n"},
	}
	for _, tc := range noStream {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, scripted(tc.status, tc.ct, tc.body))
			text, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), 1)
			require.NoError(t, err)
			assert.Equal(t, "OK", text)
			assert.Equal(t, map[int64]string{0: "stop"}, fin)
			assert.Equal(t, "fb/m", target)
			assert.Equal(t, int32(1), fbHits.Load())
		})
	}
}

// geminiStreamError is an in-band error in the array shape of Gemini's
// error bodies.
const geminiStreamError = `[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]`

// TestStreamArrayInBandError: an array whose elements carry an error is an
// in-band error: before the first content event it fails over; after the
// commit (after content, after the finish, after [DONE]) the caller's read
// ends in a *StreamError with the provider's code and message, and the
// event is withheld. An array without an error is content.
func TestStreamArrayInBandError(t *testing.T) {
	t.Run("before content", func(t *testing.T) {
		for _, first := range []string{geminiStreamError, `[{"candidates":[]},{"error":{"code":429,"message":"quota"}}]`, ` [ {"type":"error","message":"m"} ]`} {
			prim, fb, fbHits := streamPair(t, sse(": hi\n\n"+ev(first)+ev(c0)+ev(c0stop)+done))
			text, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), 1)
			require.NoError(t, err, first)
			assert.Equal(t, "OK", text, first)
			assert.Equal(t, map[int64]string{0: "stop"}, fin)
			assert.Equal(t, "fb/m", target, "the array-shaped error committed the stream: %s", first)
			assert.Equal(t, int32(1), fbHits.Load())
		}
	})
	after := []struct{ name, script, deliver string }{
		{"after content", ev(c0) + ev(geminiStreamError) + ev(c0stop) + done, ev(c0)},
		{"after the finish", ev(c0) + ev(c0stop) + ev(geminiStreamError), ev(c0) + ev(c0stop)},
		{"after [DONE]", ev(c0) + ev(c0stop) + done + ev(geminiStreamError), ev(c0) + ev(c0stop) + done},
	}
	for _, tc := range after {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, sse(tc.script))
			res := pairRequest(t, prim, fb, "/chat/completions", chatBody)
			got, err := io.ReadAll(res.Body)
			assert.Equal(t, tc.deliver, string(got))
			require.ErrorIs(t, err, gwtransport.ErrStreamFailed)
			var se *gwtransport.StreamError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, gwtransport.StreamError{Code: "503", Message: "The model is overloaded."}, *se)
			assert.Zero(t, fbHits.Load())
		})
	}
	t.Run("array without error is content", func(t *testing.T) {
		prim, fb, _ := streamPair(t, sse(ev(`[{"x":1},{"error":null}]`)+ev(c0stop)))
		res := pairRequest(t, prim, fb, "/chat/completions", chatBody)
		got, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		assert.Equal(t, ev(`[{"x":1},{"error":null}]`)+ev(c0stop), string(got))
		assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
	})
}

// pairRequest sends body to the primary's path through the Transport and a
// plain http.Client.
func pairRequest(t *testing.T, prim, fb *httptest.Server, path, body string) *http.Response {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fb.URL, APIKey: "key-fb"}))
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, prim.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// chunk is a chat chunk whose choices are the given JSON.
func chunk(choices string) string {
	return `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[` + choices + `]}`
}

// TestStreamDuplicateKeysFinishOnlyUnderEveryReading: openai-go reads the
// first of duplicate JSON keys, encoding/json the last. A finish (or a
// Responses terminal type) counts only when both readings see it, so the
// gateway never ends a stream cleanly that a decoder saw unfinished: each
// stream below is cut (no [DONE]) and ends in ErrStreamTruncated, with
// openai-go's caller never having seen every choice finish. Where both
// readings agree, the duplicates finish the stream.
func TestStreamDuplicateKeysFinishOnlyUnderEveryReading(t *testing.T) {
	tests := []struct {
		name     string
		n        int64
		script   string
		complete bool
		sdkSees  map[int64]string // the finish reasons openai-go reports
	}{
		{name: "control: no finish", n: 1, script: ev(c0) + ev(c0null), sdkSees: map[int64]string{}},
		{name: "finish_reason null then stop", n: 1, script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":null,"finish_reason":"stop"}`)), sdkSees: map[int64]string{}},
		{name: "finish_reason stop then null", n: 1, script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","finish_reason":null}`)), sdkSees: map[int64]string{0: "stop"}},
		{name: `finish_reason "" then stop`, n: 1, script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"","finish_reason":"stop"}`)), sdkSees: map[int64]string{}},
		{name: "choices twice", n: 1, script: ev(c0) + ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}],"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`), sdkSees: map[int64]string{}},
		{name: "index 0 then 1, n=2", n: 2, script: ev(c01) + ev(c0stop) + ev(chunk(`{"index":0,"index":1,"delta":{"content":"c"},"finish_reason":"stop"}`)), sdkSees: map[int64]string{0: "stop"}},
		{name: "index 1 then 0, n=2", n: 2, script: ev(c01) + ev(c0stop) + ev(chunk(`{"index":1,"index":0,"delta":{"content":"c"},"finish_reason":"stop"}`)), sdkSees: map[int64]string{0: "stop", 1: "stop"}},
		{name: "both readings finish: stop then length", n: 1, script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","finish_reason":"length"}`)), complete: true, sdkSees: map[int64]string{0: "stop"}},
		{name: "both readings finish: index 1 twice, n=2", n: 2, script: ev(c01) + ev(c0stop) + ev(chunk(`{"index":1,"index":1,"delta":{},"finish_reason":"stop"}`)), complete: true, sdkSees: map[int64]string{0: "stop", 1: "stop"}},
		{name: "both readings finish: the same choices twice", n: 1, script: ev(c0) + ev(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`), complete: true, sdkSees: map[int64]string{0: "stop"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, sse(tc.script))
			_, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), tc.n)
			if tc.complete {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			}
			assert.Equal(t, tc.sdkSees, fin)
			assert.Equal(t, "openai/gpt-4o", target)
			assert.Zero(t, fbHits.Load())
		})
	}
}

// TestStreamResponsesTerminalOnlyUnderEveryReading: a Responses event
// whose "type" is given twice is terminal only when both are terminal; an
// error under either reading is an in-band error.
func TestStreamResponsesTerminalOnlyUnderEveryReading(t *testing.T) {
	tests := []struct {
		name    string
		last    string
		wantErr error
		types   []string // the event types openai-go reports
	}{
		{"delta then completed", `{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" th","type":"response.completed"}`,
			gwtransport.ErrStreamTruncated, []string{"response.created", "response.output_text.delta", "response.output_text.delta"}},
		{"completed then delta", `{"type":"response.completed","type":"response.output_text.delta","sequence_number":3}`,
			gwtransport.ErrStreamTruncated, []string{"response.created", "response.output_text.delta", "response.completed"}},
		{"completed then incomplete", `{"type":"response.completed","sequence_number":3,"response":{"id":"r","object":"response","created_at":1,"model":"m","status":"completed","output":[]},"type":"response.incomplete"}`,
			nil, []string{"response.created", "response.output_text.delta", "response.completed"}},
		{"delta then error", `{"type":"response.output_text.delta","delta":"x","type":"error","message":"late"}`,
			gwtransport.ErrStreamFailed, []string{"response.created", "response.output_text.delta"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, sse(ev(rCreated)+ev(rDelta)+ev(tc.last)))
			c := streamPairClient(t, prim, fb)
			s := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
			defer s.Close()
			var types []string
			for s.Next() {
				types = append(types, s.Current().Type)
			}
			if tc.wantErr == nil {
				require.NoError(t, s.Err())
			} else {
				require.ErrorIs(t, s.Err(), tc.wantErr)
			}
			assert.Equal(t, tc.types, types)
			assert.Zero(t, fbHits.Load())
		})
	}
}

// TestStreamCompletionMarkersPerOperation: what completes a stream is the
// operation's own marker. A chat stream is not completed by a Responses
// terminal type or event line, nor a Responses stream by a finished
// choice; a choice without "index" is choice 0, as openai-go reads it.
// Each stream is cut without [DONE].
func TestStreamCompletionMarkersPerOperation(t *testing.T) {
	tests := []struct {
		name, path, body, script string
		complete                 bool
	}{
		{name: "chat: type response.completed", path: "/chat/completions", body: chatBody, script: ev(c0) + ev(`{"type":"response.completed"}`)},
		{name: "chat: event response.completed over a chunk", path: "/chat/completions", body: chatBody, script: ev(c0) + named("response.completed", c0null)},
		{name: "chat: event response.incomplete over a finish", path: "/chat/completions", body: chatBody, script: ev(c0) + named("response.incomplete", c0stop), complete: true},
		{name: "chat n=2: choice without index is choice 0", path: "/chat/completions", body: twoBody,
			script: ev(c01) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop"},{"delta":{"content":"c"},"finish_reason":"stop"}`))},
		{name: "chat n=2: then choice 1 finishes", path: "/chat/completions", body: twoBody,
			script: ev(c01) + ev(chunk(`{"delta":{},"finish_reason":"stop"}`)) + ev(c1stop), complete: true},
		{name: "chat n=1: choice without index finishes choice 0", path: "/chat/completions", body: chatBody,
			script: ev(c0) + ev(chunk(`{"delta":{},"finish_reason":"stop"}`)), complete: true},
		{name: "completions: type response.completed", path: "/completions", body: `{"model":"gateway","stream":true,"prompt":"hi"}`,
			script: ev(`{"id":"c","object":"text_completion","choices":[{"index":0,"text":"Hi","finish_reason":null}]}`) + ev(`{"type":"response.completed"}`)},
		{name: "completions: finish", path: "/completions", body: `{"model":"gateway","stream":true,"prompt":"hi"}`,
			script: ev(`{"id":"c","object":"text_completion","choices":[{"index":0,"text":"Hi","finish_reason":null}]}`) + ev(`{"id":"c","object":"text_completion","choices":[{"index":0,"text":"","finish_reason":"stop"}]}`), complete: true},
		{name: "responses: finished choice", path: "/responses", body: respBody, script: ev(rDelta) + ev(c0stop)},
		{name: "responses: terminal type", path: "/responses", body: respBody, script: ev(rDelta) + ev(rCompleted), complete: true},
		{name: "responses: terminal event line over a delta", path: "/responses", body: respBody, script: ev(rDelta) + named("response.completed", rDelta)},
		{name: "responses: terminal event line and type", path: "/responses", body: respBody, script: ev(rDelta) + named("response.completed", rCompleted), complete: true},
		{name: "responses: [DONE]", path: "/responses", body: respBody, script: ev(rDelta) + done, complete: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, sse(tc.script))
			res := pairRequest(t, prim, fb, tc.path, tc.body)
			got, err := io.ReadAll(res.Body)
			assert.Equal(t, tc.script, string(got))
			if tc.complete {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
			}
			assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
			assert.Zero(t, fbHits.Load())
		})
	}
	// Through openai-go: the chat cases end in an error, and the caller
	// never saw every choice finish.
	for _, tc := range tests[:4] {
		t.Run("openai-go/"+tc.name, func(t *testing.T) {
			prim, fb, _ := streamPair(t, sse(tc.script))
			n := int64(1)
			if tc.body == twoBody {
				n = 2
			}
			_, fin, _, err := chatStream(t, streamPairClient(t, prim, fb), n)
			if tc.complete {
				require.NoError(t, err)
				assert.Len(t, fin, int(n))
			} else {
				require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
				assert.Less(t, len(fin), int(n))
			}
		})
	}
}
