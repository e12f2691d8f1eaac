package gwtransport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// rawWith is a whole 200 with the given header lines (each "Name: value")
// and body, its length declared.
func rawWith(headers []string, body string) string {
	h := "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	for _, l := range headers {
		h += l + "\r\n"
	}
	return h + "\r\n" + body
}

const overloaded = `{"error":{"message":"The server is overloaded","type":"server_error","code":"overloaded"}}`

// TestVerifiedJSONReadings: every reading of a non-streamed 200 that an
// SDK decodes as JSON is verified as JSON (go-openai decodes any 200,
// openai-go any media type containing "application/json" or ending in
// +json, neither minds a Content-Encoding net/http leaves alone): an error
// in band fails over, a body that is not the JSON it says or looks to be
// fails over as malformed; a body that neither says nor looks like JSON,
// binary content that starts like JSON by accident, a valid JSON sequence
// and a compressed body are handed over byte for byte.
func TestVerifiedJSONReadings(t *testing.T) {
	const handed = "handed over"
	for _, tc := range []struct {
		name    string
		headers []string
		body    string
		want    any // handed, or the error the first attempt fails with
	}{
		// Errors in band, whatever the Content-Type and Content-Encoding say.
		{"text/plain in band", []string{"Content-Type: text/plain; charset=utf-8"}, overloaded, gwtransport.ErrResponseFailed},
		{"bogus Content-Encoding UTF-8", []string{"Content-Type: application/json", "Content-Encoding: UTF-8"}, overloaded, gwtransport.ErrResponseFailed},
		{"Content-Encoding identity", []string{"Content-Type: application/json", "Content-Encoding: identity"}, overloaded, gwtransport.ErrResponseFailed},
		{"application/jsonl", []string{"Content-Type: application/jsonl"}, overloaded, gwtransport.ErrResponseFailed},
		{"application/x-ndjson, first value", []string{"Content-Type: application/x-ndjson"}, overloaded + "\n" + okBody("x") + "\n", gwtransport.ErrResponseFailed},
		{"APPLICATION/JSON upper case", []string{"Content-Type: APPLICATION/JSON; charset=UTF-8"}, overloaded, gwtransport.ErrResponseFailed},
		{"text/json", []string{"Content-Type: text/json"}, overloaded, gwtransport.ErrResponseFailed},
		{"text/html", []string{"Content-Type: text/html"}, overloaded, gwtransport.ErrResponseFailed},
		{"no Content-Type, leading white space", nil, "\r\n\t " + overloaded, gwtransport.ErrResponseFailed},
		{"audio/mpeg that is an error", []string{"Content-Type: audio/mpeg"}, overloaded, gwtransport.ErrResponseFailed},
		{"octet-stream that is an error", []string{"Content-Type: application/octet-stream"}, overloaded, gwtransport.ErrResponseFailed},
		{"case-variant member, text/plain", []string{"Content-Type: text/plain"}, `{"ERROR":{"message":"boom"}}`, gwtransport.ErrResponseFailed},
		// Malformed: says or looks like JSON, and is not.
		{"bogus Content-Encoding, cut JSON", []string{"Content-Type: application/json", "Content-Encoding: UTF-8"}, okBody("x")[:40], gwtransport.ErrResponseMalformed},
		{"text/plain, cut JSON", []string{"Content-Type: text/plain"}, okBody("x")[:40], gwtransport.ErrResponseMalformed},
		{"text/plain, cut array", []string{"Content-Type: text/plain"}, "[1,2", gwtransport.ErrResponseMalformed},
		{"jsonl, cut second line", []string{"Content-Type: application/jsonl"}, `{"a":1}` + "\n" + `{"b":`, gwtransport.ErrResponseMalformed},
		{"ndjson, not JSON", []string{"Content-Type: application/x-ndjson"}, "not json", gwtransport.ErrResponseMalformed},
		{"jsonl, empty", []string{"Content-Type: application/jsonl"}, "", gwtransport.ErrResponseMalformed},
		{"problem+json, HTML", []string{"Content-Type: application/problem+json"}, "<html></html>", gwtransport.ErrResponseMalformed},
		// Handed over as they are.
		{"text/plain text", []string{"Content-Type: text/plain"}, "Hello, world {not json", handed},
		{"text/plain, brace after text", []string{"Content-Type: text/plain"}, "  hello {", handed},
		{"text/html page", []string{"Content-Type: text/html"}, "<html><body>hi</body></html>", handed},
		{"audio starting with a brace", []string{"Content-Type: audio/mpeg"}, "{\x00\xff\xfb\x90binary", handed},
		{"image starting with a bracket", []string{"Content-Type: image/png"}, "[\x89PNG\r\n", handed},
		{"octet-stream starting with a brace", []string{"Content-Type: application/octet-stream"}, "{garbage", handed},
		{"brotli starting with a brace", []string{"Content-Type: application/json", "Content-Encoding: br"}, "{\x01\x02not json", handed},
		{"ndjson sequence", []string{"Content-Type: application/x-ndjson"}, `{"a":1}` + "\n" + `{"b":2}` + "\n", handed},
		{"json-seq sequence", []string{"Content-Type: application/json-seq"}, "\x1e{\"a\":1}\n\x1e{\"b\":2}\n", handed},
		{"jsonl, error only in a later value", []string{"Content-Type: application/jsonl"}, okBody("x") + "\n" + overloaded, handed},
		{"completion as text/plain", []string{"Content-Type: text/plain"}, okBody("primary"), handed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifySetup(t, func(int) wire { return wire{raw: rawWith(tc.headers, tc.body)} })
			ctx, trail := gwtransport.WithTrail(context.Background())
			res, body, err := v.post(t, ctx)
			require.NoError(t, err)
			as := trail.Attempts()
			require.NotEmpty(t, as)
			if tc.want == handed {
				assert.Equal(t, 200, res.StatusCode)
				assert.Equal(t, tc.body, string(body), "the provider's bytes, unchanged")
				assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
				assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
				assert.Empty(t, res.Header.Get(gwtransport.HeaderStatusRewritten))
				assert.Zero(t, v.fallback.Count())
				return
			}
			assert.Equal(t, 200, res.StatusCode)
			assert.Contains(t, string(body), "Hello from fallback")
			assert.Equal(t, "fb/fallback-model", res.Header.Get(gwtransport.HeaderTarget))
			require.Len(t, as, 4, "three tries of the primary, then the fallback")
			for _, a := range as[:3] {
				assert.Equal(t, 200, a.Status)
				assert.ErrorIs(t, a.Err, tc.want.(error))
				assert.Equal(t, gwtransport.RetrySame, a.Action)
			}
			assert.Equal(t, 1, v.fallback.Count())
		})
	}
}

// TestInBandErrorHandedOverWithItsStatus: an error in band that is final
// reaches the caller with the error status it implies, never as a 2xx
// that SDKs decode as an empty success: the provider's body, byte for
// byte, X-Should-Retry: false, the gateway's headers, and the provider's
// own status in X-Gwtransport-Status-Rewritten. openai-go returns an
// *openai.Error and go-openai an *APIError with the provider's code and
// message, and neither retries. A policy that fails fast on every error in
// band reaches every status the classification gives.
func TestInBandErrorHandedOverWithItsStatus(t *testing.T) {
	failFastInBand := gwtransport.WithPolicy(func(o gwtransport.Outcome) gwtransport.Action {
		if errors.Is(o.Err, gwtransport.ErrResponseFailed) {
			return gwtransport.FailFast
		}
		return gwtransport.DefaultPolicy(o)
	})
	for _, tc := range []struct {
		name, body, code, typ, msg string
		status                     int
		apiError                   bool // the SDKs read an API error (an error object with a string code)
	}{
		{"content policy", `{"error":{"message":"refused","type":"invalid_request_error","code":"content_policy_violation"}}`, "content_policy_violation", "invalid_request_error", "refused", 400, true},
		{"content filter", `{"error":{"message":"filtered","code":"content_filter"}}`, "content_filter", "", "filtered", 400, true},
		{"context length", `{"error":{"message":"too long","code":"context_length_exceeded"}}`, "context_length_exceeded", "", "too long", 400, true},
		{"invalid request", `{"error":{"message":"bad","type":"invalid_request_error"}}`, "", "invalid_request_error", "bad", 400, true},
		{"authentication", `{"error":{"message":"who","type":"authentication_error"}}`, "", "authentication_error", "who", 401, true},
		{"permission", `{"error":{"message":"no","type":"permission_error"}}`, "", "permission_error", "no", 403, true},
		{"model not found", `{"error":{"message":"no model","code":"model_not_found"}}`, "model_not_found", "", "no model", 404, true},
		{"not found", `{"error":{"message":"gone","type":"not_found_error"}}`, "", "not_found_error", "gone", 404, true},
		{"quota", `{"error":{"message":"pay","type":"insufficient_quota","code":"insufficient_quota"}}`, "insufficient_quota", "insufficient_quota", "pay", 429, true},
		{"rate limit", `{"error":{"message":"slow down","type":"rate_limit_error"}}`, "", "rate_limit_error", "slow down", 429, true},
		{"server error", overloaded, "overloaded", "server_error", "The server is overloaded", 502, true},
		{"numeric code in range", `{"error":{"message":"Rate limit exceeded","code":429}}`, "", "", "Rate limit exceeded", 429, false},
		{"numeric code 503", `{"error":{"message":"down","code":503}}`, "", "", "down", 503, false},
		{"numeric code out of range", `{"error":{"message":"odd","code":200}}`, "", "", "odd", 502, false},
		{"string error", `{"error":"boom"}`, "", "", "", 502, false},
		{"as text/plain", "\n" + `{"error":{"message":"refused","type":"invalid_request_error","code":"content_policy_violation"}}`, "content_policy_violation", "invalid_request_error", "refused", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := "Content-Type: application/json"
			if tc.name == "as text/plain" {
				ct = "Content-Type: text/plain"
			}
			v := newVerifySetup(t, func(int) wire {
				return wire{raw: rawWith([]string{ct, "X-Gwtransport-Status-Rewritten: 999"}, tc.body)}
			}, failFastInBand)
			ctx, trail := gwtransport.WithTrail(context.Background())
			res, body, err := v.post(t, ctx)
			require.NoError(t, err)
			assert.Equal(t, tc.status, res.StatusCode)
			assert.Equal(t, strconv.Itoa(tc.status)+" "+http.StatusText(tc.status), res.Status)
			assert.Equal(t, tc.body, string(body), "the provider's body, byte for byte")
			assert.Equal(t, "200", res.Header.Get(gwtransport.HeaderStatusRewritten), "the provider's own status, never the provider's header")
			assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
			assert.Equal(t, "openai/gpt-4o", res.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
			assert.Equal(t, strconv.Itoa(len(tc.body)), res.Header.Get("Content-Length"))
			as := trail.Attempts()
			require.Len(t, as, 1)
			assert.Equal(t, 200, as[0].Status, "the trail keeps the status the provider sent")
			assert.Equal(t, gwtransport.FailFast, as[0].Action)
			assert.ErrorIs(t, as[0].Err, gwtransport.ErrResponseFailed)

			// openai-go (its own retries on): an error, never a success.
			r, err := v.client.Chat.Completions.New(context.Background(), chatParams("gateway"))
			assert.Nil(t, r)
			require.Error(t, err)
			var oerr *openai.Error
			if tc.apiError {
				require.ErrorAs(t, err, &oerr)
				assert.Equal(t, tc.status, oerr.StatusCode)
				assert.Equal(t, tc.code, oerr.Code)
				assert.Equal(t, tc.typ, oerr.Type)
				assert.Equal(t, tc.msg, oerr.Message)
			}

			// go-openai: an error, never a success.
			cfg := goopenai.DefaultConfig("key-p")
			cfg.BaseURL = v.raw.URL + "/v1"
			cfg.HTTPClient = v.hc
			gr, gerr := goopenai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{
				Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hi"}},
			})
			require.Error(t, gerr)
			assert.Empty(t, gr.Choices)
			if tc.apiError {
				var gapi *goopenai.APIError
				require.ErrorAs(t, gerr, &gapi)
				assert.Equal(t, tc.status, gapi.HTTPStatusCode)
				assert.Equal(t, tc.msg, gapi.Message)
				assert.Equal(t, tc.typ, gapi.Type)
				if tc.code != "" {
					assert.Equal(t, tc.code, gapi.Code)
				}
			} else {
				// A RequestError when go-openai cannot read an error object,
				// else its APIError.
				var gapi *goopenai.APIError
				var greq *goopenai.RequestError
				if errors.As(gerr, &greq) {
					assert.Equal(t, tc.status, greq.HTTPStatusCode)
				} else {
					require.ErrorAs(t, gerr, &gapi)
					assert.Equal(t, tc.status, gapi.HTTPStatusCode)
					assert.Equal(t, tc.msg, gapi.Message)
				}
			}
			assert.Equal(t, 3, int(v.raw.n.Load()), "one request per call: no SDK retried")
			assert.Zero(t, v.fallback.Count())
		})
	}
}

// TestStreamedRefusalKeepsItsStatus: the status rewrite is for verified
// (non-streamed) bodies only: a streamed request refused in its first
// event is handed over as the provider sent it, a 200 whose bytes up to the
// refusal the SDK reads as an error event.
func TestStreamedRefusalKeepsItsStatus(t *testing.T) {
	sse := "data: " + `{"error":{"message":"refused","type":"invalid_request_error","code":"content_policy_violation"}}` + "\n\n"
	v := newVerifySetup(t, func(int) wire {
		return wire{raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\n" + sse}
	})
	req, _ := http.NewRequest(http.MethodPost, v.raw.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gateway","stream":true,"messages":[{"role":"user","content":"Hello!"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer key-p")
	res, err := v.hc.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.Empty(t, res.Header.Get(gwtransport.HeaderStatusRewritten))
	assert.Equal(t, sse, string(body))
	assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
	assert.Zero(t, v.fallback.Count())
}
