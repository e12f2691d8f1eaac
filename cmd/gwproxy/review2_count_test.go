package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReview2CountsUnderConcurrency: many concurrent requests of every
// outcome (success, stream, 503 handed over, stream the client leaves,
// unknown model): one gwotel request span and one duration sample per
// routed request, gwproxy_requests_total sums to the requests, the
// attempts counter matches the attempt spans, nothing left in flight.
func TestReview2CountsUnderConcurrency(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 2s\n")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: newTelemetry(tp, mp)})
	const n = 20
	for i := 0; i < n; i++ {
		a.Enqueue(gatewaytest.Fault{Status: 503})
		b.Enqueue(gatewaytest.Fault{StallAfter: 1})
	}
	var wg sync.WaitGroup
	routed := 0
	for i := 0; i < 4*n; i++ {
		kind := i % 4
		if kind != 3 {
			routed++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body string
			switch kind {
			case 0:
				body = fmt.Sprintf(chatBody, "gateway")
			case 1, 2:
				body = fmt.Sprintf(streamBody, "gateway")
			case 3:
				body = fmt.Sprintf(chatBody, "nope")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+keyAll)
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			res, err := c.Do(req)
			if err != nil {
				return
			}
			defer res.Body.Close()
			if kind == 2 {
				buf := make([]byte, 10)
				_, _ = res.Body.Read(buf)
				cancel()
				return
			}
			_, _ = io.ReadAll(io.LimitReader(res.Body, 1<<20))
		}()
	}
	wg.Wait()
	// Streams stalled by b end by stream_idle (default?) or the client leaving.
	require.Eventually(t, func() bool {
		v, _ := metricValue(p.metrics(), "gwproxy_requests_in_flight", nil)
		return v == 0
	}, 20*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	_, reqSpans := review2RequestSpans(exp.GetSpans())
	assert.Equal(t, routed, len(reqSpans), "gwotel request spans")
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	var durCount uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "gen_ai.client.operation.duration" {
				for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
					durCount += dp.Count
				}
			}
		}
	}
	assert.Equal(t, uint64(routed), durCount, "duration samples")
	fams := p.metrics()
	total := 0.0
	for _, m := range fams["gwproxy_requests_total"].Metric {
		total += m.Counter.GetValue()
	}
	assert.Equal(t, float64(4*n), total, "gwproxy_requests_total")
	att := 0.0
	for _, m := range fams["gwproxy_attempts_total"].Metric {
		att += m.Counter.GetValue()
	}
	attemptSpans := 0
	reqIDs := map[string]bool{}
	for _, s := range reqSpans {
		reqIDs[s.SpanContext.SpanID().String()] = true
	}
	for _, s := range exp.GetSpans() {
		if reqIDs[s.Parent.SpanID().String()] {
			attemptSpans++
		}
	}
	assert.Equal(t, float64(attemptSpans), att, "gwproxy_attempts_total vs attempt spans")
}
