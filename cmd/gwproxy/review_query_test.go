package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewNoQueryInLogsSpansBodies: provider base URLs carrying a secret
// in their query string (a signed URL, an Azure Functions code), failing by
// reset and by refused connection, at debug level: no log line, span
// (attributes, status, events), metric or client body shows the query.
func TestReviewNoQueryInLogsSpansBodies(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())

	a := gatewaytest.NewServer(gatewaytest.WithName("a"))
	t.Cleanup(a.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close()
	const sig = "SIGSECRET0123456789"
	cfg := fmt.Sprintf(`proxy:
  keys:
    - name: all
      hash: sha256:%x
models:
  - target: a/m1
  - target: d/m2
defaults:
  max_retries: 0
providers:
  - name: a
    base_url: %s?sig=%s
    key_optional: true
  - name: d
    base_url: http://%s/v1?sig=%s
    key_optional: true
`, hashKey(keyAll), a.URL, sig, dead, sig)
	p := startProxy(t, cfg, proxyOpts{tel: newTelemetry(tp, mp)})
	a.Enqueue(gatewaytest.Fault{Reset: true})
	res, rb := p.do("POST", "/v1/chat/completions?caller=CALLERQ", keyAll, fmt.Sprintf(chatBody, "gateway"))
	t.Logf("%d %s", res.StatusCode, rb)
	assert.NotContains(t, string(rb), sig)
	a.Enqueue(gatewaytest.Fault{Reset: true})
	res, rb = p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(streamBody, "gateway"))
	t.Logf("%d %s", res.StatusCode, rb)
	assert.NotContains(t, string(rb), sig)

	logs := p.logs.String()
	assert.NotContains(t, logs, sig)
	assert.NotContains(t, logs, "CALLERQ")
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			assert.NotContains(t, kv.Value.Emit(), sig, "span %q attribute %s", s.Name, kv.Key)
			assert.NotContains(t, kv.Value.Emit(), "CALLERQ", "span %q attribute %s", s.Name, kv.Key)
		}
		assert.NotContains(t, s.Status.Description, sig)
		for _, ev := range s.Events {
			for _, kv := range ev.Attributes {
				assert.NotContains(t, kv.Value.Emit(), sig, "span %q event %s", s.Name, ev.Name)
			}
		}
	}
	mres, err := http.Get(p.URL + "/metrics")
	require.NoError(t, err)
	mb, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	assert.NotContains(t, string(mb), sig)
	assert.False(t, strings.Contains(string(mb), "CALLERQ"))
}
