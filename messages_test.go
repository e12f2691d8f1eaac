package gwtransport

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanBody(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantModel  string
		isString   bool
		nModels    int
		stream     bool
		wantErr    bool
		hasMsgs    bool
		hasInput   bool
		wantOutput string // the body after rewriting the model to "m2"
	}{
		{name: "plain", body: `{"model":"gateway","messages":[]}`, wantModel: "gateway", isString: true, nModels: 1, hasMsgs: true,
			wantOutput: `{"model":"m2","messages":[]}`},
		{name: "model after messages", body: `{"messages":[{"role":"user","content":"say \"model\": \"x\""}],"model":"gateway"}`, wantModel: "gateway", isString: true, nModels: 1, hasMsgs: true,
			wantOutput: `{"messages":[{"role":"user","content":"say \"model\": \"x\""}],"model":"m2"}`},
		{name: "white space", body: " {\n \"model\" :\t\"gateway\" ,\"stream\": true }\n", wantModel: "gateway", isString: true, nModels: 1, stream: true,
			wantOutput: " {\n \"model\" :\t\"m2\" ,\"stream\": true }\n"},
		{name: "nested model is not top-level", body: `{"metadata":{"model":"gateway"},"model":"gpt"}`, wantModel: "gpt", isString: true, nModels: 1,
			wantOutput: `{"metadata":{"model":"gateway"},"model":"m2"}`},
		{name: "escaped key", body: `{"mod\u0065l":"gateway"}`, wantModel: "gateway", isString: true, nModels: 1,
			wantOutput: `{"mod\u0065l":"m2"}`},
		{name: "escaped value", body: `{"model":"gate\u0077ay"}`, wantModel: "gateway", isString: true, nModels: 1,
			wantOutput: `{"model":"m2"}`},
		{name: "duplicate keys: last wins, all rewritten", body: `{"model":"x","model":"gateway"}`, wantModel: "gateway", isString: true, nModels: 2,
			wantOutput: `{"model":"m2","model":"m2"}`},
		{name: "model not a string", body: `{"model":{"name":"gateway"}}`, nModels: 1,
			wantOutput: `{"model":"m2"}`},
		{name: "stream false", body: `{"model":"g","stream":false}`, wantModel: "g", isString: true, nModels: 1, wantOutput: `{"model":"m2","stream":false}`},
		{name: "input", body: `{"model":"g","input":"hi"}`, wantModel: "g", isString: true, nModels: 1, hasInput: true, wantOutput: `{"model":"m2","input":"hi"}`},
		{name: "no model", body: `{"messages":[]}`, hasMsgs: true, wantOutput: `{"messages":[]}`},
		{name: "empty object", body: `{}`, wantOutput: `{}`},
		{name: "unterminated", body: `{"model":"gateway","messages":[`, wantModel: "gateway", isString: true, nModels: 1, wantErr: true},
		{name: "comment", body: `{"model":"gateway" /* c */}`, wantModel: "gateway", isString: true, nModels: 1, wantErr: true},
		{name: "trailing garbage", body: `{"model":"gateway"} x`, wantModel: "gateway", isString: true, nModels: 1, wantErr: true},
		{name: "control byte in model", body: "{\"model\":\"gate\x01way\"}", nModels: 1, wantErr: true},
		{name: "not an object", body: `["model"]`, wantErr: true},
		{name: "bad literal", body: `{"stream":tru,"model":"g"}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var info bodyInfo
			err := scanBody([]byte(tc.body), &info)
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantModel, string(info.model))
			assert.Equal(t, tc.isString, info.modelIsString)
			assert.Equal(t, tc.nModels, info.nModels)
			assert.Equal(t, tc.stream, info.stream)
			assert.Equal(t, tc.hasMsgs, info.messages.start >= 0)
			assert.Equal(t, tc.hasInput, info.input.start >= 0)
			if tc.wantErr {
				return
			}
			out := rewriteBody(nil, []byte(tc.body), &info, []byte(`"m2"`), nil)
			assert.Equal(t, tc.wantOutput, string(out))
			assert.Equal(t, json.Valid([]byte(tc.body)), json.Valid(out))
		})
	}
}

func TestRewritePrependsMessages(t *testing.T) {
	prepend, err := encodeMessages("p/m", []Message{{Role: "system", Content: "S \"quoted\""}})
	require.NoError(t, err)
	tests := []struct{ name, body, want string }{
		{"messages", `{"model":"g","messages":[{"role":"user","content":"hi"}]}`,
			`{"model":"m2","messages":[{"role":"system","content":"S \"quoted\""},{"role":"user","content":"hi"}]}`},
		{"empty messages", `{"messages":[ ],"model":"g"}`,
			`{"messages":[{"role":"system","content":"S \"quoted\""} ],"model":"m2"}`},
		{"responses string input", `{"model":"g","input":"hi"}`,
			`{"model":"m2","input":[{"role":"system","content":"S \"quoted\""},{"role":"user","content":"hi"}]}`},
		{"responses list input", `{"input":[{"role":"user","content":"hi"}],"model":"g"}`,
			`{"input":[{"role":"system","content":"S \"quoted\""},{"role":"user","content":"hi"}],"model":"m2"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var info bodyInfo
			err := scanBody([]byte(tc.body), &info)
			require.NoError(t, err)
			out := rewriteBody(nil, []byte(tc.body), &info, []byte(`"m2"`), prepend)
			assert.Equal(t, tc.want, string(out))
			assert.True(t, json.Valid(out))
		})
	}
}
