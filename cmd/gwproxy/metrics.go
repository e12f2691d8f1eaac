package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwtransport/gwtransport"
)

// metrics are the proxy's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	authFails *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	inFlight  prometheus.Gauge
	duration  *prometheus.HistogramVec
	upstream  *prometheus.HistogramVec
	overhead  *prometheus.HistogramVec
	attemptD  *prometheus.HistogramVec
}

// latencyBuckets span a fast embedding to a long stream, in seconds.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// overheadBuckets are finer: the proxy's own time should be small.
var overheadBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

func newMetrics(breakers func() []gwtransport.TargetStats) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwproxy_requests_total", Help: "Requests answered, by endpoint, route and HTTP status.",
		}, []string{"endpoint", "route", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwproxy_attempts_total", Help: "Attempts at providers, by route, target and outcome (HTTP status, or \"error\").",
		}, []string{"route", "target", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwproxy_fallbacks_total", Help: "Moves from one target to the next, by route, from and to.",
		}, []string{"route", "from", "to"}),
		authFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwproxy_auth_failures_total", Help: "Requests refused before any provider: missing or wrong proxy key, route not allowed.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwproxy_config_reloads_total", Help: "Configuration reloads, by result (ok, refused).",
		}, []string{"result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gwproxy_requests_in_flight", Help: "Requests being served.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gwproxy_request_duration_seconds", Help: "Time from request to the end of the response, streams included.", Buckets: latencyBuckets,
		}, []string{"endpoint", "route"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gwproxy_upstream_duration_seconds", Help: "Time a request spent waiting on providers (headers and body reads of every attempt).", Buckets: latencyBuckets,
		}, []string{"endpoint", "route"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gwproxy_overhead_seconds", Help: "Total time minus upstream time minus deliberate waits (backoff, cooling): the proxy's own time.", Buckets: overheadBuckets,
		}, []string{"endpoint", "route"}),
		attemptD: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gwproxy_attempt_duration_seconds", Help: "Time to an attempt's response headers (or a stream's first event), by target.", Buckets: latencyBuckets,
		}, []string{"route", "target"}),
	}
	m.reg.MustRegister(m.requests, m.attempts, m.fallbacks, m.authFails, m.reloads, m.inFlight, m.duration, m.upstream, m.overhead, m.attemptD)
	m.reg.MustRegister(breakerCollector{stats: breakers})
	return m
}

// onEvent turns the engine's events into metrics.
func (m *metrics) onEvent(e gwtransport.Event) {
	switch e.Kind {
	case gwtransport.EventAttempt:
		outcome := "error"
		if e.Attempt.Status != 0 {
			outcome = strconv.Itoa(e.Attempt.Status)
		}
		m.attempts.WithLabelValues(e.Route, e.Target, outcome).Inc()
		m.attemptD.WithLabelValues(e.Route, e.Target).Observe(e.Attempt.Duration.Seconds())
	case gwtransport.EventFallback:
		m.fallbacks.WithLabelValues(e.Route, e.Target, e.Next).Inc()
	}
}

// breakerStates are the states gwproxy_breaker_state reports, one series
// each, 1 for the current one.
var breakerStates = []gwtransport.BreakerState{gwtransport.BreakerClosed, gwtransport.BreakerOpen, gwtransport.BreakerHalfOpen}

var breakerDesc = prometheus.NewDesc("gwproxy_breaker_state",
	"Circuit breaker state of each target: 1 for its current state, 0 for the others.",
	[]string{"route", "target", "state"}, nil)

// breakerCollector reads the breakers' states at scrape time.
type breakerCollector struct {
	stats func() []gwtransport.TargetStats
}

// Describe implements prometheus.Collector.
func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

// Collect implements prometheus.Collector.
func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.stats() {
		if t.Breaker == "" {
			continue // breaker disabled
		}
		for _, st := range breakerStates {
			v := 0.0
			if t.Breaker == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, t.Route, t.Target, string(st))
		}
	}
}
