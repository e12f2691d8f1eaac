package gwtransport

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPrefillBody: the delivered text becomes the last message, valid JSON
// in every mode, whatever the messages array looks like.
func TestPrefillBody(t *testing.T) {
	text := []byte("a \"q\" \\ 日\n<b>")
	for _, tc := range []struct {
		body string
		mode Continuation
	}{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, ContinuePrefill},
		{`{"model":"m","messages":[ ] }`, ContinuePrefix},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"]\"}\n]\n}\n", ContinueFinalMessage},
		{`{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true,"model":"m"}`, ContinueFinalMessage},
	} {
		out := prefillBody([]byte(tc.body), text, tc.mode)
		require.True(t, json.Valid(out), "%s", out)
		var req struct {
			Messages []map[string]any `json:"messages"`
			Final    *bool            `json:"continue_final_message"`
			AddGen   *bool            `json:"add_generation_prompt"`
		}
		require.NoError(t, json.Unmarshal(out, &req))
		last := req.Messages[len(req.Messages)-1]
		assert.Equal(t, "assistant", last["role"])
		assert.Equal(t, string(text), last["content"])
		assert.Equal(t, tc.mode == ContinuePrefix, last["prefix"] == true)
		if tc.mode == ContinueFinalMessage {
			require.NotNil(t, req.Final)
			assert.True(t, *req.Final)
			require.NotNil(t, req.AddGen)
			assert.False(t, *req.AddGen, "the last duplicate wins, as Python reads it")
		} else {
			assert.Nil(t, req.Final)
		}
	}
}

// TestReplaceID: every top-level id, in any case, becomes the first
// stream's; a chunk without one gets it; nested ids are untouched.
func TestReplaceID(t *testing.T) {
	id := []byte(`"chatcmpl-1"`)
	for in, want := range map[string]string{
		`{"id":"x","choices":[]}`:                 `{"id":"chatcmpl-1","choices":[]}`,
		`{"ID":"x","id":"y"}`:                     `{"ID":"chatcmpl-1","id":"chatcmpl-1"}`,
		`{"choices":[{"id":"nested"}]}`:           `{"id":"chatcmpl-1","choices":[{"id":"nested"}]}`,
		`{ }`:                                     `{"id":"chatcmpl-1" }`,
		`{"\u0069d":"esc"}`:                       `{"\u0069d":"chatcmpl-1"}`,
		`{"model":"m", "id" : "z", "object":"c"}`: `{"model":"m", "id" : "chatcmpl-1", "object":"c"}`,
	} {
		got := replaceID(nil, []byte(in), id)
		assert.Equal(t, want, string(got), in)
		assert.True(t, json.Valid(got))
	}
}

// TestChunkContent: what a delivered chunk contributes to the prefill,
// and which chunks make a splice unsafe.
func TestChunkContent(t *testing.T) {
	for _, tc := range []struct {
		v        string
		text     string
		roleOnly bool
		ok       bool
	}{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, "", true, true},
		{`{"choices":[{"index":0,"delta":{"content":"a\u00e9\n"}}]}`, "aé\n", false, true},
		{`{"choices":[{"delta":{"content":null,"refusal":null}}]}`, "", true, true},
		{`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, "", false, true},
		{`{"choices":[{"index":0,"delta":{},"Finish_Reason":"stop"}]}`, "", false, true},
		{`{"choices":[],"usage":{"total_tokens":3}}`, "", false, true},
		{`{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}`, "a", false, true},
		{`{"choices":[{"index":0,"delta":{"content":"a","tool_calls":[{}]}}]}`, "", false, false},
		{`{"choices":[{"index":0,"delta":{"content":"a"}},{"index":0,"delta":{"content":"b"}}]}`, "", false, false},
		{`{"choices":[{"index":0,"delta":{"content":5}}]}`, "", false, false},
		{`{"choices":[{"index":"0","delta":{"content":"a"}}]}`, "", false, false},
		{`{"choices":[{"index":0,"delta":{"content":"a"},"delta":{"content":"b"}}]}`, "", false, false},
		{`{"choices":{"index":0}}`, "", false, false},
		{`[1]`, "", false, false},
		{`{"choices":[{"index":0,"delta":{"reasoning":"r"}}]}`, "", false, false},
	} {
		text, ok := chunkContent([]byte(tc.v))
		assert.Equal(t, tc.ok, ok, tc.v)
		if ok {
			assert.Equal(t, tc.text, string(text), tc.v)
			// A continuation drops a leading chunk only as the commit
			// point reads it: role-only.
			assert.Equal(t, tc.roleOnly, roleOnly([]byte(tc.v)), tc.v)
		}
	}
}
