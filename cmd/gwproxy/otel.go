package main

import (
	"context"
	"net/http"

	"github.com/gwtransport/gwtransport"
)

// telemetry is the OpenTelemetry wiring of the proxy: a handler wrapper
// (the request span), a per-request context hook, and engine options (the
// attempt spans).
type telemetry struct {
	wrap    func(http.Handler) http.Handler
	observe func(context.Context) context.Context
	engine  []gwtransport.Option
}

// install puts the telemetry into a server being built.
func (t *telemetry) install(s *Server) {
	s.wrap = t.wrap
	s.observe = t.observe
	s.engineOptions = append(s.engineOptions, t.engine...)
}

// telemetryFromEnv turns tracing on when OTEL_EXPORTER_OTLP_ENDPOINT is
// set. It returns nil telemetry otherwise.
func telemetryFromEnv(env func(string) (string, bool)) (*telemetry, func(context.Context) error, error) {
	return nil, func(context.Context) error { return nil }, nil
}
