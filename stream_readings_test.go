package gwtransport_test

// Every decoder's reading of a committed stream: case-variant member names
// (encoding/json, and so go-openai, matches names case-insensitively with
// Unicode folding and reads the last match; openai-go matches them
// exactly), events named "thread.*" (openai-go decodes them as
// {"event","data"}), and a complete stream kept open by keep-alives.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// goOpenAIFinishes reads a streamed chat request through a real go-openai
// client whose http.Client carries the gateway, and returns the finish
// reason per choice index as go-openai decoded them, and the stream's end
// (nil for a clean io.EOF).
func goOpenAIFinishes(t *testing.T, primURL, fbURL string, n int) (map[int]string, error) {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "fb", BaseURL: fbURL, APIKey: "key-fb"}))
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("key-p")
	cfg.BaseURL = primURL
	cfg.HTTPClient = &http.Client{Transport: tr}
	c := goopenai.NewClientWithConfig(cfg)
	req := goopenai.ChatCompletionRequest{Model: "gateway", Stream: true, N: n,
		Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	s, err := c.CreateChatCompletionStream(context.Background(), req)
	require.NoError(t, err)
	defer s.Close()
	fin := map[int]string{}
	for {
		r, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fin, nil
			}
			return fin, err
		}
		for _, ch := range r.Choices {
			if ch.FinishReason != "" {
				fin[ch.Index] = string(ch.FinishReason)
			}
		}
	}
}

// TestStreamCaseVariantKeysUnderGoOpenAI: streams cut without [DONE] whose
// finish uses case-variant keys. Where go-openai reads some choice
// unfinished, the read must end in ErrStreamTruncated; where every reading
// agrees, in io.EOF with the finishes go-openai read.
func TestStreamCaseVariantKeysUnderGoOpenAI(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		script  string
		wantFin map[int]string // go-openai's reading
		wantErr error          // nil: io.EOF
	}{
		{name: "Finish_Reason empty after finish_reason stop", n: 1, wantFin: map[int]string{}, wantErr: gwtransport.ErrStreamTruncated,
			script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","Finish_Reason":""}`))},
		{name: "FINISH_REASON empty after finish_reason stop", n: 1, wantFin: map[int]string{}, wantErr: gwtransport.ErrStreamTruncated,
			script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","FINISH_REASON":""}`))},
		{name: "finiſh_reason (U+017F folds to s) empty after finish_reason stop", n: 1, wantFin: map[int]string{}, wantErr: gwtransport.ErrStreamTruncated,
			script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","finiſh_reason":""}`))},
		{name: "Choices after choices", n: 1, wantFin: map[int]string{}, wantErr: gwtransport.ErrStreamTruncated,
			script: ev(c0) + ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"Choices":[{"index":0,"delta":{"content":" more"},"finish_reason":""}]}`)},
		{name: "n=2: Index 0 after index 1", n: 2, wantFin: map[int]string{0: "stop"}, wantErr: gwtransport.ErrStreamTruncated,
			script: ev(c01) + ev(c0stop) + ev(chunk(`{"index":1,"Index":0,"delta":{},"finish_reason":"stop"}`))},
		{name: "Finish_Reason length after finish_reason stop: both finish", n: 1, wantFin: map[int]string{0: "length"},
			script: ev(c0) + ev(chunk(`{"index":0,"delta":{},"finish_reason":"stop","Finish_Reason":"length"}`))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prim, fb, fbHits := streamPair(t, sse(tc.script))
			fin, err := goOpenAIFinishes(t, prim.URL, fb.URL, tc.n)
			assert.Equal(t, tc.wantFin, fin, "go-openai's reading")
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr, "go-openai read finishes %v", fin)
			}
			assert.Zero(t, fbHits.Load())
		})
	}
}

// TestStreamCaseVariantResponsesTerminal: a Responses event whose "type"
// is response.completed and whose "Type" (read last by encoding/json) is a
// delta is no terminal event: the stream, cut without [DONE], ends in
// ErrStreamTruncated, every byte delivered.
func TestStreamCaseVariantResponsesTerminal(t *testing.T) {
	last := `{"type":"response.completed","Type":"response.output_text.delta","sequence_number":3,"delta":" more"}`
	script := ev(rCreated) + ev(rDelta) + ev(last)
	prim, fb, fbHits := streamPair(t, sse(script))
	res := pairRequest(t, prim, fb, "/responses", respBody)
	require.Equal(t, 200, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	assert.Equal(t, script, string(b))
	var types []string
	for _, l := range strings.Split(string(b), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			var e struct {
				Type string `json:"type"`
			}
			require.NoError(t, json.Unmarshal([]byte(d), &e))
			types = append(types, e.Type)
		}
	}
	assert.Equal(t, []string{"response.created", "response.output_text.delta", "response.output_text.delta"}, types, "encoding/json's reading")
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Zero(t, fbHits.Load())
}

// TestStreamCaseVariantInBandError: a chunk {"Error":{...}} after the
// finish is an error to any encoding/json reader (it decodes into its
// "error" field): the read ends in a *StreamError with the provider's
// details, the chunk and the [DONE] after it not delivered.
func TestStreamCaseVariantInBandError(t *testing.T) {
	errChunk := `{"Error":{"message":"boom","type":"server_error","code":"late"}}`
	var decoded struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(errChunk), &decoded))
	require.NotNil(t, decoded.Error, "encoding/json reads an in-band error")
	assert.Equal(t, "boom", decoded.Error.Message)

	prim, fb, fbHits := streamPair(t, sse(ev(c0)+ev(c0stop)+ev(errChunk)+done))
	res := pairRequest(t, prim, fb, "/chat/completions", chatBody)
	require.Equal(t, 200, res.StatusCode)
	b, err := io.ReadAll(res.Body)
	assert.Equal(t, ev(c0)+ev(c0stop), string(b))
	require.ErrorIs(t, err, gwtransport.ErrStreamFailed)
	var se *gwtransport.StreamError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, gwtransport.StreamError{Code: "late", Type: "server_error", Message: "boom"}, *se)
	assert.Zero(t, fbHits.Load())
}

// TestStreamThreadEventHidesTheFinish: the only finish comes under
// "event: thread.message"; the stream is cut without [DONE]. openai-go
// never sees a finish reason, so the stream ends in ErrStreamTruncated.
func TestStreamThreadEventHidesTheFinish(t *testing.T) {
	prim, fb, fbHits := streamPair(t, sse(ev(c0)+named("thread.message", c0stop)))
	text, fin, target, err := chatStream(t, streamPairClient(t, prim, fb), 1)
	assert.Equal(t, "Hi", text)
	assert.Empty(t, fin, "openai-go saw no finish reason")
	assert.Equal(t, "openai/gpt-4o", target)
	require.ErrorIs(t, err, gwtransport.ErrStreamTruncated)
	assert.Zero(t, fbHits.Load())
}

// TestStreamThreadEventHidesTheTerminal: the same for a Responses stream
// whose response.completed comes under "event: thread.run.completed".
func TestStreamThreadEventHidesTheTerminal(t *testing.T) {
	prim, fb, fbHits := streamPair(t, sse(ev(rCreated)+ev(rDelta)+named("thread.run.completed", rCompleted)))
	c := streamPairClient(t, prim, fb)
	s := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	defer s.Close()
	var types []string
	for s.Next() {
		types = append(types, s.Current().Type)
	}
	assert.Equal(t, []string{"response.created", "response.output_text.delta", ""}, types, "openai-go's reading")
	require.ErrorIs(t, s.Err(), gwtransport.ErrStreamTruncated)
	assert.Zero(t, fbHits.Load())
}

// TestStreamFinishGraceIgnoresKeepAlives: after every choice finished (no
// [DONE]) the provider sends a keep-alive every 20 ms forever. With a
// 100 ms grace the read ends cleanly after about that (keep-alives do not
// restart it), with every byte the provider sent by then; a 2 s caller
// deadline marks the hang.
func TestStreamFinishGraceIgnoresKeepAlives(t *testing.T) {
	keepAlives := map[string]string{
		"comment":        ": ping\n\n",
		"empty data":     "data:\n\n",
		"event ping":     named("ping", `{}`),
		"data type ping": ev(`{"type":"ping"}`),
	}
	for name, ka := range keepAlives {
		t.Run(name, func(t *testing.T) {
			prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, ev(c0)+ev(c0stop))
				for {
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return
					case <-time.After(20 * time.Millisecond):
					}
					if _, err := io.WriteString(w, ka); err != nil {
						return
					}
				}
			}))
			t.Cleanup(prim.Close)
			b, took, err := readWithGrace(t, prim.URL, 100*time.Millisecond, 2*time.Second)
			require.NoError(t, err, "a complete stream ends in io.EOF")
			// The grace counts time blocked on the provider: at least
			// 100 ms, and far less than the caller's deadline.
			assert.GreaterOrEqual(t, took, 100*time.Millisecond)
			assert.Less(t, took, time.Second)
			rest, ok := strings.CutPrefix(string(b), ev(c0)+ev(c0stop))
			require.True(t, ok, "the stream's bytes come first: %q", b)
			assert.Equal(t, strings.Repeat(ka, strings.Count(rest, ka)), rest, "only whole keep-alives follow")
		})
	}
}

// TestStreamFinishGraceRestartsOnData: after the finish, keep-alives every
// 20 ms, a usage chunk at 120 ms and [DONE] at 260 ms; grace 200 ms. The
// usage chunk restarts the grace, so [DONE] (140 ms after it, 260 ms
// after the finish) is still delivered before the stream ends cleanly.
func TestStreamFinishGraceRestartsOnData(t *testing.T) {
	prim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ev(c0)+ev(c0stop))
		start := time.Now()
		usage, doneSent := false, false
		for {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			s := ": ping\n\n"
			switch el := time.Since(start); {
			case !usage && el >= 120*time.Millisecond:
				s, usage = ev(cUsage), true
			case !doneSent && el >= 260*time.Millisecond:
				s, doneSent = done, true
			}
			if _, err := io.WriteString(w, s); err != nil {
				return
			}
		}
	}))
	t.Cleanup(prim.Close)
	b, took, err := readWithGrace(t, prim.URL, 200*time.Millisecond, 3*time.Second)
	require.NoError(t, err)
	assert.Less(t, took, 2*time.Second)
	assert.Contains(t, string(b), ev(cUsage))
	assert.Contains(t, string(b), done, "the usage chunk restarted the grace")
}

// readWithGrace sends a streamed request to url through a gateway with the
// given finish grace, under a caller deadline, and reads the whole body,
// timing the read.
func readWithGrace(t *testing.T, url string, grace, deadline time.Duration) ([]byte, time.Duration, error) {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithStreamFinishGrace(grace))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", strings.NewReader(chatBody))
	require.NoError(t, err)
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	start := time.Now()
	b, err := io.ReadAll(res.Body)
	return b, time.Since(start), err
}
