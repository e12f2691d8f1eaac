package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

const reviewProvKey = "sk-provider-a-secret-0123456789"

// TestReviewProviderKeyEchoNotHandedToClient: a provider that echoes the
// key it received in its error (as OpenAI-compatible servers do: "Incorrect
// API key provided: <key>") must not hand the provider's key to a proxy
// client, who is exactly the party gwproxy keeps provider keys from. The
// engine masks known secrets in codes, trails and logs (the attempt
// summaries below say [REDACTED]); gwproxy's writeFailure re-reads the
// provider's raw body and copies its message and code into the client's
// answer.
func TestReviewProviderKeyEchoNotHandedToClient(t *testing.T) {
	a := gatewaytest.NewServer(gatewaytest.WithName("a"), gatewaytest.WithAPIKey(reviewProvKey))
	t.Cleanup(a.Close)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: a/m1\ndefaults:\n  max_retries: 0\nproviders:\n  - name: a\n    base_url: %s\n    api_key_env: A_KEY\n", hashKey(keyAll), a.URL)
	p := startProxy(t, cfg, proxyOpts{env: map[string]string{"A_KEY": reviewProvKey}})
	for _, f := range []gatewaytest.Fault{
		{Status: 400, Type: "invalid_request_error", Code: "bad key " + reviewProvKey, Message: "bad request"},
		{Status: 401, Type: "invalid_request_error", Code: "invalid_api_key", Message: "Incorrect API key provided: " + reviewProvKey + "."},
	} {
		a.Enqueue(f)
		res, rb := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
		require.GreaterOrEqual(t, res.StatusCode, 400, "%s", rb)
		t.Logf("%d %s", res.StatusCode, rb)
		assert.NotContains(t, string(rb), reviewProvKey, "the provider's key reached the proxy client")
		for k, vs := range res.Header {
			for _, v := range vs {
				assert.NotContains(t, v, reviewProvKey, "header %s", k)
			}
		}
	}
	assert.NotContains(t, p.logs.String(), reviewProvKey)
}
