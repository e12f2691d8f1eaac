package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReview2ClientLeavesBeforeHeaders: a client that leaves while the
// provider has not answered: the request span and the attempt span say
// canceled; gwproxy logs and counts 499.
func TestReview2ClientLeavesBeforeHeaders(t *testing.T) {
	exp, tel := review2Tel(t)
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: tel})
	a.Enqueue(gatewaytest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, "gateway")))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	_, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.Error(t, err)
	require.Eventually(t, func() bool { s, _ := review2RequestSpans(exp.GetSpans()); return len(s) == 1 }, 5*time.Second, 5*time.Millisecond)
	_, reqs := review2RequestSpans(exp.GetSpans())
	require.Len(t, reqs, 1)
	et, _ := review2Attr(reqs[0], "error.type")
	assert.Equal(t, "canceled", et)
	for _, s := range exp.GetSpans() {
		if s.Parent.SpanID() == reqs[0].SpanContext.SpanID() {
			aet, _ := review2Attr(s, "error.type")
			assert.Equal(t, "canceled", aet, "attempt span %s", s.Name)
		}
	}
	v, ok := metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": "499"})
	assert.True(t, ok && v == 1, "499 counted: %v %v", v, ok)
}

// TestReview2RedirectThroughProxy: a provider's 3xx is a 502 to the client;
// the request span is an error.
func TestReview2RedirectThroughProxy(t *testing.T) {
	exp, tel := review2Tel(t)
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: tel})
	a.Enqueue(gatewaytest.Fault{Status: 307, Header: map[string]string{"Location": "http://evil.example/"}})
	b.Enqueue(gatewaytest.Fault{Status: 302, Header: map[string]string{"Location": "http://evil.example/"}})
	res, body := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	assert.Equal(t, 502, res.StatusCode, "%s", body)
	assert.Empty(t, res.Header.Get("Location"))
	require.Eventually(t, func() bool { s, _ := review2RequestSpans(exp.GetSpans()); return len(s) == 1 }, 5*time.Second, 5*time.Millisecond)
	srv, reqs := review2RequestSpans(exp.GetSpans())
	require.Len(t, reqs, 1)
	et, _ := review2Attr(reqs[0], "error.type")
	assert.NotEmpty(t, et)
	sc, _ := review2Attr(srv[0], "http.response.status_code")
	assert.Equal(t, "502", sc)
}
