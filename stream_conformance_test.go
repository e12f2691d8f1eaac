package gwtransport_test

// Stream conformance: raw SSE scripts, served by a real local provider,
// read through the Transport with a plain http.Client (every byte and the
// exact end checked) and through a real openai-go client. What completes a
// stream, what fails it after the commit, what fails over before it, and
// how the idle and finish-grace limits treat a slow caller.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// SSE building blocks.
func ev(data string) string          { return "data: " + data + "\n\n" }
func named(name, data string) string { return "event: " + name + "\n" + ev(data) }

const (
	c0      = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`
	c0stop  = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`
	c0empty = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":""}]}`
	c0null  = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":null}]}`
	c01     = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},{"index":1,"delta":{"content":"b"},"finish_reason":null}]}`
	c1stop  = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{},"finish_reason":"length"}]}`
	c01stop = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"stop"}]}`
	cUsage  = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}`
	done    = "data: [DONE]\n\n"

	rCreated    = `{"type":"response.created","sequence_number":0,"response":{"id":"r","object":"response","created_at":1,"model":"m","status":"in_progress","output":[],"error":null}}`
	rInProgress = `{"type":"response.in_progress","sequence_number":1,"response":{"id":"r","object":"response","created_at":1,"model":"m","status":"in_progress","output":[],"error":null}}`
	rDelta      = `{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}`
	rCompleted  = `{"type":"response.completed","sequence_number":3,"response":{"id":"r","object":"response","created_at":1,"model":"m","status":"completed","output":[],"usage":{"input_tokens":7,"output_tokens":5,"total_tokens":12}}}`
	rIncomplete = `{"type":"response.incomplete","sequence_number":3,"response":{"id":"r","object":"response","created_at":1,"model":"m","status":"incomplete","output":[]}}`
	rFailed     = `{"type":"response.failed","sequence_number":3,"response":{"id":"r","object":"response","status":"failed","error":{"code":"server_error","message":"The model failed."}}}`
	rError      = `{"type":"error","sequence_number":3,"code":"overloaded","message":"Too busy."}`
	chatError   = `{"error":{"message":"Upstream overloaded.","type":"server_error","code":"overloaded"}}`
)

// rawRequest sends a streamed gateway request with body through a plain
// http.Client and the Transport, to the provider's path.
func rawRequest(t *testing.T, s *gatewaytest.Server, path, body string, opts ...gwtransport.Option) *http.Response {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, append([]gwtransport.Option{noEnv()}, opts...)...)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

const (
	chatBody = `{"model":"gateway","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	twoBody  = `{"model":"gateway","stream":true,"n":2,"messages":[{"role":"user","content":"hi"}]}`
	respBody = `{"model":"gateway","stream":true,"input":"hi"}`
)

// TestStreamConformance: every wire form of a committed stream's end. The
// caller reads exactly the bytes the provider sent up to the point of
// failure (an error event itself is not delivered), then io.EOF only when
// the stream was complete.
func TestStreamConformance(t *testing.T) {
	failedWith := func(event, code, msg string) func(t *testing.T, err error) {
		return func(t *testing.T, err error) {
			require.ErrorIs(t, err, gwtransport.ErrStreamFailed)
			var se *gwtransport.StreamError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, event, se.Event)
			assert.Equal(t, code, se.Code)
			assert.Equal(t, msg, se.Message)
			assert.Contains(t, err.Error(), msg)
		}
	}
	is := func(target error) func(t *testing.T, err error) {
		return func(t *testing.T, err error) { require.ErrorIs(t, err, target) }
	}
	tests := []struct {
		name    string
		body    string // the request; chatBody when empty
		path    string // "/chat/completions" when empty
		script  string
		deliver string                        // the bytes read; the whole script when empty
		check   func(t *testing.T, err error) // nil: a clean io.EOF
	}{
		// Chat completions.
		{name: "[DONE]", script: ev(c0) + ev(c0stop) + done},
		{name: "finish reason, no [DONE]", script: ev(c0) + ev(c0stop)},
		{name: "finish, usage chunk, [DONE]", script: ev(c0) + ev(c0stop) + ev(cUsage) + done},
		{name: "[DONE] alone", script: done},
		{name: "no finish", script: ev(c0) + ev(c0null), check: is(gwtransport.ErrStreamTruncated)},
		{name: `finish_reason "" is no finish`, script: ev(c0) + ev(c0empty), check: is(gwtransport.ErrStreamTruncated)},
		{name: "finish line cut before its blank line", script: ev(c0) + "data: " + c0stop + "\n", check: is(gwtransport.ErrStreamTruncated)},
		{name: "event named done is not [DONE]", script: ev(c0) + named("done", `{}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: only choice 0 finished", body: twoBody, script: ev(c01) + ev(c0stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: only choice 1 finished", body: twoBody, script: ev(c01) + ev(c1stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2.0: only choice 0 finished", body: strings.Replace(twoBody, `"n":2`, `"n":2.0`, 1), script: ev(c01) + ev(c0stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: choice 0 finished twice", body: twoBody, script: ev(c01) + ev(c0stop) + ev(c0stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: both finished, one by one", body: twoBody, script: ev(c01) + ev(c0stop) + ev(c1stop)},
		{name: "n=2: both finished in one chunk", body: twoBody, script: ev(c01) + ev(c01stop)},
		{name: "n=2: only choice 0 finished, [DONE]", body: twoBody, script: ev(c01) + ev(c0stop) + done},
		{name: "empty data keep-alives after the commit", script: ev(c0) + "data:\n\n: ping\n\n" + ev(c0stop) + "data: \n\n" + done},
		{name: "error null is an error, as the SDKs read it", script: ev(c0) + ev(`{"choices":[],"error":null}`) + ev(c0stop), deliver: ev(c0), check: is(gwtransport.ErrStreamFailed)},
		{name: "error null inside an array is no error", script: ev(c0) + ev(`[{"x":1},{"error":null}]`) + ev(c0stop) + done},
		{name: "choice without index is choice 0", script: ev(c0) + ev(`{"choices":[{"delta":{},"finish_reason":"stop"}]}`)},
		{name: "n=2: choice without index is choice 0, not 1", body: twoBody, script: ev(c01) + ev(c0stop) + ev(`{"choices":[{"index":0,"delta":{}},{"delta":{},"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "a Responses terminal type does not complete a chat stream", script: ev(c0) + ev(rCompleted), check: is(gwtransport.ErrStreamTruncated)},
		{name: "a Responses terminal event line does not complete a chat stream", script: ev(c0) + named("response.completed", c0null), check: is(gwtransport.ErrStreamTruncated)},

		// Duplicate keys: a finish counts only when the first and the last
		// of each duplicate both say so (openai-go reads the first,
		// encoding/json the last).
		{name: "duplicate finish_reason: null then stop", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":null,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "duplicate finish_reason: stop then null", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","finish_reason":null}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "duplicate finish_reason: stop then length", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","finish_reason":"length"}]}`)},
		{name: "duplicate choices that differ", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":null}],"choices":[{"index":0,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "duplicate choices that agree", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop"}],"choices":[{"index":0,"finish_reason":"stop"}]}`)},
		{name: "n=2: duplicate index 0 then 1", body: twoBody, script: ev(c01) + ev(c0stop) + ev(`{"choices":[{"index":0,"index":1,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: duplicate index 1 twice", body: twoBody, script: ev(c01) + ev(c0stop) + ev(`{"choices":[{"index":1,"index":1,"finish_reason":"stop"}]}`)},
		{name: "responses: duplicate type delta then completed", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"response.output_text.delta","delta":"x","type":"response.completed"}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: duplicate type completed then delta", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"response.completed","type":"response.output_text.delta"}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: duplicate type completed then incomplete", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"response.completed","type":"response.incomplete"}`)},
		// Case-variant keys: encoding/json (go-openai) matches member names
		// case-insensitively ("ſ" is "s", "K" is "k") and reads the last
		// match; openai-go matches them exactly. A finish or a terminal
		// type counts only when every occurrence under folding says so and
		// one is spelled exactly; an error counts under any spelling.
		{name: "case variant: Finish_Reason empty after finish_reason stop", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","Finish_Reason":""}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: FINISH_REASON null after finish_reason stop", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","FINISH_REASON":null}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: finiſh_reason (U+017F) empty after finish_reason stop", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","finiſh_reason":""}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: finish_reaſon (U+017F) empty before finish_reason stop", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reaſon":"","finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: escaped Finish_Re\u0061son empty", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","Finish_Re\u0061son":""}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: Finish_Reason alone (openai-go sees no finish)", script: ev(c0) + ev(`{"choices":[{"index":0,"Finish_Reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: Finish_Reason agrees", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop","Finish_Reason":"length"}]}`)},
		{name: "case variant: Choices after choices", script: ev(c0) + ev(`{"choices":[{"index":0,"finish_reason":"stop"}],"Choices":[{"index":0,"finish_reason":""}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "case variant: CHOICES alone", script: ev(c0) + ev(`{"CHOICES":[{"index":0,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: case variant: Index 0 after index 1", body: twoBody, script: ev(c01) + ev(c0stop) + ev(`{"choices":[{"index":1,"Index":0,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "n=2: case variant: INDEX 1 alone (openai-go reads choice 0)", body: twoBody, script: ev(c01) + ev(c0stop) + ev(`{"choices":[{"INDEX":1,"finish_reason":"stop"}]}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: case variant: Type delta after type completed", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"response.completed","Type":"response.output_text.delta"}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: case variant: TYPE completed alone", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"TYPE":"response.completed"}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: case variant: Type incomplete after type completed", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"response.completed","Type":"response.incomplete"}`)},

		// thread.* events: openai-go decodes them as {"event","data"}, so
		// they never complete a stream; they may still fail it.
		{name: "finish under event thread.message", script: ev(c0) + named("thread.message", c0stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "[DONE] under event thread.done", script: ev(c0) + named("thread.done", "[DONE]"), check: is(gwtransport.ErrStreamTruncated)},
		{name: "finish under event thread.message renamed by a later event line", script: ev(c0) + "event: thread.message\nevent: message\n" + ev(c0stop)},
		{name: "finish under thread.message, then a plain finish", script: ev(c0) + named("thread.message", c0stop) + ev(c0stop)},
		{name: "responses: completed under event thread.run.completed", path: "/responses", body: respBody,
			script: ev(rDelta) + named("thread.run.completed", rCompleted), check: is(gwtransport.ErrStreamTruncated)},
		{name: "error data under event thread.message", script: ev(c0) + named("thread.message", chatError) + done, deliver: ev(c0) + "event: thread.message\n",
			check: failedWith("", "overloaded", "Upstream overloaded.")},

		{name: "responses: a finished choice does not complete", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(c0stop), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: [DONE]", path: "/responses", body: respBody, script: ev(rDelta) + done},

		// Responses.
		{name: "responses: completed by event line", path: "/responses", body: respBody,
			script: named("response.created", rCreated) + named("response.output_text.delta", rDelta) + named("response.completed", rCompleted)},
		{name: "responses: completed by data type only", path: "/responses", body: respBody,
			script: ev(rCreated) + ev(rDelta) + ev(rCompleted)},
		{name: "responses: an event line alone is not terminal", path: "/responses", body: respBody,
			script: named("response.output_text.delta", rDelta) + named("response.incomplete", `{"sequence_number":3}`), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: an event line over a delta is not terminal", path: "/responses", body: respBody,
			script: named("response.output_text.delta", rDelta) + named("response.completed", rDelta), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: incomplete by event line and data type", path: "/responses", body: respBody,
			script: named("response.output_text.delta", rDelta) + named("response.incomplete", rIncomplete)},
		{name: "responses: incomplete by data type only", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(rIncomplete)},
		{name: "responses: deltas only", path: "/responses", body: respBody,
			script: named("response.created", rCreated) + named("response.output_text.delta", rDelta), check: is(gwtransport.ErrStreamTruncated)},
		{name: "responses: in_progress is not terminal", path: "/responses", body: respBody,
			script: ev(rDelta) + named("response.in_progress", rInProgress), check: is(gwtransport.ErrStreamTruncated)},

		// In-band errors after the commit: never io.EOF, the event withheld.
		{name: "event: error", script: ev(c0) + named("error", rError) + ev(c0stop) + done, deliver: ev(c0),
			check: failedWith("error", "overloaded", "Too busy.")},
		{name: "event: response.failed", path: "/responses", body: respBody,
			script: named("response.output_text.delta", rDelta) + named("response.failed", rFailed), deliver: named("response.output_text.delta", rDelta),
			check: failedWith("response.failed", "server_error", "The model failed.")},
		{name: "data type error, no event line", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(rError) + ev(rCompleted), deliver: ev(rDelta), check: failedWith("", "overloaded", "Too busy.")},
		{name: "data type response.failed, no event line", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(rFailed), deliver: ev(rDelta), check: failedWith("", "server_error", "The model failed.")},
		{name: "data with a top-level error object", script: ev(c0) + ev(chatError) + done, deliver: ev(c0),
			check: failedWith("", "overloaded", "Upstream overloaded.")},
		{name: "data with a top-level error string", script: ev(c0) + ev(`{"error":"quota exhausted"}`), deliver: ev(c0),
			check: failedWith("", "", "quota exhausted")},
		{name: "error after the finish reason", script: ev(c0) + ev(c0stop) + ev(chatError), deliver: ev(c0) + ev(c0stop),
			check: failedWith("", "overloaded", "Upstream overloaded.")},
		{name: "error after [DONE]", script: ev(c0) + ev(c0stop) + done + named("error", rError), deliver: ev(c0) + ev(c0stop) + done,
			check: failedWith("error", "overloaded", "Too busy.")},
		{name: "error event cut before its blank line", script: ev(c0) + "event: error\ndata: " + rError + "\n", deliver: ev(c0),
			check: failedWith("error", "overloaded", "Too busy.")},
		{name: "error event without data", script: ev(c0) + "event: error\n\n" + ev(c0stop), deliver: ev(c0),
			check: failedWith("error", "", "")},
		{name: "array-shaped error (Gemini)", script: ev(c0) + ev(`[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]`) + ev(c0stop), deliver: ev(c0),
			check: failedWith("", "503", "The model is overloaded.")},
		{name: "array-shaped error after [DONE]", script: ev(c0) + done + ev(`[{"error":{"code":500,"message":"late"}}]`), deliver: ev(c0) + done,
			check: failedWith("", "500", "late")},
		{name: "case-variant Error object after the finish", script: ev(c0) + ev(c0stop) + ev(`{"Error":{"message":"boom","type":"server_error","code":"late"}}`) + done, deliver: ev(c0) + ev(c0stop),
			check: failedWith("", "late", "boom")},
		{name: "case-variant ERROR string after [DONE]", script: ev(c0) + ev(c0stop) + done + ev(`{"ERROR":"quota exhausted"}`), deliver: ev(c0) + ev(c0stop) + done,
			check: failedWith("", "", "quota exhausted")},
		{name: "escaped case-variant \u0045rror", script: ev(c0) + ev(`{"\u0045rror":{"message":"esc","code":"e1"}}`) + ev(c0stop), deliver: ev(c0),
			check: failedWith("", "e1", "esc")},
		{name: "case-variant Error in an array", script: ev(c0) + done + ev(`[{"eRRoR":{"code":500,"message":"late"}}]`), deliver: ev(c0) + done,
			check: failedWith("", "500", "late")},
		{name: "case-variant Type error", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"Type":"error","message":"typed"}`), deliver: ev(rDelta), check: failedWith("", "", "typed")},
		{name: "duplicate type: an error under either reading", path: "/responses", body: respBody,
			script: ev(rDelta) + ev(`{"type":"error","type":"response.output_text.delta","message":"first"}`), deliver: ev(rDelta), check: failedWith("", "", "first")},

		// Malformed after the commit.
		{name: "malformed data", script: ev(c0) + "data: {\"choices\": [ not json\n\n" + ev(c0stop), deliver: ev(c0), check: is(gwtransport.ErrStreamMalformed)},
		{name: "garbage inside braces", script: ev(c0) + "data: {this is not json}\n\n" + ev(c0stop) + done, deliver: ev(c0), check: is(gwtransport.ErrStreamMalformed)},
		{name: "garbage inside brackets", script: ev(c0) + "data: [1,,2]\n\n" + ev(c0stop) + done, deliver: ev(c0), check: is(gwtransport.ErrStreamMalformed)},
		{name: "malformed finish chunk", script: ev(c0) + `data: {"choices":[{"index":0,"finish_reason":"stop",}]}` + "\n\n", deliver: ev(c0), check: is(gwtransport.ErrStreamMalformed)},
	}
	p := server(t, "primary", "key-p")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, path := tc.body, tc.path
			if body == "" {
				body = chatBody
			}
			if path == "" {
				path = "/chat/completions"
			}
			p.Enqueue(gatewaytest.Fault{Script: tc.script})
			res := rawRequest(t, p, path, body, gwtransport.WithStreamFinishGrace(20*time.Millisecond))
			got, err := io.ReadAll(res.Body)
			want := tc.deliver
			if want == "" {
				want = tc.script
			}
			assert.Equal(t, want, string(got))
			if tc.check == nil {
				require.NoError(t, err, "a complete stream ends in io.EOF")
			} else {
				require.Error(t, err)
				tc.check(t, err)
			}
			// Reading on repeats the end.
			n, again := res.Body.Read(make([]byte, 8))
			assert.Zero(t, n)
			if err == nil {
				assert.Equal(t, io.EOF, again)
			} else {
				assert.Equal(t, err, again)
			}
		})
	}
}

// TestStreamConformanceOpenAI: the same ends through a real openai-go
// client: an incomplete stream, an in-band error and a malformed event are
// errors the caller can match; complete ones end without error.
func TestStreamConformanceOpenAI(t *testing.T) {
	p := server(t, "primary", "key-p")
	c := openaiClient(p, "key-p", option.WithMaxRetries(0))
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithStreamFinishGrace(20*time.Millisecond))

	chatTests := []struct {
		name    string
		n       int64
		script  string
		wantErr error
	}{
		{name: "n=2, choice 0 finished", n: 2, script: ev(c01) + ev(c0stop), wantErr: gwtransport.ErrStreamTruncated},
		{name: "n=2, both finished", n: 2, script: ev(c01) + ev(c0stop) + ev(c1stop)},
		{name: `finish_reason ""`, script: ev(c0) + ev(c0empty), wantErr: gwtransport.ErrStreamTruncated},
		{name: "error after content", script: ev(c0) + named("error", rError) + ev(c0stop), wantErr: gwtransport.ErrStreamFailed},
		{name: "error object after content", script: ev(c0) + ev(chatError), wantErr: gwtransport.ErrStreamFailed},
		{name: "usage after the finish", script: ev(c0) + ev(c0stop) + ev(cUsage)},
		{name: "case-variant Finish_Reason alone", script: ev(c0) + ev(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"Finish_Reason":"stop"}]}`), wantErr: gwtransport.ErrStreamTruncated},
		{name: "finish under event thread.message", script: ev(c0) + named("thread.message", c0stop), wantErr: gwtransport.ErrStreamTruncated},
		{name: "case-variant Error object", script: ev(c0) + ev(`{"Error":{"message":"boom","code":"late"}}`), wantErr: gwtransport.ErrStreamFailed},
	}
	for _, tc := range chatTests {
		t.Run("chat/"+tc.name, func(t *testing.T) {
			p.Enqueue(gatewaytest.Fault{Script: tc.script})
			params := chatParams("gateway")
			if tc.n > 0 {
				params.N = openai.Int(tc.n)
			}
			s := c.Chat.Completions.NewStreaming(context.Background(), params)
			defer s.Close()
			text := ""
			for s.Next() {
				for _, ch := range s.Current().Choices {
					text += ch.Delta.Content
				}
			}
			if tc.wantErr == nil {
				require.NoError(t, s.Err())
			} else {
				require.ErrorIs(t, s.Err(), tc.wantErr)
			}
			assert.True(t, strings.HasPrefix(text, "Hi") || strings.HasPrefix(text, "ab"), text)
			assert.Equal(t, "gpt-4o", p.Journal()[len(p.Journal())-1].Model)
		})
	}

	respTests := []struct {
		name     string
		script   string
		wantErr  error
		wantLast string
	}{
		{name: "completed by data type only", script: ev(rCreated) + ev(rDelta) + ev(rCompleted), wantLast: "response.completed"},
		{name: "incomplete by event line", script: named("response.output_text.delta", rDelta) + named("response.incomplete", rIncomplete), wantLast: "response.incomplete"},
		{name: "deltas only", script: ev(rCreated) + ev(rDelta), wantErr: gwtransport.ErrStreamTruncated, wantLast: "response.output_text.delta"},
		{name: "response.failed without event line", script: ev(rCreated) + ev(rDelta) + ev(rFailed), wantErr: gwtransport.ErrStreamFailed, wantLast: "response.output_text.delta"},
	}
	for _, tc := range respTests {
		t.Run("responses/"+tc.name, func(t *testing.T) {
			p.Enqueue(gatewaytest.Fault{Script: tc.script})
			s := c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
				Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			})
			defer s.Close()
			last := ""
			for s.Next() {
				last = s.Current().Type
			}
			if tc.wantErr == nil {
				require.NoError(t, s.Err())
			} else {
				require.ErrorIs(t, s.Err(), tc.wantErr)
			}
			assert.Equal(t, tc.wantLast, last)
		})
	}
}

// TestStreamFailoverBeforeContent: comments, pings, empty data and
// Responses lifecycle events do not commit a stream, so every in-band
// error form that follows them fails over to the next target.
func TestStreamFailoverBeforeContent(t *testing.T) {
	preludes := map[string]string{
		"comment":               ": keep-alive\n\n",
		"event ping":            named("ping", `{}`),
		"data type ping":        ev(`{"type": "ping"}`),
		"empty data":            "data:\n\ndata: \n\n",
		"event without data":    "event: message\n\nid: 3\n\n",
		"lifecycle by event":    named("response.created", rCreated) + named("response.in_progress", rInProgress),
		"lifecycle by type":     ev(rCreated) + ev(rInProgress) + ev(`{"type":"response.queued","sequence_number":0}`),
		"all of them, CR LF":    strings.ReplaceAll(": x\n\n"+named("ping", `{"type":"ping"}`)+"data:\n\n"+named("response.created", rCreated), "\n", "\r\n"),
		"nothing (first event)": "",
	}
	errorsForms := map[string]struct {
		script string
		code   string
	}{
		"event error":                   {named("error", rError), "overloaded"},
		"event response.failed":         {named("response.failed", rFailed), "server_error"},
		"data type error":               {ev(rError), "overloaded"},
		"data type response.failed":     {ev(rFailed), "server_error"},
		"data error object":             {ev(chatError), "overloaded"},
		"event error, cut":              {"event: error\ndata: " + rError + "\n", "overloaded"},
		"error object under event ping": {named("ping", chatError), "overloaded"},
		"case-variant Error object":     {ev(`{"Error":{"message":"m","code":"overloaded"}}`), "overloaded"},
		"array-shaped error (Gemini)":   {ev(`[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]`), "503"},
		"array, error in 2nd element":   {ev(`[{"candidates":[]},{"error":{"code":"overloaded","message":"m"}}]`), "overloaded"},
	}
	for pname, prelude := range preludes {
		for ename, form := range errorsForms {
			t.Run(pname+"/"+ename, func(t *testing.T) {
				p := newPair(t)
				p.primary.Enqueue(gatewaytest.Fault{Script: prelude + form.script + ev(c0) + ev(c0stop) + done})
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				text, model, raw, err := p.ask(t, ctx, true)
				require.NoError(t, err)
				assert.Equal(t, answer(true, "fallback"), text)
				assert.Equal(t, "fallback-model", model)
				assert.Equal(t, []string{"gpt-4o"}, models(p.primary.Journal()))
				assert.Equal(t, []string{"fallback-model"}, models(p.fallback.Journal()))
				at := trail.Attempts()
				require.Len(t, at, 2)
				assert.Equal(t, gwtransport.NextTarget, at[0].Action)
				assert.Equal(t, 200, at[0].Status)
				assert.Equal(t, form.code, at[0].Code)
				assert.Equal(t, gwtransport.Succeed, at[1].Action)
				assert.Equal(t, "fb/fallback-model", raw.Header.Get(gwtransport.HeaderTarget))
				assert.Empty(t, p.clock.Sleeps(), "no wait before the next target")
			})
		}
	}
}

// TestStreamFailoverResponses: through openai-go's Responses client, the
// lifecycle events and then response.failed fail over; the caller sees
// only the fallback's stream.
func TestStreamFailoverResponses(t *testing.T) {
	p := newPair(t)
	p.primary.Enqueue(gatewaytest.Fault{Script: named("response.created", rCreated) + named("response.in_progress", rInProgress) + named("response.failed", rFailed)})
	s := p.client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	defer s.Close()
	var types []string
	text := ""
	for s.Next() {
		e := s.Current()
		types = append(types, e.Type)
		text += e.Delta
	}
	require.NoError(t, s.Err())
	assert.Equal(t, answer(true, "fallback"), text)
	assert.Equal(t, "response.created", types[0])
	assert.Equal(t, "response.completed", types[len(types)-1])
	assert.Equal(t, 1, p.primary.Count())
	assert.Equal(t, 1, p.fallback.Count())
}

// TestStreamQuietPreludeReplayed: what came before the first content
// event reaches the caller byte for byte once the stream commits.
func TestStreamQuietPreludeReplayed(t *testing.T) {
	p := server(t, "primary", "key-p")
	script := ": keep-alive\n\n" + named("ping", `{"type":"ping"}`) + "data:\n\n" + named("response.created", rCreated) + ev(c0) + ev(c0stop) + done
	p.Enqueue(gatewaytest.Fault{Script: script})
	got, err := io.ReadAll(rawRequest(t, p, "/chat/completions", chatBody).Body)
	require.NoError(t, err)
	assert.Equal(t, script, string(got))
	assert.Equal(t, 1, p.Count())
}

// slowRead reads body a few bytes at a time, pausing before each read.
func slowRead(body io.Reader, pause time.Duration) ([]byte, error) {
	var out []byte
	buf := make([]byte, 100)
	for {
		time.Sleep(pause)
		n, err := body.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestStreamSlowConsumer: a caller that pauses longer than the idle limit
// and the finish grace between reads (running a tool, say) while the
// provider is prompt gets every byte, the usage chunk, and a clean EOF:
// the limits measure the provider's silence, not the caller's.
func TestStreamSlowConsumer(t *testing.T) {
	// The provider sends each event promptly (2 ms apart), so what the
	// caller has not read yet is still on its way when the caller pauses.
	const limit = 25 * time.Millisecond
	const gap = 2 * time.Millisecond
	opts := []gwtransport.Option{gwtransport.WithStreamTimeouts(0, limit), gwtransport.WithStreamFinishGrace(limit)}
	scripts := map[string]gatewaytest.Fault{
		"[DONE]":               {Script: ev(c0) + ev(c0) + ev(c0stop) + ev(cUsage) + done, ScriptPause: gap},
		"no [DONE], closed":    {Script: ev(c0) + ev(c0) + ev(c0stop) + ev(cUsage), ScriptPause: gap},
		"no [DONE], held open": {Script: ev(c0) + ev(c0) + ev(c0stop) + ev(cUsage), ScriptPause: gap, HoldOpen: true},
	}
	for name, f := range scripts {
		t.Run(name, func(t *testing.T) {
			p := server(t, "primary", "key-p")
			p.Enqueue(f)
			got, err := slowRead(rawRequest(t, p, "/chat/completions", chatBody, opts...).Body, 3*limit)
			require.NoError(t, err)
			assert.Equal(t, f.Script, string(got))
		})
	}

	t.Run("openai-go", func(t *testing.T) {
		p := server(t, "primary", "key-p")
		c := openaiClient(p, "key-p")
		mustInit(t, c, []string{"openai/gpt-4o"}, append(opts, noEnv())...)
		p.Enqueue(gatewaytest.Fault{Script: ev(c0) + ev(c0) + ev(c0stop) + ev(cUsage), ScriptPause: gap, HoldOpen: true})
		s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
		defer s.Close()
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
			time.Sleep(3 * limit)
		}
		require.NoError(t, s.Err())
		assert.Equal(t, "HiHi", acc.Choices[0].Message.Content)
		assert.Equal(t, int64(12), acc.Usage.TotalTokens, "the usage chunk after the finish arrived")
	})
}

// TestStreamProviderSilence: a provider silent longer than the idle limit
// while the caller waits on it ends the stream with ErrStreamIdle, soon
// after the limit; silent after a finish, it ends cleanly after the grace.
func TestStreamProviderSilence(t *testing.T) {
	const idle = 30 * time.Millisecond
	t.Run("before the finish", func(t *testing.T) {
		p := server(t, "primary", "key-p")
		p.Enqueue(gatewaytest.Fault{Script: ev(c0) + ev(c0), HoldOpen: true})
		body := rawRequest(t, p, "/chat/completions", chatBody, gwtransport.WithStreamTimeouts(0, idle)).Body
		start := time.Now()
		got, err := io.ReadAll(body)
		require.ErrorIs(t, err, gwtransport.ErrStreamIdle)
		assert.Equal(t, ev(c0)+ev(c0), string(got))
		assert.GreaterOrEqual(t, time.Since(start), idle)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
	t.Run("between events, slower than idle", func(t *testing.T) {
		p := server(t, "primary", "key-p")
		p.Enqueue(gatewaytest.Fault{Script: ev(c0) + ev(c0) + ev(c0stop) + done, ScriptPause: 4 * idle})
		got, err := io.ReadAll(rawRequest(t, p, "/chat/completions", chatBody, gwtransport.WithStreamTimeouts(0, idle)).Body)
		require.ErrorIs(t, err, gwtransport.ErrStreamIdle)
		assert.Equal(t, ev(c0), string(got))
	})
	t.Run("between events, within idle", func(t *testing.T) {
		p := server(t, "primary", "key-p")
		script := ev(c0) + ev(c0) + ev(c0stop) + done
		p.Enqueue(gatewaytest.Fault{Script: script, ScriptPause: idle / 5})
		got, err := io.ReadAll(rawRequest(t, p, "/chat/completions", chatBody, gwtransport.WithStreamTimeouts(0, idle)).Body)
		require.NoError(t, err)
		assert.Equal(t, script, string(got))
	})
	t.Run("after the finish", func(t *testing.T) {
		p := server(t, "primary", "key-p")
		p.Enqueue(gatewaytest.Fault{Script: ev(c0) + ev(c0stop), HoldOpen: true})
		body := rawRequest(t, p, "/chat/completions", chatBody, gwtransport.WithStreamTimeouts(0, time.Minute), gwtransport.WithStreamFinishGrace(idle)).Body
		start := time.Now()
		got, err := io.ReadAll(body)
		require.NoError(t, err)
		assert.Equal(t, ev(c0)+ev(c0stop), string(got))
		assert.Less(t, time.Since(start), 2*time.Second)
	})
}

// TestStreamLineLimit: a line over MaxStreamLineBytes after the commit
// ends the stream with ErrStreamMalformed; the lines before it arrive.
func TestStreamLineLimit(t *testing.T) {
	p := server(t, "primary", "key-p")
	long := "data: {\"x\":\"" + strings.Repeat("a", gwtransport.MaxStreamLineBytes) + "\"}\n\n"
	p.Enqueue(gatewaytest.Fault{Script: ev(c0) + long + ev(c0stop) + done})
	got, err := io.ReadAll(rawRequest(t, p, "/chat/completions", chatBody).Body)
	require.ErrorIs(t, err, gwtransport.ErrStreamMalformed)
	assert.Contains(t, err.Error(), "longer than")
	assert.True(t, bytes.Equal([]byte(ev(c0)), got), "got %d bytes", len(got))
	assert.False(t, errors.Is(err, io.EOF))
}
