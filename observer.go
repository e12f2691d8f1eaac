package gwtransport

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Observer watches the routed requests of a gateway with their contexts,
// so that a tracer's spans nest: the request's, then each attempt's, then
// whatever the base transport records for the attempt's HTTP request (see
// package gwotel for OpenTelemetry). Requests passed through untouched
// (not routed) are not observed.
//
// For every routed request, RequestStart is called once, then
// AttemptStart and AttemptEnd once per attempt, in that order, then
// RequestEnd exactly once, also when the request fails, and nothing after
// it. An attempt is a request sent to a target, or one recorded though it
// could not be sent (no key, a URL that cannot be made: its start and end
// come together); a target given back to the picker before anything was
// sent (another request took the provider's last free key) is none. A request refused before any attempt (ErrMalformedBody, a URL the
// gateway cannot route) gets its start and, at once, its end with the
// error. The request ends when the caller is done with it: a
// non-streamed request when RoundTrip returns (its body, verified, is in
// memory), but for a 2xx body handed over unverified (larger than
// WithMaxVerifiedBody), which ends it when it ends, breaks (End.Err is
// the read's error) or is closed (ClosedEarly, before its end); a
// committed stream when its body ends, breaks or is closed by the
// caller, whichever comes first. Calls are made from the goroutine
// running the request or reading (or closing) its stream, never two at
// once for one request; they must not block.
type Observer interface {
	// RequestStart is called before the first attempt with the caller's
	// context. It returns the context of the request's attempts: ctx
	// itself, or a context derived from it (a span's).
	RequestStart(ctx context.Context, req ObservedRequest) context.Context
	// AttemptStart is called before an attempt is sent, with the context
	// RequestStart returned. It returns the context of the attempt's
	// outbound request (ctx or a context derived from it): a base
	// transport instrumented for tracing nests its spans under it.
	AttemptStart(ctx context.Context, a ObservedAttempt) context.Context
	// AttemptEnd is called with the context AttemptStart returned and the
	// attempt as recorded (the same value WithOnAttempt receives). A
	// committed stream's attempt ends when its part of the stream ends:
	// with its success when it completed or the caller closed it, with
	// the break (an Attempt with Status 200 and Err) when it broke; when
	// the caller's cancellation cut it (not recorded: the target is not
	// to blame), with Action NextTarget and the stream's error. An
	// attempt still in flight when its request ends (a continuation when
	// the caller closes the stream) ends then, unrecorded, as it is
	// known: its Route, Target, Try, Continued and Duration, Action
	// NextTarget and Err context.Canceled.
	AttemptEnd(ctx context.Context, a Attempt)
	// RequestEnd is called once with the context RequestStart returned
	// and the request's outcome.
	RequestEnd(ctx context.Context, end ObservedEnd)
}

// ObservedRequest describes a routed request to an Observer. It never
// holds the body, a header, a key or a query string.
type ObservedRequest struct {
	// Route is the route's name ("gateway").
	Route string
	// Model is the body's "model" as the caller sent it: the route, a
	// target or an alias.
	Model string
	// Operation is the API operation, the URL path after the provider's
	// base: "chat/completions", "responses", "embeddings", "completions";
	// empty for a request refused before its URL was read.
	Operation string
	// Stream reports a streamed request ("stream": true).
	Stream bool
}

// ObservedAttempt describes an attempt, before it is sent, to an
// Observer.
type ObservedAttempt struct {
	// Route is the route's name.
	Route string
	// Target is "<provider>/<model>".
	Target string
	// Provider is the target's provider ("openai", "azure", ...).
	Provider string
	// Model is the target's model, as sent in the body.
	Model string
	// Try is the attempt number at this target, from 1.
	Try int
	// Index is the attempt number in the request, from 1.
	Index int
	// Fallback marks the first attempt at a target after an attempt at
	// another target.
	Fallback bool
	// Continuation marks an attempt that continues a broken stream (see
	// WithModelContinuation).
	Continuation bool
	// Previous is the attempt before this one, as it renders in
	// HeaderFallbackReason (no credential, no query string); empty for the
	// first attempt.
	Previous string
	// ServerAddress and ServerPort are the host and port the attempt is
	// sent to (the port from the scheme when the URL has none); empty and
	// 0 when unknown.
	ServerAddress string
	// ServerPort is the port the attempt is sent to.
	ServerPort int
}

// ObservedEnd is the outcome of a routed request, given to an Observer.
type ObservedEnd struct {
	// Route is the route's name.
	Route string
	// Target is the target whose response the caller got (a success or
	// the final failure handed over; for a rescued stream, the target of
	// its last part); empty when the caller got an error.
	Target string
	// Status is the status of the response the caller got, 0 for none.
	Status int
	// Err is the error the caller got from RoundTrip, or that ended a
	// committed stream (ErrStreamTruncated, ErrStreamIdle,
	// ErrStreamMalformed, a *StreamError); nil for a success, and for a
	// final failure handed over as a response: its Status, or, with a
	// success status (a stream whose first event is an error), the last
	// of Attempts, whose Action is not Succeed, tells it.
	Err error
	// ClosedEarly reports a stream (or a body handed over unverified) the
	// caller closed before its end.
	ClosedEarly bool
	// Attempts is every attempt of the request, as in Error.Attempts;
	// valid only during the call.
	Attempts []Attempt
	// ResponseModel is the "model" the response names (a verified
	// non-streamed body's; a stream's first event that names one), empty
	// when unknown.
	ResponseModel string
	// Usage is the token usage the response reports, when it does (a
	// stream's last usage chunk, with stream_options.include_usage).
	Usage Usage

	streamed bool // a committed stream's end
}

// Usage is the token usage a response reports.
type Usage struct {
	// Known reports that the response had a usage object.
	Known bool
	// InputTokens is the prompt's tokens ("prompt_tokens" or
	// "input_tokens").
	InputTokens int64
	// OutputTokens is the completion's tokens ("completion_tokens" or
	// "output_tokens"); 0 for embeddings.
	OutputTokens int64
}

// WithObserver makes o watch every routed request (see Observer). nil
// removes it. Without an observer, requests pay nothing for it.
func WithObserver(o Observer) Option {
	return func(s *settings) error {
		s.observer = o
		return nil
	}
}

// JoinObservers returns an Observer calling each of obs in turn (nil
// ones skipped): each start gets the context the previous observer
// returned, and every end gets the last one, in which each observer finds
// its own values by its own keys. Ends are called in reverse order, so
// that spans close inside out.
func JoinObservers(obs ...Observer) Observer {
	j := make(joined, 0, len(obs))
	for _, o := range obs {
		if o != nil {
			j = append(j, o)
		}
	}
	return j
}

type joined []Observer

func (j joined) RequestStart(ctx context.Context, req ObservedRequest) context.Context {
	for _, o := range j {
		if c := o.RequestStart(ctx, req); c != nil {
			ctx = c
		}
	}
	return ctx
}

func (j joined) AttemptStart(ctx context.Context, a ObservedAttempt) context.Context {
	for _, o := range j {
		if c := o.AttemptStart(ctx, a); c != nil {
			ctx = c
		}
	}
	return ctx
}

func (j joined) AttemptEnd(ctx context.Context, a Attempt) {
	for i := len(j) - 1; i >= 0; i-- {
		j[i].AttemptEnd(ctx, a)
	}
}

func (j joined) RequestEnd(ctx context.Context, end ObservedEnd) {
	for i := len(j) - 1; i >= 0; i-- {
		j[i].RequestEnd(ctx, end)
	}
}

// observation is one routed request's state for its Observer.
type observation struct {
	o   Observer
	ctx context.Context // RequestStart's
	mu  sync.Mutex      // a stream's reader and its closer may race

	index int
	actx  context.Context // the attempt started and not yet ended
	// cur is that attempt, and its start.
	cur      ObservedAttempt
	curStart time.Time
	// pend is an attempt not sent yet, with the context to start it in:
	// started when it is sent, or when it is recorded unsent (no key, no
	// URL); never when its target is given back to the picker unrecorded
	// (a key race).
	pend    *ObservedAttempt
	pendCtx context.Context
	// open is a committed stream's attempt, ended with its stream part.
	open     *Attempt
	openCtx  context.Context
	done     bool
	model    string
	usage    Usage
	lastTgt  string
	previous string
	// served is the target of the last attempt that succeeded (a
	// rescued stream's continuation, say).
	served string
	// attempts are the request's attempts, the observation's own copy: a
	// stream's reader may record one while its closer ends the request.
	attempts []Attempt
}

// ctx is the context of the request's attempts: the caller's, or the
// observer's.
func (r *run) ctx() context.Context {
	if r.obs != nil {
		return r.obs.ctx
	}
	return r.req.Context()
}

// refused observes a routed request refused before its attempts (a
// malformed body, a URL the gateway cannot route): its start and its end,
// with err. It does nothing when err is nil or the route has no observer.
func (g *gateway) refused(rt *route, req *http.Request, model string, stream bool, err error) {
	o := rt.s.observer
	if err == nil || o == nil {
		return
	}
	ctx := o.RequestStart(req.Context(), ObservedRequest{Route: rt.name, Model: model, Stream: stream})
	if ctx == nil {
		ctx = req.Context()
	}
	o.RequestEnd(ctx, ObservedEnd{Route: rt.name, Err: err})
}

// observeStart starts the observation of a request whose route has an
// observer.
func (r *run) observeStart(rt *route, model string) {
	o := rt.s.observer
	ctx := r.req.Context()
	obs := &observation{o: o}
	obs.ctx = o.RequestStart(ctx, ObservedRequest{Route: rt.name, Model: model, Operation: r.origin.op, Stream: r.info.stream})
	if obs.ctx == nil {
		obs.ctx = ctx
	}
	r.obs = obs
}

// attemptStart tells the observer an attempt starts, when sent is true:
// it returns the marked context of the attempt's request. An attempt not
// sent (its request could not be made) is kept pending, and nil is
// returned: it is observed only if it is recorded (see attemptRecorded).
func (r *run) attemptStart(ctx context.Context, rt *route, t *target, try int, continued, sent bool) *attemptCtx {
	obs := r.obs
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.done {
		if !sent {
			return nil
		}
		return &attemptCtx{ctx}
	}
	// One sent and given back to the picker unrecorded (a base transport
	// answering ErrNoTarget): ended as it is known.
	obs.endUnrecorded(ErrNoTarget)
	a := ObservedAttempt{Route: rt.name, Target: t.name, Provider: t.prov.name, Model: t.model, Try: try,
		Continuation: continued, Previous: obs.previous}
	if u, err := targetURL(&r.origin, t.prov, t.model); err == nil {
		a.ServerAddress = u.Hostname()
		a.ServerPort, _ = strconv.Atoi(u.Port())
		if a.ServerPort == 0 {
			switch u.Scheme {
			case "https":
				a.ServerPort = 443
			case "http":
				a.ServerPort = 80
			}
		}
	}
	obs.pend, obs.pendCtx = &a, ctx
	if !sent {
		return nil
	}
	return &attemptCtx{obs.start()}
}

// start starts the pending attempt: it numbers it and tells the observer.
// Called with mu held.
func (obs *observation) start() context.Context {
	a, ctx := *obs.pend, obs.pendCtx
	obs.pend, obs.pendCtx = nil, nil
	obs.index++
	a.Index = obs.index
	a.Fallback = obs.lastTgt != "" && obs.lastTgt != a.Target
	obs.lastTgt = a.Target
	actx := obs.o.AttemptStart(ctx, a)
	if actx == nil {
		actx = ctx
	}
	obs.actx, obs.cur, obs.curStart = actx, a, time.Now()
	return actx
}

// attemptRecorded tells the observer an attempt ended, when it did: a
// committed stream's attempt stays open until its part of the stream ends.
func (r *run) attemptRecorded(a Attempt) {
	obs := r.obs
	obs.mu.Lock()
	defer obs.mu.Unlock()
	obs.previous = a.String()
	if obs.done {
		return
	}
	obs.attempts = append(obs.attempts, a)
	if a.Action == Succeed {
		obs.served = a.Target
	}
	if obs.open != nil && obs.actx == nil && a.Target == obs.open.Target && a.Try == obs.open.Try {
		// The break of the committed stream's part.
		ctx := obs.openCtx
		obs.open, obs.openCtx = nil, nil
		obs.o.AttemptEnd(ctx, a)
		return
	}
	if obs.actx == nil && obs.pend != nil {
		// Recorded though never sent (no key, no URL): started now, to
		// end at once.
		obs.start()
	}
	if a.Action == Succeed && r.info.stream && obs.actx != nil {
		obs.openCtx, obs.actx = obs.actx, nil
		obs.open = &a
		return
	}
	obs.endAttempt(&a)
}

// endAttempt ends the attempt started and not ended, if any, with a.
// Called with mu held.
func (obs *observation) endAttempt(a *Attempt) {
	if obs.actx == nil {
		return
	}
	ctx := obs.actx
	obs.actx = nil
	obs.o.AttemptEnd(ctx, *a)
}

// endUnrecorded ends the attempt started and not recorded, if any, as it
// is known: its target and try, Action NextTarget and err (the request
// ended while it was in flight: context.Canceled). Called with mu held.
func (obs *observation) endUnrecorded(err error) {
	if obs.actx == nil {
		return
	}
	c := obs.cur
	obs.endAttempt(&Attempt{Route: c.Route, Target: c.Target, Try: c.Try, Action: NextTarget, Err: err,
		Duration: time.Since(obs.curStart), Continued: c.Continuation})
}

// requestEnd ends the observation once: the attempts still open, then the
// request.
func (r *run) requestEnd(end ObservedEnd) {
	obs := r.obs
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.done {
		return
	}
	obs.done = true
	obs.pend, obs.pendCtx = nil, nil
	// An attempt in flight (a continuation when the caller closes the
	// stream): the end cancels it.
	obs.endUnrecorded(context.Canceled)
	if obs.open != nil {
		ctx, a := obs.openCtx, *obs.open
		obs.open, obs.openCtx = nil, nil
		if end.Err != nil {
			// The stream ended with an error no break was recorded for
			// (the caller's cancellation, which says nothing of the
			// target): its part ends with it.
			a.Action, a.Err = NextTarget, end.Err
		}
		obs.o.AttemptEnd(ctx, a)
	}
	end.Attempts = obs.attempts
	if end.streamed {
		end.Target = obs.served
	}
	if end.ResponseModel == "" {
		end.ResponseModel = obs.model
	}
	if !end.Usage.Known {
		end.Usage = obs.usage
	}
	obs.o.RequestEnd(obs.ctx, end)
}

// observeReturn is called when RoundTrip returns an observed request's
// answer: a non-streamed request ends now, a stream when its body ends.
func (r *run) observeReturn(rt *route, res *http.Response, err error) {
	end := ObservedEnd{Route: rt.name, Err: err}
	if res == nil {
		r.requestEnd(end)
		return
	}
	end.Status = res.StatusCode
	end.Target = res.Header.Get(HeaderTarget)
	if sb, ok := res.Body.(*streamBody); ok && res.StatusCode < 300 {
		// The first event was read before the hook was set.
		for p := sb.pending; len(p) > 0; {
			line := p
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				line, p = p[:i], p[i+1:]
			} else {
				p = nil
			}
			if l := trimEOL(line); bytes.HasPrefix(l, dataField) {
				r.obs.data(trimJSONSpace(fieldValue(l, len(dataField))))
			}
		}
		sb.onData = r.obs.data
		sb.onEnd = func(err error, closed bool) {
			end := end
			if err != io.EOF {
				end.Err = err
			}
			end.ClosedEarly = closed
			end.streamed = true // its target is the last part's (see requestEnd)
			r.requestEnd(end)
		}
		return
	}
	// A verified body is handed over as it is (its context already
	// ended); any other body may be wrapped to end its context on Close.
	body := res.Body
	if c, ok := body.(*cancelOnClose); ok {
		body = c.ReadCloser
	}
	if mb, ok := body.(*memBody); ok && res.StatusCode < 300 {
		end.ResponseModel, end.Usage = readUsage(mb.b)
	} else if res.StatusCode >= 200 && res.StatusCode < 300 && res.Body != nil && res.Body != http.NoBody && r.obs.succeeded() {
		// An unverified success (over WithMaxVerifiedBody, or
		// verification off): the request ends with its body, so that a
		// body cut on the way is not told as a success. (A failure
		// handed over with a 2xx, a stream's first event an error, is
		// one already: it ends now.)
		res.Body = &observedBody{ReadCloser: res.Body, end: func(err error, closed bool) {
			end := end
			if err != io.EOF {
				end.Err = err
			}
			end.ClosedEarly = closed
			r.requestEnd(end)
		}}
		return
	}
	r.requestEnd(end)
}

// succeeded reports whether the request's last attempt succeeded.
func (obs *observation) succeeded() bool {
	obs.mu.Lock()
	defer obs.mu.Unlock()
	n := len(obs.attempts)
	return n > 0 && obs.attempts[n-1].Action == Succeed
}

// observedBody is an unverified non-streamed body whose end (its EOF, a
// read's error, or its Close before either) ends its observed request
// (requestEnd runs once: what comes after the first end is ignored).
type observedBody struct {
	io.ReadCloser
	end func(err error, closed bool)
}

func (b *observedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err, false)
	}
	return n, err
}

func (b *observedBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil, true)
	return err
}

// data reads a stream's data line for the response's model and usage.
// It is called by the stream's reader only.
func (obs *observation) data(v []byte) {
	if obs.model != "" && !bytes.Contains(v, usageKey) {
		return
	}
	model, u := readUsage(v)
	obs.mu.Lock()
	if obs.model == "" {
		obs.model = model
	}
	if u.Known {
		obs.usage = u
	}
	obs.mu.Unlock()
}

// readUsage reads a response's (or a stream event's) "model" and "usage"
// members, at the top level or in a Responses "response" member, without
// copying the body.
func readUsage(body []byte) (model string, u Usage) {
	return readUsageAt(body, true)
}

// readUsageAt reads "model" and "usage" of one object; nested says
// whether its "response" member is read too. Only the top level's is (the
// Responses API's events hold the response there): a body nesting
// "response" members thousands deep costs one more pass, never one per
// level.
func readUsageAt(body []byte, nested bool) (model string, u Usage) {
	_ = eachMember(body, func(name []byte, v span) error {
		val := body[v.start:v.end]
		switch string(name) {
		case `"model"`:
			if s, ok := plainJSONString(val); ok && model == "" {
				model = s
			}
		case `"usage"`:
			u = readTokens(val)
		case `"response"`:
			if nested && len(val) > 0 && val[0] == '{' {
				if m, ru := readUsageAt(val, false); ru.Known || m != "" {
					if model == "" {
						model = m
					}
					if ru.Known {
						u = ru
					}
				}
			}
		}
		return nil
	})
	return model, u
}

// readTokens reads a usage object's token counts.
func readTokens(v []byte) (u Usage) {
	if len(v) == 0 || v[0] != '{' {
		return u
	}
	_ = eachMember(v, func(name []byte, n span) error {
		x, err := strconv.ParseInt(string(v[n.start:n.end]), 10, 64)
		if err != nil {
			return nil
		}
		switch string(name) {
		case `"prompt_tokens"`, `"input_tokens"`:
			u.InputTokens, u.Known = x, true
		case `"completion_tokens"`, `"output_tokens"`:
			u.OutputTokens, u.Known = x, true
		}
		return nil
	})
	return u
}

// plainJSONString decodes a JSON string without escapes (a model name); ok is
// false for anything else.
func plainJSONString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}
