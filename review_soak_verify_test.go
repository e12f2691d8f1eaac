package gwtransport_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewCutBodyThenFallbackRefusal: the primary's body is cut twice
// (1 retry), then the fallback refuses (404 model_not_found). "A fallback's
// refusal never hides such a failure": the caller's error names
// ErrResponseTruncated, not the fallback's 404.
func TestReviewCutBodyThenFallbackRefusal(t *testing.T) {
	for _, sdk := range []string{"openai-go", "go-openai"} {
		t.Run(sdk, func(t *testing.T) {
			p := server(t, "primary", "key-p")
			f := server(t, "fallback", "key-f")
			p.SetFault(&gatewaytest.Fault{BodyCutAfter: 40})
			f.SetFault(&gatewaytest.Fault{Status: 404, Code: "model_not_found", Type: "invalid_request_error", Message: "no such model"})
			opts := []gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(1),
				gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Millisecond, Multiplier: 1, Max: time.Millisecond}),
				gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: f.URL, APIKey: "key-f"})}
			var err error
			if sdk == "openai-go" {
				c := openaiClient(p, "key-p")
				mustInit(t, c, []string{"openai/gpt-4o", "mistral/m"}, opts...)
				_, _, err = chat(t, c, "gateway")
				var apiErr *openai.Error
				if errors.As(err, &apiErr) {
					t.Errorf("the fallback's refusal was handed over: %d %s", apiErr.StatusCode, apiErr.Code)
				}
			} else {
				tr, e := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "mistral/m"}, opts...)
				require.NoError(t, e)
				cfg := goopenai.DefaultConfig("key-p")
				cfg.BaseURL = p.URL
				cfg.HTTPClient = &http.Client{Transport: tr}
				_, err = goopenai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, gwtransport.ErrResponseTruncated)
			assert.Equal(t, 2, p.Count())
			assert.Equal(t, 1, f.Count())
		})
	}
}

// TestReviewInBandRefusalBothSDKs: a content-policy refusal inside a 200 is
// handed over as a 400 API error through both SDKs, and never opens the
// breaker (ConsecutiveFailures 1, six refusals).
func TestReviewInBandRefusalBothSDKs(t *testing.T) {
	p := server(t, "primary", "key-p")
	f := server(t, "fallback", "key-f")
	p.SetFault(&gatewaytest.Fault{Status: 200, Body: `{"error":{"message":"refused by policy","type":"invalid_request_error","code":"content_policy_violation"}}`})
	opts := []gwtransport.Option{noEnv(),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Minute)}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: f.URL, APIKey: "key-f"})}
	c := openaiClient(p, "key-p")
	mgr := mustInit(t, c, []string{"openai/gpt-4o", "mistral/m"}, opts...)
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "mistral/m"}, opts...)
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("key-p")
	cfg.BaseURL = p.URL
	cfg.HTTPClient = &http.Client{Transport: tr}
	gc := goopenai.NewClientWithConfig(cfg)
	for i := 0; i < 3; i++ {
		_, raw, err := chat(t, c, "gateway")
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 400, apiErr.StatusCode)
		assert.Equal(t, "content_policy_violation", apiErr.Code)
		assert.Equal(t, "refused by policy", apiErr.Message)
		if raw != nil {
			assert.Equal(t, "200", raw.Header.Get("X-Gwtransport-Status-Rewritten"))
		}
		_, err = gc.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
		var ge *goopenai.APIError
		require.ErrorAs(t, err, &ge)
		assert.Equal(t, 400, ge.HTTPStatusCode)
		assert.Equal(t, "refused by policy", ge.Message)
	}
	assert.Equal(t, 0, f.Count(), "a refusal fails fast")
	for _, s := range append(mgr.Stats(), tr.Stats()...) {
		assert.NotEqual(t, gwtransport.BreakerOpen, s.Breaker, s.Target)
	}
}
