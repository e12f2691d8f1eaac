// Package gwotel turns a gateway's requests and attempts into
// OpenTelemetry GenAI traces and metrics. Programs that do not import it do
// not build it.
package gwotel
