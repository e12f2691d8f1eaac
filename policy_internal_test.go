package gwtransport

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestParseErrorBody: every error body shape providers send, and the
// classification that follows from it.
func TestParseErrorBody(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		body           string
		code, typ, msg string
		want           Action
	}{
		{"OpenAI", 400, `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"invalid_value"}}`, "invalid_value", "invalid_request_error", "bad", FailFast},
		{"code as a number", 400, `{"error":{"code":400,"message":"This model's maximum context length is 8192 tokens","status":"INVALID_ARGUMENT"}}`, "400", "", "This model's maximum context length is 8192 tokens", NextTarget},
		{"Gemini array", 400, `[{"error":{"code":400,"message":"The input token count exceeds the context window","status":"INVALID_ARGUMENT"}}]`, "400", "", "The input token count exceeds the context window", NextTarget},
		{"array of a non-object", 400, `["x"]`, "", "", "", FailFast},
		{"empty array", 400, `[]`, "", "", "", FailFast},
		{"truncated array", 400, `[{"error":{"code":"context_length_exceeded"`, "", "", "", FailFast},
		{"error as text", 400, `{"error":"model_not_found"}`, "", "", "model_not_found", FailFast},
		{"top level (Mistral)", 400, `{"object":"error","message":"bad","type":"invalid_request_error","code":"3051"}`, "3051", "invalid_request_error", "bad", FailFast},
		{"Azure content filter one level down", 400, `{"error":{"code":"BadRequest","message":"filtered","innererror":{"code":"ResponsibleAIPolicyViolation"}}}`, "ResponsibleAIPolicyViolation", "", "filtered", FailFast},
		{"model not found on a 400", 400, `{"error":{"code":"model_not_found","message":"The model x does not exist"}}`, "model_not_found", "", "The model x does not exist", NextTarget},
		{"quota exhausted on a 429", 429, `{"error":{"code":"insufficient_quota","type":"insufficient_quota","message":"You exceeded your current quota"}}`, "insufficient_quota", "insufficient_quota", "You exceeded your current quota", NextTarget},
		{"rate limited on a 429", 429, `{"error":{"code":"rate_limit_exceeded","message":"slow down"}}`, "rate_limit_exceeded", "", "slow down", RetrySame},
		{"escaped names", 400, `{"err\u006fr":{"c\u006fde":"context_length_exceeded"}}`, "context_length_exceeded", "", "", NextTarget},
		{"not JSON", 400, `<html>Bad Request</html>`, "", "", "", FailFast},
		{"null members", 400, `{"error":{"code":null,"type":null,"message":null}}`, "", "", "", FailFast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Outcome{Status: tc.status}
			parseErrorBody(&o, []byte(tc.body))
			assert.Equal(t, tc.code, o.Code, "code")
			assert.Equal(t, tc.typ, o.Type, "type")
			assert.Equal(t, tc.msg, o.Message, "message")
			assert.Equal(t, tc.want, DefaultPolicy(o))
		})
	}
}
