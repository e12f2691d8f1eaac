package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewRouteLimitCaseVariantModel: a key limited to route "small"
// sends {"model":"gateway","MODEL":"small"}. The proxy decides the route with
// encoding/json (case-insensitive, last match wins: "small"), the engine
// with the last member named exactly "model" ("gateway"). The request must
// be refused (403) and reach no provider of route gateway.
func TestReviewRouteLimitCaseVariantModel(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, body := range []string{
		`{"model":"gateway","MODEL":"small","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gateway","Model":"small","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"a/m1","mOdEl":"small","messages":[{"role":"user","content":"hi"}]}`,
	} {
		t.Run(body, func(t *testing.T) {
			a.Reset()
			b.Reset()
			res, rb := p.do("POST", "/v1/chat/completions", keySmall, body)
			assert.NotEqual(t, 200, res.StatusCode, "a key limited to route small was served: %s (target %s)", rb, res.Header.Get("X-Gwtransport-Target"))
			assert.Equal(t, 0, a.Count(), "provider a (route gateway only) got a request from the small-only key")
		})
	}
	// The control: the plain spelling is refused.
	a.Reset()
	res, rb := p.do("POST", "/v1/chat/completions", keySmall, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 403, res.StatusCode, "%s", rb)
	assert.Equal(t, 0, a.Count())
}
