package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReview2UnverifiedBodyCutTelemetry: a non-streamed answer larger than
// max_verified_body (so handed over unread) is cut by the provider
// mid-body. The client gets a cut answer (an error); the request span must
// not say success ("Telemetry tells failures as the caller sees them"),
// and gwproxy must not count it as a 200.
func TestReview2UnverifiedBodyCutTelemetry(t *testing.T) {
	exp, tel := review2Tel(t)
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	cfg = strings.Replace(cfg, "defaults:\n  max_retries: 0\n", "defaults:\n  max_retries: 0\n  max_verified_body: 16\n", 1)
	p := startProxy(t, cfg, proxyOpts{env: env, tel: tel})
	a.Enqueue(gatewaytest.Fault{BodyCutAfter: 40})
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, "gateway")))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	b, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("client: status %d, %d bytes, err %v", res.StatusCode, len(b), rerr)
	require.Error(t, rerr, "the client did not see the cut")
	require.Eventually(t, func() bool { s, _ := review2RequestSpans(exp.GetSpans()); return len(s) == 1 }, 5*time.Second, 5*time.Millisecond)
	srvs, reqs := review2RequestSpans(exp.GetSpans())
	require.Len(t, reqs, 1)
	require.Len(t, srvs, 1)
	assert.Equal(t, codes.Error, srvs[0].Status.Code, "the server span of the cut answer")
	assert.Equal(t, codes.Error, reqs[0].Status.Code, "the request span of the cut answer")
	et, _ := review2Attr(reqs[0], "error.type")
	t.Logf("request span status %v error.type %q", reqs[0].Status, et)
	assert.NotEmpty(t, et, "the cut answer is a success in the request span")
	v, _ := metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": "200"})
	assert.Zero(t, v, "the cut answer is counted as a 200")
	v, _ = metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": "502"})
	assert.Equal(t, 1.0, v, "the cut answer is counted as a 502")
}
