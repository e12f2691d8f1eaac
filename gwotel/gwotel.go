package gwotel

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/gwtransport/gwtransport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/gwtransport/gwtransport/gwotel"

// The attributes of the gateway's own namespace, on the spans.
const (
	// AttrRoute is the route's name ("gateway").
	AttrRoute = attribute.Key("gwtransport.route")
	// AttrTarget is the "<provider>/<model>" of an attempt, or of the
	// response the caller got.
	AttrTarget = attribute.Key("gwtransport.target")
	// AttrAttempt is an attempt's number in its request, from 1.
	AttrAttempt = attribute.Key("gwtransport.attempt")
	// AttrTry is an attempt's number at its target, from 1.
	AttrTry = attribute.Key("gwtransport.try")
	// AttrFallback marks the first attempt at a target after an attempt
	// at another target.
	AttrFallback = attribute.Key("gwtransport.fallback")
	// AttrFallbackReason is the attempt before a retry or a fallback, as
	// HeaderFallbackReason renders it ("openai/gpt-4o#1 503").
	AttrFallbackReason = attribute.Key("gwtransport.fallback.reason")
	// AttrContinuation marks an attempt continuing a broken stream.
	AttrContinuation = attribute.Key("gwtransport.continuation")
	// AttrAction is what the gateway did after an attempt: "succeed",
	// "retry_same", "next_target", "fail_fast".
	AttrAction = attribute.Key("gwtransport.action")
	// AttrAttempts is the number of attempts of a request: its attempt
	// spans (the break of a committed stream, which the gateway records
	// as an attempt of its own, ends its part's span and is not counted).
	AttrAttempts = attribute.Key("gwtransport.attempts")
	// AttrClosedEarly marks a stream the caller closed before its end.
	AttrClosedEarly = attribute.Key("gwtransport.stream.closed_early")
)

// The GenAI semantic conventions' names used here.
const (
	attrOperation    = attribute.Key("gen_ai.operation.name")
	attrProvider     = attribute.Key("gen_ai.provider.name")
	attrRequestModel = attribute.Key("gen_ai.request.model")
	attrRespModel    = attribute.Key("gen_ai.response.model")
	attrInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	attrOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
	attrTokenType    = attribute.Key("gen_ai.token.type")
	attrErrorType    = attribute.Key("error.type")
	attrServerAddr   = attribute.Key("server.address")
	attrServerPort   = attribute.Key("server.port")
	attrHTTPStatus   = attribute.Key("http.response.status_code")
)

// DurationBuckets are the bucket boundaries of
// gen_ai.client.operation.duration, in seconds, as the GenAI semantic
// conventions recommend.
var DurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}

// TokenBuckets are the bucket boundaries of gen_ai.client.token.usage, as
// the GenAI semantic conventions recommend.
var TokenBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}

// Setting configures an Observer.
type Setting func(*config)

type config struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// WithTracerProvider sets the TracerProvider (default: otel's global
// one, which follows a later otel.SetTracerProvider).
func WithTracerProvider(tp trace.TracerProvider) Setting {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets the MeterProvider (default: otel's global one,
// which follows a later otel.SetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Setting {
	return func(c *config) { c.mp = mp }
}

// Option returns the gateway option that records every routed request
// with a new Observer: gwtransport.WithObserver(NewObserver(settings...)).
func Option(settings ...Setting) gwtransport.Option {
	return gwtransport.WithObserver(NewObserver(settings...))
}

// Observer is a gwtransport.Observer recording OpenTelemetry GenAI spans
// and metrics: a span per routed request, a child span per attempt, and
// the gen_ai.client.operation.duration and gen_ai.client.token.usage
// histograms. It never records a prompt, a completion, a key, a header or
// a query string. It is safe for concurrent use.
type Observer struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	tokens   metric.Int64Histogram
}

var _ gwtransport.Observer = (*Observer)(nil)

// NewObserver returns an Observer. An instrument that cannot be made is
// reported to otel's error handler (otel.Handle) and records nothing.
func NewObserver(settings ...Setting) *Observer {
	c := config{}
	for _, s := range settings {
		if s != nil {
			s(&c)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	meter := c.mp.Meter(ScopeName)
	o := &Observer{tracer: c.tp.Tracer(ScopeName)}
	var err error
	o.duration, err = meter.Float64Histogram("gen_ai.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("GenAI operation duration."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	o.tokens, err = meter.Int64Histogram("gen_ai.client.token.usage",
		metric.WithUnit("{token}"), metric.WithDescription("Number of input and output tokens used."),
		metric.WithExplicitBucketBoundaries(TokenBuckets...))
	if err != nil {
		otel.Handle(err)
	}
	return o
}

// request is one routed request's state, in its context.
type request struct {
	span    trace.Span
	start   time.Time
	op      string
	model   string
	targets map[string]targetInfo
	last    string // the last attempt's target
	n       int    // the attempts started (see AttrAttempts)
}

// targetInfo is what a request's span and metrics say of a target.
type targetInfo struct {
	provider, address string
	port              int
}

type requestKey struct{}

// attemptKey holds an attempt's span: found by the Observer's own key,
// whatever other observers joined with it (gwtransport.JoinObservers) put
// in the context after it.
type attemptKey struct{}

// Operation maps a gateway's operation (the URL path after the base) to
// gen_ai.operation.name: "chat/completions" and "responses" are "chat",
// "completions" is "text_completion", "embeddings" is "embeddings";
// any other is returned as it is.
func Operation(op string) string {
	switch op {
	case "chat/completions", "responses":
		return "chat"
	case "completions":
		return "text_completion"
	}
	return op
}

// Provider maps a gateway provider's name to gen_ai.provider.name: the
// convention's well-known value where there is one ("azure" is
// "azure.ai.openai", "gemini" "gcp.gemini", "mistral" "mistral_ai", "xai"
// "x_ai"), else the name itself.
func Provider(name string) string {
	switch name {
	case "azure":
		return "azure.ai.openai"
	case "gemini":
		return "gcp.gemini"
	case "mistral":
		return "mistral_ai"
	case "xai":
		return "x_ai"
	}
	return name
}

// RequestStart starts the request's span.
func (o *Observer) RequestStart(ctx context.Context, req gwtransport.ObservedRequest) context.Context {
	r := &request{start: time.Now(), op: Operation(req.Operation), model: req.Model, targets: map[string]targetInfo{}}
	name := r.model
	attrs := []attribute.KeyValue{attrRequestModel.String(r.model), AttrRoute.String(req.Route)}
	if r.op != "" {
		// (Unknown for a request refused before its URL was read.)
		name = r.op + " " + r.model
		attrs = append(attrs, attrOperation.String(r.op))
	}
	ctx, r.span = o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(r.start), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, requestKey{}, r)
}

// AttemptStart starts an attempt's span, a child of the request's.
func (o *Observer) AttemptStart(ctx context.Context, a gwtransport.ObservedAttempt) context.Context {
	attrs := []attribute.KeyValue{
		attrOperation.String(""), // set below
		attrProvider.String(Provider(a.Provider)),
		attrRequestModel.String(a.Model),
		AttrRoute.String(a.Route),
		AttrTarget.String(a.Target),
		AttrAttempt.Int(a.Index),
		AttrTry.Int(a.Try),
		AttrFallback.Bool(a.Fallback),
	}
	op := ""
	if r, ok := ctx.Value(requestKey{}).(*request); ok {
		op = r.op
		r.targets[a.Target] = targetInfo{provider: Provider(a.Provider), address: a.ServerAddress, port: a.ServerPort}
		r.last = a.Target
		r.n++
	}
	attrs[0] = attrOperation.String(op)
	if a.ServerAddress != "" {
		attrs = append(attrs, attrServerAddr.String(a.ServerAddress), attrServerPort.Int(a.ServerPort))
	}
	if a.Previous != "" {
		attrs = append(attrs, AttrFallbackReason.String(a.Previous))
	}
	if a.Continuation {
		attrs = append(attrs, AttrContinuation.Bool(true))
	}
	ctx, span := o.tracer.Start(ctx, op+" "+a.Model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, attemptKey{}, span)
}

// AttemptEnd ends an attempt's span.
func (o *Observer) AttemptEnd(ctx context.Context, a gwtransport.Attempt) {
	span, ok := ctx.Value(attemptKey{}).(trace.Span)
	if !ok {
		return
	}
	span.SetAttributes(AttrAction.String(action(a.Action)))
	if a.Status != 0 {
		span.SetAttributes(attrHTTPStatus.Int(a.Status))
	}
	if et := attemptErrorType(a); et != "" {
		span.SetAttributes(attrErrorType.String(et))
		span.SetStatus(codes.Error, et)
	}
	span.End()
}

// RequestEnd ends the request's span and records the metrics.
func (o *Observer) RequestEnd(ctx context.Context, end gwtransport.ObservedEnd) {
	r, ok := ctx.Value(requestKey{}).(*request)
	if !ok {
		return
	}
	now := time.Now()
	tgt := end.Target
	if tgt == "" {
		tgt = r.last
	}
	t := r.targets[tgt]
	common := make([]attribute.KeyValue, 0, 8)
	common = append(common, attrRequestModel.String(r.model))
	if r.op != "" {
		common = append(common, attrOperation.String(r.op))
	}
	if t.provider != "" {
		common = append(common, attrProvider.String(t.provider))
	}
	if end.ResponseModel != "" {
		common = append(common, attrRespModel.String(end.ResponseModel))
	}
	if t.address != "" && end.Target != "" {
		common = append(common, attrServerAddr.String(t.address), attrServerPort.Int(t.port))
	}
	et := errorType(end)
	metricAttrs := common
	if et != "" {
		metricAttrs = append(metricAttrs[:len(metricAttrs):len(metricAttrs)], attrErrorType.String(et))
	}
	if o.duration != nil {
		o.duration.Record(ctx, now.Sub(r.start).Seconds(), metric.WithAttributes(metricAttrs...))
	}
	if end.Usage.Known && o.tokens != nil {
		o.tokens.Record(ctx, end.Usage.InputTokens, metric.WithAttributes(append(common[:len(common):len(common)], attrTokenType.String("input"))...))
		o.tokens.Record(ctx, end.Usage.OutputTokens, metric.WithAttributes(append(common[:len(common):len(common)], attrTokenType.String("output"))...))
	}
	span := r.span
	span.SetAttributes(metricAttrs...)
	span.SetAttributes(AttrAttempts.Int(r.n))
	if end.Target != "" {
		span.SetAttributes(AttrTarget.String(end.Target))
	}
	if end.Status != 0 {
		span.SetAttributes(attrHTTPStatus.Int(end.Status))
	}
	if end.Usage.Known {
		span.SetAttributes(attrInputTokens.Int64(end.Usage.InputTokens), attrOutputTokens.Int64(end.Usage.OutputTokens))
	}
	if end.ClosedEarly {
		span.SetAttributes(AttrClosedEarly.Bool(true))
	}
	if et != "" {
		span.SetStatus(codes.Error, et)
	}
	span.End(trace.WithTimestamp(now))
}

// action names an Action for AttrAction.
func action(a gwtransport.Action) string {
	switch a {
	case gwtransport.Succeed:
		return "succeed"
	case gwtransport.RetrySame:
		return "retry_same"
	case gwtransport.NextTarget:
		return "next_target"
	case gwtransport.FailFast:
		return "fail_fast"
	}
	return "other"
}

// attemptErrorType is an attempt's error.type: empty for a success, the
// status for an HTTP failure, else the kind of its error.
func attemptErrorType(a gwtransport.Attempt) string {
	if a.Action == gwtransport.Succeed && a.Err == nil {
		return ""
	}
	if a.Err != nil {
		if et := errType(a.Err); et != "_OTHER" || a.Status < 300 {
			return et
		}
	}
	if a.Status >= 300 || a.Status != 0 && a.Status < 200 {
		return strconv.Itoa(a.Status)
	}
	if a.Err == nil && a.Code != "" {
		return "_OTHER"
	}
	return ""
}

// errorType is a request's error.type: empty for a success, the kind of
// the error the caller got, else, for a final failure handed over as a
// response, its status (a redirect included, as on its attempt's span) or,
// when it has a success status (an in-band error the caller's SDK raises),
// the kind of its attempt's failure.
func errorType(end gwtransport.ObservedEnd) string {
	switch {
	case end.Err != nil:
		return errType(end.Err)
	case end.Status >= 300 || end.Status != 0 && end.Status < 200:
		return strconv.Itoa(end.Status)
	case end.Status == 0 || end.ClosedEarly:
		// (A stream the caller closed before its end is no failure, even
		// when a part of it broke before.)
		return ""
	}
	// A success status: the response is a failure handed over when the
	// request's last attempt did not succeed.
	if n := len(end.Attempts); n > 0 && end.Attempts[n-1].Action != gwtransport.Succeed {
		if et := attemptErrorType(end.Attempts[n-1]); et != "" {
			return et
		}
		return "_OTHER"
	}
	return ""
}

// errType names an error's kind, low in cardinality: a sentinel of the
// gateway's, a timeout, a cancellation, or "_OTHER".
func errType(err error) string {
	var se *gwtransport.StreamError
	switch {
	case err == nil, err == io.EOF:
		return ""
	case errors.Is(err, context.Canceled):
		// First: a stream the caller's cancellation cut ends with
		// ErrStreamTruncated and the cancellation, not the provider's
		// failure.
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &se):
		return "stream_error"
	case errors.Is(err, gwtransport.ErrStreamTruncated):
		return "stream_truncated"
	case errors.Is(err, gwtransport.ErrStreamIdle):
		return "stream_idle"
	case errors.Is(err, gwtransport.ErrStreamMalformed):
		return "stream_malformed"
	case errors.Is(err, gwtransport.ErrResponseFailed):
		return "response_failed"
	case errors.Is(err, gwtransport.ErrResponseTruncated):
		return "response_truncated"
	case errors.Is(err, gwtransport.ErrResponseIdle):
		return "response_idle"
	case errors.Is(err, gwtransport.ErrResponseMalformed):
		return "response_malformed"
	case errors.Is(err, gwtransport.ErrMalformedBody):
		return "malformed_body"
	case errors.Is(err, gwtransport.ErrMissingCredentials):
		return "missing_credentials"
	case errors.Is(err, gwtransport.ErrNoTarget):
		return "no_target"
	}
	var ge *gwtransport.Error
	if errors.As(err, &ge) {
		if ge.Stop != nil {
			if et := errType(ge.Stop); et != "_OTHER" {
				return et
			}
		}
		if n := len(ge.Attempts); n > 0 {
			if et := attemptErrorType(ge.Attempts[n-1]); et != "" {
				return et
			}
		}
	}
	if isTimeout(err) {
		return "timeout"
	}
	return "_OTHER"
}

// isTimeout reports a network timeout (the gateway's attempt timeout
// included).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
