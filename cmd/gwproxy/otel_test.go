package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestTracing: with telemetry on, a request that falls back makes, in the
// client's trace (W3C traceparent), a server span, gwotel's request span
// under it, and one attempt span per attempt under that, naming targets
// and statuses; the GenAI duration metric is recorded. No span carries a
// key or a query string.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())

	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: newTelemetry(tp, mp)})
	a.Enqueue(gatewaytest.Fault{Status: 503})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	res, rb := p.do("POST", "/v1/chat/completions?secret=q", keyAll, fmt.Sprintf(chatBody, "gateway"),
		"Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	require.Equal(t, 200, res.StatusCode, "%s", rb)
	require.Equal(t, 1, a.Count())
	require.Equal(t, 1, b.Count())

	// The answer has its Content-Length: the client may have read it
	// before the handler returned and the server span ended.
	hasServer := func() bool {
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindServer {
				return true
			}
		}
		return false
	}
	require.Eventually(t, hasServer, 5*time.Second, time.Millisecond, "no server span")
	spans := exp.GetSpans()
	var server, request *tracetest.SpanStub
	var attempts []tracetest.SpanStub
	for i := range spans {
		s := &spans[i]
		assert.Equal(t, traceID, s.SpanContext.TraceID().String(), "span %q is not in the client's trace", s.Name)
		for _, kv := range s.Attributes {
			for _, secret := range []string{keyAll, "key-a", "key-b", "secret=q"} {
				assert.NotContains(t, kv.Value.Emit(), secret, "span %q attribute %s", s.Name, kv.Key)
			}
		}
		if s.SpanKind == trace.SpanKindServer {
			server = s
		}
	}
	require.NotNil(t, server, "no server span in %v", names(spans))
	assert.Equal(t, "POST /v1/chat/completions", server.Name)
	assert.Contains(t, server.Attributes, attribute.Int("http.response.status_code", 200))
	for i := range spans {
		if spans[i].Parent.SpanID() == server.SpanContext.SpanID() {
			request = &spans[i]
		}
	}
	require.NotNil(t, request, "no request span under the server span in %v", names(spans))
	assert.Contains(t, request.Attributes, attribute.String("gen_ai.request.model", "gateway"))
	for _, s := range spans {
		if s.Parent.SpanID() == request.SpanContext.SpanID() {
			attempts = append(attempts, s)
		}
	}
	require.Len(t, attempts, 2, "attempt spans under the request span, in %v", names(spans))
	var targets []string
	for _, s := range attempts {
		for _, kv := range s.Attributes {
			if kv.Key == "gwtransport.target" {
				targets = append(targets, kv.Value.AsString())
			}
		}
	}
	assert.ElementsMatch(t, []string{"a/m1", "b/m2"}, targets)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "gen_ai.client.operation.duration" {
				found = true
			}
		}
	}
	assert.True(t, found, "gen_ai.client.operation.duration not recorded")
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
