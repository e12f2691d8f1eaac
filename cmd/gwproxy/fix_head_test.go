package main

import (
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRouteLimitOverRandomBodies: bodies made of top-level members named
// like "model" and "stream" in every spelling a decoder may fold (exact,
// other cases, escaped, U+017F for s) with every kind of value, sent with
// the key limited to route small: none reaches a provider of route
// gateway, whatever the proxy answers; an answer the proxy streams is the
// answer the engine streamed (SSE), and no other; a body with a case
// variant of "model" is refused with 400 before any provider.
func TestRouteLimitOverRandomBodies(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	p := startProxy(t, cfg, proxyOpts{env: env})
	modelNames := []string{`"model"`, `"model"`, `"Model"`, `"MODEL"`, `"mod\u0065l"`, `"m\u006fdel"`}
	streamNames := []string{`"stream"`, `"Stream"`, `"\u017ftream"`, `"STREAM"`}
	models := []string{`"gateway"`, `"small"`, `"a/m1"`, `"b/m2"`, `"second"`, `null`, `1`, `["small"]`}
	streams := []string{`true`, `false`, `null`}
	rng := rand.New(rand.NewPCG(7, 11))
	served := 0
	for i := 0; i < 1000; i++ {
		var members []string
		variant := false
		for n := 1 + rng.IntN(3); n > 0; n-- {
			name := modelNames[rng.IntN(len(modelNames))]
			variant = variant || strings.EqualFold(name, `"model"`) && name != `"model"`
			members = append(members, name+":"+models[rng.IntN(len(models))])
		}
		if rng.IntN(2) == 0 {
			members = append(members, streamNames[rng.IntN(len(streamNames))]+":"+streams[rng.IntN(len(streams))])
		}
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		body := "{" + strings.Join(members, ",") + `,"messages":[{"role":"user","content":"hi"}]}`
		a.Reset()
		b.Reset()
		res, rb := p.do("POST", "/v1/chat/completions", keySmall, body)
		require.Equal(t, 0, a.Count(), "%s reached route gateway's provider with the small-only key: %d %s", body, res.StatusCode, rb)
		if variant {
			assert.Equal(t, http.StatusBadRequest, res.StatusCode, "%s: %s", body, rb)
			assert.Equal(t, 0, b.Count(), "%s", body)
		}
		if res.StatusCode == 200 {
			served++
			mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
			assert.Equal(t, mt == "text/event-stream", res.Header.Get("X-Accel-Buffering") == "no", "%s: Content-Type %q, X-Accel-Buffering %q", body, res.Header.Get("Content-Type"), res.Header.Get("X-Accel-Buffering"))
		}
	}
	assert.Greater(t, served, 10, "too few bodies served for the test to say anything")
}
