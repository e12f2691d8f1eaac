package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

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

// telemetryFromEnv turns OpenTelemetry on when an OTLP endpoint is set:
// traces go to OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, metrics to
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (over
// OTLP/HTTP, configured by the standard OTEL_* variables); a signal with
// no endpoint gets no exporter. It returns nil telemetry when none is set,
// and a shutdown that flushes the exporters concurrently, each within its
// context's deadline.
func telemetryFromEnv(env func(string) (string, bool)) (*telemetry, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	set := func(k string) bool { v, _ := env(k); return v != "" }
	all := set("OTEL_EXPORTER_OTLP_ENDPOINT")
	traces := all || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	metrics := all || set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
	if !traces && !metrics {
		return nil, none, nil
	}
	ctx := context.Background()
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "gwproxy")))
	var tp trace.TracerProvider = tracenoop.NewTracerProvider()
	var mp metric.MeterProvider = metricnoop.NewMeterProvider()
	var shutdowns []func(context.Context) error
	if traces {
		texp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, none, errors.Join(errors.New("gwproxy: OpenTelemetry trace exporter"), err)
		}
		sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res))
		tp, shutdowns = sdk, append(shutdowns, func(ctx context.Context) error {
			err := sdk.Shutdown(ctx)
			// Past the deadline the batcher's export is still retrying
			// (for up to a minute); stopping the exporter interrupts it
			// (a no-op after a clean shutdown).
			_ = texp.Shutdown(context.Background())
			return err
		})
	}
	if metrics {
		mexp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			for _, f := range shutdowns {
				_ = f(ctx)
			}
			return nil, none, errors.Join(errors.New("gwproxy: OpenTelemetry metric exporter"), err)
		}
		sdk := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)), sdkmetric.WithResource(res))
		mp, shutdowns = sdk, append(shutdowns, sdk.Shutdown)
	}
	return newTelemetry(tp, mp), func(ctx context.Context) error {
		// The signals flush side by side, each with the whole deadline: a
		// signal whose collector is down does not use up the other's time.
		errs := make([]error, len(shutdowns))
		var wg sync.WaitGroup
		for i, f := range shutdowns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = f(ctx)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}, nil
}

// The telemetry's flush at exit (see flushTelemetry): it gets what the
// drain left of proxy.shutdown_timeout, within these bounds, so that a
// collector that is down does not hold the exit (its exporters retry for
// a minute).
const (
	telemetryFlushMin = 1 * time.Second
	telemetryFlushMax = 5 * time.Second
)

// flushTelemetry flushes the exporters by the deadline by (the end of
// shutdown_timeout; zero when the server never ran), kept between
// telemetryFlushMin and telemetryFlushMax from now.
func flushTelemetry(shutdown func(context.Context) error, by time.Time, log *slog.Logger) {
	now := time.Now()
	d := telemetryFlushMax
	if !by.IsZero() {
		d = min(max(by.Sub(now), telemetryFlushMin), telemetryFlushMax)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("gwproxy: flushing telemetry at exit", "error", err.Error(), "within", d.String())
	}
}
