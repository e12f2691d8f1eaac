package main

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gwotel"
)

// tracerName is the instrumentation scope of the proxy's server spans.
const tracerName = "github.com/gwtransport/gwtransport/cmd/gwproxy"

// telemetry is the OpenTelemetry wiring of the proxy: a server span per
// API request (joining the client's trace when it sends a W3C
// traceparent), and gwotel's GenAI spans and metrics inside it: the
// request span and a child span per attempt.
type telemetry struct {
	tracer trace.Tracer
	engine []gwtransport.Option
}

// newTelemetry records with the given providers.
func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	return &telemetry{
		tracer: tp.Tracer(tracerName),
		engine: []gwtransport.Option{gwotel.Option(gwotel.WithTracerProvider(tp), gwotel.WithMeterProvider(mp))},
	}
}

// install puts the telemetry into a server being built.
func (t *telemetry) install(s *Server) {
	s.wrap = t.wrap
	s.engineOptions = append(s.engineOptions, t.engine...)
}

// wrap starts the server span of each API request. The handler sets its
// status (see serveAPI); the span ends when the handler returns, or
// panics to abort a broken stream.
func (t *telemetry) wrap(h http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		// The path only: never the query string.
		ctx, span := t.tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// telemetryFromEnv turns OpenTelemetry on when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: traces and metrics go to
// that OTLP/HTTP endpoint, configured by the standard OTEL_* variables. It
// returns nil telemetry otherwise, and a shutdown that flushes the
// exporters.
func telemetryFromEnv(env func(string) (string, bool)) (*telemetry, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	ep, _ := env("OTEL_EXPORTER_OTLP_ENDPOINT")
	tep, _ := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if ep == "" && tep == "" {
		return nil, none, nil
	}
	ctx := context.Background()
	texp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, none, errors.Join(errors.New("gwproxy: OpenTelemetry trace exporter"), err)
	}
	mexp, err := otlpmetrichttp.New(ctx)
	if err != nil {
		return nil, none, errors.Join(errors.New("gwproxy: OpenTelemetry metric exporter"), err)
	}
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "gwproxy")))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)), sdkmetric.WithResource(res))
	return newTelemetry(tp, mp), func(ctx context.Context) error {
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}, nil
}
