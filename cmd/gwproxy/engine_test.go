package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestAzureTarget: an Azure OpenAI target (the built-in "azure" provider,
// endpoint and key from the environment) gets its deployment URL, its
// api-version and its key in api-key; the proxy key reaches it in no form.
func TestAzureTarget(t *testing.T) {
	az := gatewaytest.NewServer(gatewaytest.WithName("azure"), gatewaytest.WithAPIKey("key-az"))
	t.Cleanup(az.Close)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: azure/my-gpt\n", hashKey(keyAll))
	env := map[string]string{"AZURE_OPENAI_ENDPOINT": az.Endpoint, "AZURE_OPENAI_API_KEY": "key-az", "OPENAI_API_VERSION": "2024-10-21"}
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		path, body, wantPath, wantQuery, wantModel string
	}{
		{"/v1/chat/completions", chatBody, "/openai/deployments/my-gpt/chat/completions", "api-version=2024-10-21", "gateway"},
		{"/v1/embeddings", `{"model":%q,"input":"x"}`, "/openai/deployments/my-gpt/embeddings", "api-version=2024-10-21", "gateway"},
		{"/v1/responses", `{"model":%q,"input":"x"}`, "/openai/responses", "api-version=2024-10-21", "my-gpt"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			az.Reset()
			res, rb := p.do("POST", tc.path, keyAll, fmt.Sprintf(tc.body, "gateway"))
			require.Equal(t, 200, res.StatusCode, "%s", rb)
			assert.Equal(t, "azure/my-gpt", res.Header.Get(gwtransport.HeaderTarget))
			require.Equal(t, 1, az.Count())
			j := az.Journal()[0]
			assert.Equal(t, tc.wantPath, j.Path)
			assert.Equal(t, tc.wantQuery, j.Query)
			assert.Equal(t, gatewaytest.Mask("key-az"), j.Header.Get("Api-Key"))
			assert.Empty(t, j.Header.Get("Authorization"))
			noProxyKeyAt(t, az)
		})
	}
}

// TestNoTargetAvailable: when the breaker has every target out, the client
// gets 503 with Retry-After and an OpenAI-shaped error naming the cause,
// and no provider is asked.
func TestNoTargetAvailable(t *testing.T) {
	c := gatewaytest.NewServer(gatewaytest.WithName("c"))
	t.Cleanup(c.Close)
	c.SetFault(&gatewaytest.Fault{Status: 500})
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: c/m\ndefaults:\n  max_retries: 0\n  max_retry_wait: 10ms\ncircuit_breaker:\n  consecutive_failures: 1\n  cooldown: 1m\nproviders:\n  - name: c\n    base_url: %s\n    key_optional: true\n", hashKey(keyAll), c.URL)
	p := startProxy(t, cfg, proxyOpts{})
	res, rb := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 500, res.StatusCode, "%s", rb)
	res, rb = p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 503, res.StatusCode, "%s", rb)
	e := decodeError(t, rb)
	assert.Equal(t, "no_target_available", e.Error.Code)
	assert.Contains(t, e.Error.Message, "no target available")
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", res.Header.Get("Retry-After"))
	assert.InDelta(t, 60, ra, 2)
	assert.Equal(t, 1, c.Count(), "the open breaker kept the second request from the provider")
	v, _ := metricValue(p.metrics(), "gwproxy_breaker_state", map[string]string{"target": "c/m", "state": "open"})
	assert.Equal(t, 1.0, v)
}

// TestClientGoneEndsTheAttempt: a client that goes away mid-stream ends
// the provider's request too; nothing keeps streaming for no one.
func TestClientGoneEndsTheAttempt(t *testing.T) {
	gone := make(chan struct{})
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(gone)
	})
	url, _ := serveFor(t, prov)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: p/m\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), url)
	p := startProxy(t, cfg, proxyOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "data: ")
	cancel()
	res.Body.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the provider's request outlived the client")
	}
}

// TestRouteAttributionMatchesTheEngine: for every name a client may send,
// the route the proxy checks the key against is the route the engine
// serves it with; a mismatch would let a key limited to one route use
// another. Configurations with shared targets, aliases and a route named
// like another route's target.
func TestRouteAttributionMatchesTheEngine(t *testing.T) {
	a := gatewaytest.NewServer(gatewaytest.WithName("a"))
	t.Cleanup(a.Close)
	b := gatewaytest.NewServer(gatewaytest.WithName("b"))
	t.Cleanup(b.Close)
	provs := fmt.Sprintf("providers:\n  - name: a\n    base_url: %s\n    key_optional: true\n  - name: b\n    base_url: %s\n    key_optional: true\n", a.URL, b.URL)
	keys := fmt.Sprintf("proxy:\n  keys:\n    - name: k\n      hash: sha256:%x\n", hashKey(keyAll))
	for _, cfg := range []string{
		"models:\n  - target: a/m1\n  - target: b/m2\n    alias: second\nroutes:\n  - name: small\n    models:\n      - target: b/m2\n      - target: a/m1\n",
		"routes:\n  - name: r1\n    models:\n      - target: a/m1\n        alias: x\n  - name: r2\n    models:\n      - target: a/m1\n      - target: b/m2\n        alias: y\n",
		"route: main\nmodels:\n  - target: a/m1\nroutes:\n  - name: a/m1\n    models:\n      - target: b/m2\n",
	} {
		p := startProxy(t, keys+cfg+provs, proxyOpts{})
		st := p.s.state.Load()
		require.NotEmpty(t, st.names)
		for name, route := range st.names {
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", originBase+"/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, name)))
			req.Header.Set("Content-Type", "application/json")
			res, err := st.tr.RoundTrip(req)
			require.NoError(t, err, name)
			res.Body.Close()
			at := trail.Attempts()
			require.NotEmpty(t, at, name)
			assert.Equal(t, route, at[0].Route, "name %q", name)
		}
		require.NoError(t, p.stop())
	}
}
