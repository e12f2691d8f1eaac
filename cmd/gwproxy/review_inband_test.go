package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewInBandErrorEchoingKey: a committed stream whose provider sends
// an in-band error echoing the provider key it received. The proxy client
// must not get the provider's key (the engine masks it in final failures,
// see TestReviewProviderKeyEchoNotHandedToClient).
func TestReviewInBandErrorEchoingKey(t *testing.T) {
	a := gatewaytest.NewServer(gatewaytest.WithName("a"), gatewaytest.WithAPIKey(reviewProvKey))
	t.Cleanup(a.Close)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\nmodels:\n  - target: a/m1\ndefaults:\n  max_retries: 0\nproviders:\n  - name: a\n    base_url: %s\n    api_key_env: A_KEY\n", hashKey(keyAll), a.URL)
	p := startProxy(t, cfg, proxyOpts{env: map[string]string{"A_KEY": reviewProvKey}})
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	a.Enqueue(gatewaytest.Fault{Script: chunk + `data: {"error":{"message":"key ` + reviewProvKey + ` revoked","type":"invalid_request_error","code":"k_` + reviewProvKey + `"}}` + "\n\n"})
	status, got, err := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, status, "%s", got)
	t.Logf("%q %v", got, err)
	assert.NotContains(t, got, reviewProvKey, "the provider's key reached the proxy client")
	assert.NotContains(t, p.logs.String(), reviewProvKey)
}
