package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The gateway's headers: HeaderTarget, HeaderAttempts and, when attempts
// failed, HeaderFallbackReason are set on every response to an intercepted
// request, HeaderBodyTruncated on a failure handed back whose body was
// cut, HeaderStatusRewritten on an error in band handed back with an error
// status; HeaderPrefer is a request header. A provider's own X-Gwtransport-*
// headers and trailers are dropped from intercepted responses.
const (
	// HeaderTarget names the "<provider>/<model>" that served the response
	// (or produced the final failure).
	HeaderTarget = "X-Gwtransport-Target"
	// HeaderAttempts is the number of attempts the request sent (a target
	// skipped unsent, for want of a key, is not one; the trail lists it).
	HeaderAttempts = "X-Gwtransport-Attempts"
	// HeaderFallbackReason lists the failed attempts, when there were any, as
	// "target#try status-or-error [code]" joined by "; ".
	HeaderFallbackReason = "X-Gwtransport-Fallback-Reason"
	// HeaderPrefer is a request header naming a target or alias to try
	// first (see also ContextWithPreference). It never reaches a provider.
	HeaderPrefer = "X-Gwtransport-Prefer"
	// HeaderBodyTruncated is set on a failure response handed to the
	// caller whose body was longer than the gateway keeps (1 MiB): its
	// value is the number of bytes kept, the body's first bytes.
	HeaderBodyTruncated = "X-Gwtransport-Body-Truncated"
	// HeaderStatusRewritten is set on an error in band handed to the
	// caller (a non-streamed 2xx whose JSON body is an error, such as a
	// content-policy refusal, see [ErrResponseFailed]): its value is the
	// provider's own status ("200"), which the gateway replaced with the
	// error status the error implies, so that SDKs raise the provider's
	// error instead of returning an empty success. The body is the
	// provider's.
	HeaderStatusRewritten = "X-Gwtransport-Status-Rewritten"
)

// gatewayHeaderPrefix starts every header of the gateway's; a provider's
// headers of that form are dropped.
const gatewayHeaderPrefix = "X-Gwtransport-"

// isGatewayHeader reports whether a header name, in any spelling, is of
// the gateway's form.
func isGatewayHeader(k string) bool {
	return len(k) >= len(gatewayHeaderPrefix) && strings.EqualFold(k[:len(gatewayHeaderPrefix)], gatewayHeaderPrefix)
}

// dropGatewayHeaders removes every header of the gateway's form from h.
func dropGatewayHeaders(h http.Header) {
	for k := range h {
		if isGatewayHeader(k) {
			delete(h, k)
		}
	}
}

// maxErrorBody bounds how much of an error response is read to classify it
// and to hand it back to the caller.
const maxErrorBody = 1 << 20

// Transport is an http.RoundTripper that routes requests whose JSON body
// names the gateway's route ("model": "gateway") or one of its targets over
// the configured targets, with retries, backoff and fallback. Every other
// request goes to the base transport untouched.
//
// The caller's request is never modified: each attempt is a new request
// whose body differs from the caller's only in "model" (and prepended model
// messages), and which carries only its own provider's credentials.
//
// Its configuration can change while requests are in flight (Reconfigure,
// Init, Installation.Uninstall): each request keeps the configuration it
// started with. A zero Transport passes every request to
// http.DefaultTransport.
type Transport struct {
	// base is set once, when the Transport is made, and never changes.
	base http.RoundTripper
	// bind is the current configuration, or pass-through.
	bind slot
}

// NewTransport returns a Transport sending through base (http.DefaultTransport
// when nil). models is a []string in priority order or a map[string]float64 of
// weights, each key "<provider>/<model>", or [FromConfig] (see [Models]).
// Use it to wrap any http.Client,
// including the one given to go-openai:
//
//	hc := &http.Client{}
//	hc.Transport, err = gwtransport.NewTransport(hc.Transport, []string{"openai/gpt-4o", "groq/llama-3.3-70b"})
func NewTransport[M Models](base http.RoundTripper, models M, opts ...Option) (*Transport, error) {
	g, err := compile(modelsArg(models), opts)
	if err != nil {
		return nil, err
	}
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base}
	t.bind.reconfigure(g)
	return t, nil
}

// Base returns the transport the Transport sends through.
func (t *Transport) Base() http.RoundTripper {
	if t.base == nil {
		return http.DefaultTransport
	}
	return t.base
}

// Stats reports every target's live state: breaker, counters, latency and
// key states (never a key). It is nil while the Transport passes requests
// through (after Installation.Uninstall).
func (t *Transport) Stats() []TargetStats {
	if g := t.bind.load().g; g != nil {
		return g.stats()
	}
	return nil
}

// Reconfigure replaces a Transport's models and options for the requests
// that start from now on; requests in flight finish with the configuration
// they began with. On error the current configuration is kept. It is safe
// to call while requests are in flight and concurrently with Init and
// Installation.Uninstall. On a Transport that Init installed, the new
// configuration stays that Installation's, which can still uninstall it;
// after Uninstall, Reconfigure makes the Transport route again with this
// configuration.
//
// It is a function, not a method of Transport, because Go methods cannot
// have type parameters, and only a type parameter lets both a []string and
// a map[string]float64 through while the compiler rejects any other type.
func Reconfigure[M Models](t *Transport, models M, opts ...Option) error {
	return t.reconfigure(modelsArg(models), opts)
}

// reconfigure compiles models (a []string, a map[string]float64 or nil) and
// opts and, when that succeeds, makes them the Transport's configuration.
func (t *Transport) reconfigure(models any, opts []Option) error {
	g, err := compile(models, opts)
	if err != nil {
		return err
	}
	t.bind.reconfigure(g)
	return nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.bind.load().g
	if g == nil || isAttempt(req) {
		// Uninstalled, or an attempt another gateway layer built: untouched.
		return t.Base().RoundTrip(req)
	}
	return g.roundTrip(req, sender{base: t.Base()})
}

// CloseIdleConnections closes the idle connections of the base transport,
// when it has that method (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.Base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// sender sends one attempt. Installed in an openai-go client, next is the
// client's own chain (its HTTP client, with its cookie jar and transport);
// it is used for attempts at the provider the client serves, and base for
// attempts at any other provider, even one on the same host: what the
// client's chain adds (cookies, a transport that signs requests) is the
// client's provider's.
type sender struct {
	base http.RoundTripper
	next func(*http.Request) (*http.Response, error)
	// call is the openai-go call the request belongs to, if any: it learns
	// whether the gateway took the request (see sdk.go).
	call *sdkCall
}

func (s sender) send(r *http.Request, own bool) (*http.Response, error) {
	if s.next != nil && own {
		return s.next(r)
	}
	return s.base.RoundTrip(r)
}

// pass sends a request the gateway does not handle, untouched but for the
// preference header, which is the gateway's and never reaches a provider.
func (s sender) pass(r *http.Request) (*http.Response, error) {
	if hasHeaderKey(r.Header, HeaderPrefer) {
		r2 := *r
		r2.Header = r.Header.Clone()
		delHeaderKey(r2.Header, HeaderPrefer)
		r = &r2
	}
	if s.next != nil {
		return s.next(r)
	}
	return s.base.RoundTrip(r)
}

// roundTrip is the whole life of one caller request. The body is read
// and scanned in prepare, whose large frame is gone before the attempts
// run: the caller's goroutine stack stays small while the request is in
// flight (see BENCHMARKS.md, memory per request in flight).
func (g *gateway) roundTrip(req *http.Request, snd sender) (*http.Response, error) {
	r, rt, first, pass, err := g.prepare(req, snd)
	switch {
	case err != nil:
		return nil, err
	case pass != nil:
		return snd.pass(pass)
	}
	res, err := r.start(rt, first)
	r.endAttempts()
	if r.obs != nil {
		r.observeReturn(rt, res, err)
	}
	if r.closeBody {
		// The caller may reuse its bytes once Body is closed: nothing
		// reads them after this (a rescue-armed stream copied them).
		req.Body.Close()
		r.borrowed = false
	}
	return res, err
}

// prepare reads and scans a caller's request: it returns the run of an
// intercepted request with its route and first target, or the request to
// pass through as it is, or an error.
func (g *gateway) prepare(req *http.Request, snd sender) (r *run, rt *route, first int, pass *http.Request, err error) {
	if req.Body == nil || req.Body == http.NoBody || !mayCarryModel(req.Header) {
		return nil, nil, 0, req, nil
	}
	if req.ContentLength > g.s.maxBodyBytes {
		return nil, nil, 0, req, nil // too large to buffer, and nothing read yet
	}
	if req.GetBody != nil && (req.ContentLength >= replayMin || req.ContentLength > 0 && snd.call.scanned()) {
		if sc, ok := scanReplay(req, snd.call); ok {
			return g.prepareReplay(req, snd, sc) // see replay.go
		}
	}
	body, rest, err := readBody(req.Body, req.ContentLength, g.s.maxBodyBytes)
	if err != nil {
		req.Body.Close()
		return nil, nil, 0, nil, fmt.Errorf("gwtransport: reading the request body: %w", err)
	}
	if rest != nil {
		// Too large to buffer: stream it through untouched.
		return nil, nil, 0, withPrefix(req, body, rest), nil
	}
	req.Body.Close()
	if !looksLikeJSONObject(body) {
		return nil, nil, 0, withBody(req, body), nil
	}
	var info bodyInfo
	scanErr := scanBody(body, &info)
	var ok bool
	if info.modelIsString {
		rt, first, ok = g.lookup(info.model)
	}
	if !ok {
		return nil, nil, 0, withBody(req, body), nil
	}
	snd.call.intercepted()
	if rt.s.observer != nil {
		// A refused request is observed too (observer.go).
		at, model, stream := rt, string(info.model), info.stream
		defer func() { g.refused(at, req, model, stream, err) }()
	}
	if scanErr != nil {
		return nil, nil, 0, nil, fmt.Errorf("%w: %v", ErrMalformedBody, scanErr)
	}
	if info.conflict != "" {
		return nil, nil, 0, nil, fmt.Errorf("%w: %s", ErrMalformedBody, info.conflict)
	}
	if info.ambiguous != "" && rt.prepends {
		// Model messages would go to one list and a decoder might read
		// another.
		return nil, nil, 0, nil, fmt.Errorf("%w: %s", ErrMalformedBody, info.ambiguous)
	}
	r = &run{g: g, req: req, body: body, info: info, snd: snd}
	r.attempts = r.inPlace[:0]
	return r, rt, first, nil, nil
}

// start prepares an intercepted request and runs its attempts.
func (r *run) start(rt *route, first int) (*http.Response, error) {
	o, err := r.g.origins.parse(r.req.URL, r.req.Header)
	if err != nil {
		r.g.refused(rt, r.req, string(r.info.model), r.info.stream, err)
		return nil, err
	}
	r.origin = o
	// Model messages go to chat "messages" and to Responses "input" only:
	// an embeddings "input" is not a conversation.
	if o.op != "chat/completions" {
		r.info.messages = span{-1, -1}
	}
	if o.op != "responses" {
		r.info.input = span{-1, -1}
	}
	ctx := r.req.Context()
	r.trail = trailFrom(ctx)
	if rt.s.observer != nil {
		r.observeStart(rt, string(r.info.model))
	}
	if !o.matched || r.g.hasCredentials(r.req.Header) {
		// An inferred origin's attempts carry the caller's headers as they
		// are, never a pooled key: its key pool does not matter either.
		r.ownCreds = o.provider
	}
	if first < 0 {
		if pref := preference(r.req); pref != "" {
			if i, ok := rt.byName[pref]; ok {
				first = i
			} else if l := rt.s.logger; l != nil {
				l.Warn("gwtransport: preferred target is not in the route; ignored", "route", rt.name, "preference", pref)
			}
		}
	}
	return r.do(rt, first)
}

// mayCarryModel rejects bodies the gateway cannot read: non-JSON content
// types and encoded (compressed) bodies. It parses nothing it need not.
func mayCarryModel(h http.Header) bool {
	if ce := h["Content-Encoding"]; len(ce) > 0 && ce[0] != "" && !strings.EqualFold(ce[0], "identity") {
		return false
	}
	ct := h["Content-Type"]
	if len(ct) == 0 || ct[0] == "" {
		return true
	}
	mt := ct[0]
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/json") || (len(mt) > 5 && strings.EqualFold(mt[len(mt)-5:], "+json"))
}

// readBody reads a body of at most max bytes. When the body is larger, it
// returns what it read and rest, the unread remainder.
func readBody(r io.Reader, length, max int64) (body []byte, rest io.Reader, err error) {
	if length > 0 && length <= max {
		// The usual case: the length is known, one exact allocation.
		body = make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, nil, err
		}
		return body, nil, nil
	}
	// Unknown length: read in pooled chunks, then one exact allocation
	// (see readChunks): the body costs its size, not a doubling buffer's.
	body, err = readChunks(io.LimitReader(r, max+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > max {
		return body, r, nil
	}
	return body, nil, nil
}

// withBody returns a shallow copy of req carrying body, replayable. The
// copy and its reader share one allocation; the reader stays an
// io.NopCloser over a *bytes.Reader so that net/http still sees an
// in-memory body and writes headers and body in one go.
func withBody(req *http.Request, body []byte) *http.Request {
	c := &replayRequest{req: *req}
	c.body.Reset(body)
	c.req.Body = io.NopCloser(&c.body)
	c.req.ContentLength = int64(len(body))
	c.req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return &c.req
}

type replayRequest struct {
	req  http.Request
	body bytes.Reader
}

// withPrefix returns a shallow copy of req whose body is the part already
// read followed by the rest of the original body.
func withPrefix(req *http.Request, prefix []byte, rest io.Reader) *http.Request {
	r2 := *req
	r2.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(prefix), rest), req.Body}
	r2.GetBody = nil
	return &r2
}

// run is the state of one intercepted request: the attempt loop.
type run struct {
	g        *gateway
	req      *http.Request
	body     []byte
	info     bodyInfo
	origin   origin
	snd      sender
	trail    *Trail
	ownCreds *provider  // the provider whose credentials the caller's request carries
	attempts []Attempt  // every attempt, the ones never sent (no key, say) included
	sent     int        // the attempts actually sent: what max attempts bounds
	key      int        // the pooled key of the last attempt, -1 for none
	inPlace  [3]Attempt // the first attempts, without an allocation
	final    *failure   // the response to give the caller if every target fails
	// closeBody: the caller's Body, never read, is closed when RoundTrip
	// returns (replay.go); borrowed: r.body is the caller's own bytes.
	closeBody, borrowed bool
	// keyRaces counts the targets given back to the picker because their
	// last free key went to another request between pick and send.
	keyRaces int
	// mark is the caller's context, marked as an attempt's (attemptmark.go).
	mark *attemptCtx
	// splice is the current target's body when the caller's bytes are
	// replayed rather than copied (replay.go); scan is what their scan
	// found, for the next target's splice.
	splice *splice
	scan   *scanned
	// wd bounds the attempts in time; actx is the context of the next
	// attempt, made for mark and kept while no attempt ended it
	// (watchdog.go).
	wd         watchdog
	actx       context.Context
	actxCancel context.CancelFunc
	actxMark   context.Context
	// Waits for cooling targets (cooling.go): how many, their total, and
	// the part not yet shown on an attempt.
	coolWaits   int
	cooled      time.Duration
	coolPending time.Duration
	// obs is the request's observation, nil without an Observer
	// (observer.go).
	obs *observation
}

// failure is a failed HTTP response kept, body and all, to be handed to the
// caller if no later target succeeds.
type failure struct {
	res    *http.Response
	body   []byte
	target string
	// rejection marks a fallback's refusal of the request itself (a 400,
	// say): it never hides an earlier target's real failure.
	rejection bool
	// truncated marks a body longer than maxErrorBody, of which the first
	// maxErrorBody bytes are kept.
	truncated bool
	// status, when not 0, replaces the response's 2xx status when it is
	// handed over: an error in band (see verify.go).
	status int
}

// do tries the targets in the route's order until one succeeds.
func (r *run) do(rt *route, first int) (*http.Response, error) {
	s := rt.s
	ctx := r.ctx()
	pick := newPicker(rt, first, s.clock.Now())
	pick.ownCreds = r.ownCreds
	var stop error
	var prev *target
	var probe probeLease // the breaker probe this request holds, if any
targets:
	for {
		// A probe that got no verdict (never sent, cancelled) frees its
		// lease at once: the next request probes.
		probe.release()
		pick.now = s.clock.Now()
		t := pick.next()
		if t == nil {
			// Every target left may be cooling: wait for the earliest
			// when it comes back soon enough, then look again.
			var again bool
			if again, stop = r.awaitCooling(ctx, rt, &pick); again {
				continue
			}
			break
		}
		probe = pick.probe
		if prev != nil && prev != t { // t again: given back after a key race
			rt.emit(Event{Kind: EventFallback, Time: pick.now, Route: rt.name, Target: prev.name, Next: t.name})
		}
		prev = t
		out := r.bodyFor(t) // nil when spliced on the fly (replay.go)
		var bo interface{ NextBackOff() time.Duration }
		retries, switches := 0, 0
		for try := 1; ; try++ {
			if r.sent >= s.maxAttempts {
				break targets
			}
			res, a, f := r.attempt(ctx, rt, t, try, out)
			if try == 1 && a.Status == 0 && errors.Is(a.Err, ErrNoTarget) && r.keyRaces < maxKeyRaces {
				// Another request took the provider's last free key
				// between the pick and the send: the target is cooling,
				// not tried. The picker sees it so, and may wait for it.
				r.keyRaces++
				pick.untake(t)
				continue targets
			}
			if a.Action == Succeed {
				r.record(rt, a)
				if sb, ok := res.Body.(*streamBody); ok {
					sb.lease = probe // settled when the stream ends
				}
				return r.success(r.guard(rt, t, try, res), t), nil
			}
			r.fallbackRefusal(t, &a, f)
			if f != nil {
				r.keep(f)
			}
			switch {
			case a.Action == FailFast && r.final != nil:
				r.record(rt, a)
				probe.release()
				return r.finish(), nil
			case a.Action == FailFast:
				// Final, but with no response to hand over (a custom
				// policy failing fast on a network error, say): the
				// caller gets the attempts.
				r.record(rt, a)
				break targets
			case ctx.Err() != nil:
				r.record(rt, a)
				stop = ctx.Err()
				break targets
			case r.freshKey(t, a, switches, s.clock.Now()):
				// The key was rate limited or refused and another key of
				// the provider is free now: use it at once, without a wait
				// and without using up a retry (max attempts still counts).
				switches++
				a.Action = RetrySame
				r.record(rt, a)
				continue
			case a.Action != RetrySame || retries >= t.maxRetries:
				r.record(rt, a)
				continue targets
			}
			retries++
			if bo == nil {
				bo = rt.newBackOff(t)
			}
			var h http.Header
			if f != nil {
				h = f.res.Header
			}
			wait, ok := r.wait(ctx, s, bo, h)
			ok = ok && r.worthWaiting(t, s.clock.Now(), wait)
			if ok {
				a.Wait = wait
			}
			r.record(rt, a)
			if !ok {
				continue targets
			}
			if err := s.clock.Sleep(ctx, wait); err != nil {
				stop = err
				break targets
			}
			if !r.worthWaiting(t, s.clock.Now(), 0) {
				// The breaker opened or the keys went to rest meanwhile:
				// do not hammer the target, move on.
				continue targets
			}
		}
	}
	probe.release()
	if stop == nil {
		stop = ctx.Err()
	}
	if r.final != nil && stop == nil && !(r.final.rejection && r.failedWithoutResponse(r.final.target)) {
		return r.finish(), nil
	}
	// Either nothing answered, or only a fallback's refusal did after an
	// earlier target failed without a response: that refusal must not
	// hide the real failure, which the error names.
	e := &Error{Route: rt.name, Attempts: r.attempts, Stop: stop}
	if stop == nil && r.sent == 0 && (len(r.attempts) == 0 || pick.reason != "") {
		e.Stop = fmt.Errorf("%w: %s", ErrNoTarget, pick.reason)
		e.RetryAfter = pick.retryAfter()
	}
	return nil, e
}

// maxKeyRaces bounds how often one request gives a target back to the
// picker for a key taken between pick and send.
const maxKeyRaces = 8

// freshKey reports whether the attempt's key was rate limited (429) or
// refused (401, 403) while another key of the target's provider is usable
// now: the next try at the target then goes at once with that key. Key
// switches are bounded by the number of keys, and happen only while the
// target's breaker is closed.
func (r *run) freshKey(t *target, a Attempt, switches int, now time.Time) bool {
	if r.key < 0 || (a.Status != http.StatusTooManyRequests && a.Status != http.StatusUnauthorized && a.Status != http.StatusForbidden) {
		return false
	}
	p := t.prov.pool
	return p != nil && switches < p.size()-1 && t.breaker.closed() && p.anyUsable(now)
}

// worthWaiting consults the target's live state before and after a wait:
// a retry goes only to a target whose breaker is closed and, when the
// request uses its provider's key pool, some key of which is usable by the
// end of the wait. Otherwise the gateway fails over now instead of
// sleeping.
func (r *run) worthWaiting(t *target, now time.Time, wait time.Duration) bool {
	if !t.breaker.closed() {
		return false
	}
	if r.key >= 0 && t.prov.pool != nil && t.prov.pool.nextUsable(now).After(now.Add(wait)) {
		return false
	}
	return true
}

// fallbackRefusal marks a fallback's refusal of the request (an assistant
// prefill it does not support, a model it does not serve, a key it does
// not accept): it must not hide the failure that led here, so the other
// targets are tried and the earlier failure stays the one the caller will
// see. A target's refusal after only its own failures stays final.
func (r *run) fallbackRefusal(t *target, a *Attempt, f *failure) {
	if !(a.Action == FailFast || (f != nil && refusal(f.res.StatusCode))) || !r.failedElsewhere(t) {
		return
	}
	if a.Action == FailFast {
		a.Action = NextTarget
	}
	if f != nil {
		f.rejection = true
	}
}

// failedElsewhere reports whether an attempt at a target other than t
// failed earlier in this request.
func (r *run) failedElsewhere(t *target) bool {
	for i := range r.attempts {
		if a := &r.attempts[i]; a.Target != t.name && !unsent(a) {
			return true
		}
	}
	return false
}

// unsent reports whether an attempt was skipped without being sent (no
// key, no endpoint, every key resting).
func unsent(a *Attempt) bool {
	return errors.Is(a.Err, ErrMissingCredentials) || errors.Is(a.Err, ErrNoTarget)
}

// failedWithoutResponse reports whether an attempt at a target other than
// the named one failed with no HTTP response (a reset, a timeout).
func (r *run) failedWithoutResponse(target string) bool {
	for i := range r.attempts {
		if a := &r.attempts[i]; a.Target != target && (a.Status == 0 || unusable(a.Err)) && a.Err != nil && !unsent(a) {
			return true
		}
	}
	return false
}

// refusal reports whether a status refuses the request (3xx, 4xx) rather
// than saying the target is unavailable (408, 409, 429).
func refusal(status int) bool {
	return status >= 300 && status < 500 && status != http.StatusRequestTimeout &&
		status != http.StatusConflict && status != http.StatusTooManyRequests
}

// keep remembers a failed response for the caller. A fallback's rejection
// of the request never replaces an earlier target's failure.
func (r *run) keep(f *failure) {
	if f.rejection && r.final != nil && !r.final.rejection {
		return
	}
	r.final = f
}

// wait computes the pause before retrying the same target: the larger of the
// backoff and the response's own Retry-After. ok is false when the gateway
// should fail over now instead: the backoff is exhausted, or the wait is
// longer than the cap (WithMaxRetryWait, or WithMaxRest when that is 0: a
// single wait is always bounded) or than what remains of the caller's
// deadline.
func (r *run) wait(ctx context.Context, s *settings, bo interface{ NextBackOff() time.Duration }, h http.Header) (time.Duration, bool) {
	now := s.clock.Now()
	d := bo.NextBackOff()
	if d < 0 {
		return 0, false
	}
	if ra, ok := RetryAfter(h, now); ok && ra > d {
		d = ra
	}
	limit := s.maxRetryWait
	if limit == 0 {
		limit = s.maxRest
	}
	if d > limit {
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && d >= dl.Sub(now) {
		return 0, false
	}
	return d, true
}

func (r *run) record(rt *route, a Attempt) {
	a.CoolingWait, r.coolPending = r.coolPending, 0
	r.attempts = append(r.attempts, a)
	if r.trail != nil {
		r.trail.add(a)
	}
	if f := rt.s.onAttempt; f != nil {
		f(a)
	}
	if r.obs != nil {
		r.attemptRecorded(a)
	}
	if rt.s.onEvent != nil || rt.s.logger != nil {
		ev := a // a copy: a itself stays off the heap when nothing listens
		rt.emit(Event{Kind: EventAttempt, Time: rt.s.clock.Now(), Route: rt.name, Target: a.Target, Attempt: &ev})
	}
}

// attempt makes one try at t and classifies it.
func (r *run) attempt(ctx context.Context, rt *route, t *target, try int, body []byte) (*http.Response, Attempt, *failure) {
	g, s := r.g, rt.s
	a := Attempt{Route: rt.name, Target: t.name, Try: try}
	start := time.Now()
	if r.mark == nil {
		r.mark = &attemptCtx{ctx} // the caller's, the same for every attempt
	}
	mark := r.mark
	// An observed attempt's request is made first: its target given back
	// to the picker before it is sent (a key race) is no attempt.
	var pre *http.Request
	preKey, preErr := -1, error(nil)
	if r.obs != nil {
		pre, preKey, preErr = g.newAttemptRequest(ctx, r.req, &r.origin, t, body, r.ownCreds != nil, s.clock.Now())
		if m := r.attemptStart(ctx, rt, t, try, ctx != r.obs.ctx, preErr == nil); m != nil { // a continuation runs under the stream's context
			mark = m
		}
	}
	actx, cancel := r.attemptContext(mark) // marked: no gateway layer below routes it again
	limit := t.attemptLimit(r.info.stream)
	keyIdx := -1
	notSent := false // the request could not be written at all (see unsendable)
	// A verified body's read limit, bounded by the same timer.
	var idle time.Duration
	if !r.info.stream && s.verifyMax > 0 {
		idle = s.bodyIdle
	}
	r.wd.arm(start, limit, idle, cancel) // one timer for the run's attempts (watchdog.go)
	// disarm stops the attempt timeout once the response is the caller's;
	// it reports false when the timeout fired first.
	disarm := r.wd.disarm
	fail := func(o Outcome) Attempt {
		disarm() // the context stays for the next attempt, unless it ended (attemptContext)
		o.Target = t.name
		// No query string, and no secret a provider echoed (net/http
		// quotes a malformed status line, say), reaches an error, header
		// or log.
		o.Err = cleanError(o.Err, func(s string) string { return g.maskAll(redactQueries(s), r.req.Header) })
		if o.Err == nil && o.Status == 0 {
			o.Err = errors.New("no response")
		}
		if r.wd.timedOut() && ctx.Err() == nil {
			o.Timeout, o.Err = true, fmt.Errorf("%w after %s", errTimeout, limit)
		}
		a.Status, a.Code, a.Err = o.Status, o.Code, o.Err
		if a.Code == "" {
			a.Code = o.Type
		}
		// A provider may echo a key in its error code: the code goes to
		// the reason header, the trail, events and logs.
		a.Code = g.scrub(a.Code, r.req.Header)
		a.Action = s.policy(o)
		if a.Action == Succeed {
			a.Action = NextTarget
		}
		a.Duration = time.Since(start)
		// Without a response, the caller's own cancellation or deadline
		// says nothing about the target, nor does a request net/http
		// refused to send.
		r.observe(rt, t, keyIdx, o, a.Duration, o.Status == 0 && (ctx.Err() != nil || notSent))
		return a
	}

	out, keyIdx, err := pre, preKey, preErr
	if r.obs == nil {
		out, keyIdx, err = g.newAttemptRequest(actx, r.req, &r.origin, t, body, r.ownCreds != nil, s.clock.Now())
	} else if err == nil {
		out = out.WithContext(actx) // the observer's context
	}
	if err == nil && body == nil && r.splice != nil {
		err = r.splice.attach(out) // the caller's bytes, edited as they are sent
	}
	r.key = keyIdx
	if err != nil {
		a.Err = err
		a.Action = NextTarget
		disarm()
		return nil, a, nil
	}
	own := t.prov == r.origin.provider
	r.sent++
	res, err := r.snd.send(out, own)
	if err != nil {
		if notSent = unsendable(out); notSent {
			// Retrying the same request at the same target fails the
			// same way, before anything is sent.
			a = fail(Outcome{Err: err})
			a.Action = NextTarget
			return nil, a, nil
		}
		return nil, fail(Outcome{Err: err}), nil
	}
	if !own {
		stripCookies(res.Header) // another provider's cookies never reach the caller's jar
		g.maskHeader(res.Header) // nor a key it echoes in a header
	}
	res = gateTrailers(res, own)
	a.Status = res.StatusCode
	if res.StatusCode < 200 {
		// An unsolicited 101 Switching Protocols: its body is the raw
		// connection, which no deadline ends. Nothing to read or keep.
		res.Body.Close()
		return nil, fail(Outcome{Status: res.StatusCode, Header: res.Header}), nil
	}
	if res.StatusCode >= 300 {
		errBody, truncated, rerr := readErrorBody(res.Body, res.ContentLength, g.maxSecretForm)
		res.Body.Close()
		o := Outcome{Status: res.StatusCode, Header: res.Header}
		if rerr == nil || len(errBody) > 0 {
			parseErrorBody(&o, errBody)
		}
		return nil, fail(o), &failure{res: res, body: errBody, truncated: truncated, target: t.name}
	}
	if r.info.stream {
		// Whatever its Content-Type: a 2xx answer to a streamed request
		// that is no stream (a JSON error, an empty 204) fails over.
		up := newUpstream(res.Body)
		br := bufio.NewReaderSize(up, 4<<10)
		prefix, ev, perr := peekFirstEvent(br, r.origin.op)
		if perr == nil {
			if o, bad := eventFailure(ev); bad {
				res.Body.Close()
				o.Status = res.StatusCode
				// The bytes up to the error event are the provider's
				// answer: if it is final (a content-policy refusal) or the
				// last failure, the caller's SDK reads the error from them.
				return nil, fail(o), &failure{res: res, body: prefix, target: t.name}
			}
		}
		if perr != nil || !disarm() {
			res.Body.Close()
			if perr == nil {
				perr = errTimeout
			}
			return nil, fail(Outcome{Err: perr}), nil
		}
		sb := newStreamBody(prefix, br, up, cancel, s.streamIdle, s.finishGrace, r.info.n, r.origin.op)
		sb.mask = masker{g: g, h: r.req.Header}
		sb.settle = r.settler(rt, t, try, start)
		res.Body = sb
	} else {
		// Read to its end before it is handed over (see verify.go).
		if o, f, bad := verify(ctx, res, s, cancel, &r.wd, t.name); bad {
			if a = fail(o); a.Action != FailFast {
				f = nil // only a final refusal in band is handed over, never as a success
			}
			return nil, a, f
		}
		if !disarm() {
			res.Body.Close()
			return nil, fail(Outcome{Err: errTimeout}), nil
		}
		if _, done := res.Body.(*memBody); !done { // a verified body's context is ended already
			res.Body = &cancelOnClose{ReadCloser: res.Body, cancel: cancel}
		}
	}
	a.Action = Succeed
	r.actx = nil // the response's now: cancel ends it when the caller is done
	a.Duration = time.Since(start)
	r.observe(rt, t, keyIdx, Outcome{Status: res.StatusCode}, a.Duration, false)
	return res, a, nil
}

// observe feeds an attempt's outcome to the target's live state: its
// statistics, its circuit breaker and the key it used. callerGone marks an
// attempt ended by the caller's cancellation or deadline, which says
// nothing about the target. Rests derived from Retry-After are capped by
// WithMaxRest.
func (r *run) observe(rt *route, t *target, keyIdx int, o Outcome, d time.Duration, callerGone bool) {
	now := rt.s.clock.Now()
	success := o.Status >= 200 && o.Status < 300 && o.Err == nil && o.Code == "" && o.Type == ""
	failure := !callerGone && availabilityFailure(o)
	if success && r.info.stream {
		t.stats.started(d) // its success or failure is counted when it ends
	} else {
		t.stats.record(success, failure, d)
	}
	var ra time.Duration
	if o.Header != nil {
		ra, _ = RetryAfter(o.Header, now)
	}
	v := verdictNone
	switch {
	case success && r.info.stream:
		// A committed stream's verdict is given when it ends (see
		// run.settler): a target whose streams break after the commit
		// must not pass for healthy.
	case success:
		v = verdictSuccess
	case failure:
		v = verdictFailure
	case o.Status != 0:
		v = verdictReachable
	}
	if st, changed := t.breaker.record(now, v, capRest(ra, rt.s.maxRest)); changed {
		rt.emit(Event{Kind: EventBreaker, Time: now, Route: rt.name, Target: t.name, State: string(st)})
	}
	if keyIdx >= 0 && t.prov.pool != nil {
		if st := t.prov.pool.report(keyIdx, o.Status, ra, rt.s.maxRest, now); st != "" {
			rt.emit(Event{Kind: EventKey, Time: now, Route: rt.name, Target: t.name, KeyIndex: keyIdx, State: st})
		}
	}
}

// settler returns what gives a committed stream's verdict when it ends: a
// success when it completed; when it broke (cut, stalled, malformed) or
// failed in band, a failure for the breaker and the statistics (an in-band
// refusal says the target is reachable) and one more attempt in the trail,
// the break; nothing when the caller gave up first.
func (r *run) settler(rt *route, t *target, try int, start time.Time) func(error, bool) {
	return func(err error, continued bool) {
		v := verdictFailure
		var se *StreamError
		switch {
		case err == io.EOF:
			v = verdictSuccess
			t.stats.successes.Add(1)
		case r.req.Context().Err() != nil:
			return
		case errors.As(err, &se):
			if !availabilityFailure(Outcome{Status: http.StatusOK, Code: se.Code, Type: se.Type, Message: se.Message}) {
				v = verdictReachable
			}
		}
		if v == verdictFailure {
			t.stats.failures.Add(1)
		}
		now := rt.s.clock.Now()
		if st, changed := t.breaker.record(now, v, 0); changed {
			rt.emit(Event{Kind: EventBreaker, Time: now, Route: rt.name, Target: t.name, State: string(st)})
		}
		if v != verdictSuccess {
			r.record(rt, Attempt{Route: rt.name, Target: t.name, Try: try, Status: http.StatusOK, Action: NextTarget,
				Duration: time.Since(start), Err: err, Continued: continued})
		}
	}
}

// availabilityFailure reports whether an outcome says the target is not
// available (as opposed to the request being refused): the failures a
// circuit breaker counts.
func availabilityFailure(o Outcome) bool {
	switch {
	case o.Status == 0:
		return true
	case o.Status == http.StatusRequestTimeout, o.Status == http.StatusTooManyRequests, o.Status >= 500:
		return true
	case o.Status >= 200 && o.Status < 300:
		// A broken stream start, unless the provider refused the request
		// itself in band (its content, its length, a model it does not
		// serve): that says nothing about the target's availability.
		if (o.Err == nil || errors.Is(o.Err, ErrResponseFailed)) && (o.ContentPolicy() || o.ContextLengthExceeded() || o.ModelNotFound()) {
			return false
		}
		return o.Err != nil || o.Code != "" || o.Type != ""
	}
	return false
}

// success decorates the response that is handed to the caller.
func (r *run) success(res *http.Response, t *target) *http.Response {
	r.decorate(res.Header, t.name)
	res.Request = r.req
	return res
}

// finish hands the kept failure to the caller, marked so that SDKs do not
// retry what the gateway already retried.
func (r *run) finish() *http.Response {
	f := r.final
	res := f.res
	f.body = r.g.maskSecretBytes(f.body) // another provider's key echoed in its body
	if len(f.body) > maxErrorBody {
		f.body = f.body[:maxErrorBody] // cut after masking: no key is half shown
	}
	res.Body = io.NopCloser(bytes.NewReader(f.body))
	res.ContentLength = int64(len(f.body))
	res.Header.Set("Content-Length", strconv.Itoa(len(f.body)))
	res.Header.Del("Location")
	res.Header.Set("X-Should-Retry", "false")
	res.Request = r.req
	r.decorate(res.Header, f.target)
	if f.truncated {
		res.Header.Set(HeaderBodyTruncated, strconv.Itoa(len(f.body)))
	}
	rewriteStatus(res, f.status)
	return res
}

// readErrorBody reads an error response's body, keeping at most
// maxErrorBody bytes, and extra more when there are more (so that a secret
// across the cut is masked whole before finish cuts the body);
// truncated reports that there was more than maxErrorBody. size is the
// declared length (-1 when unknown): a small body is read into one
// allocation of its size, a claim that is not trusted further.
func readErrorBody(body io.Reader, size int64, extra int) (p []byte, truncated bool, err error) {
	limit := int64(maxErrorBody + extra + 1)
	if size >= 0 && size < 4<<10 {
		p = make([]byte, 0, size+1) // the spare byte reads the end
	} else {
		p = make([]byte, 0, 512)
	}
	for int64(len(p)) < limit {
		if len(p) == cap(p) {
			p = append(p, 0)[:len(p)] // let append grow it
		}
		var n int
		n, err = body.Read(p[len(p):min(int64(cap(p)), limit)])
		p = p[:len(p)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			break
		}
	}
	truncated = len(p) > maxErrorBody
	if len(p) > maxErrorBody+extra {
		p = p[:maxErrorBody+extra]
	}
	return p, truncated, err
}

func (r *run) decorate(h http.Header, target string) {
	dropGatewayHeaders(h) // a provider's own never pass for the gateway's
	// The header values share one array (each slice capped: an append to
	// one never writes over another).
	vals := make([]string, 3)
	vals[0], vals[1] = target, strconv.Itoa(r.sent)
	h[HeaderTarget], h[HeaderAttempts] = vals[0:1:1], vals[1:2:2]
	var b strings.Builder
	for _, a := range r.attempts {
		if a.Action == Succeed {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		} else {
			b.Grow(128)
		}
		a.writeTo(&b)
		if b.Len() > 1024 {
			break
		}
	}
	if b.Len() > 0 {
		s := b.String()
		if len(s) > 1024 {
			s = s[:1024]
		}
		vals[2] = strings.Map(headerSafe, s)
		h[HeaderFallbackReason] = vals[2:3:3]
	}
}

// headerSafe drops bytes a header value must not contain.
func headerSafe(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return ' '
	}
	return r
}

// newAttemptRequest builds the request of one attempt: a new request with
// the target's URL, the rewritten body, and only the target provider's
// credentials. An attempt at the caller's own provider (the origin) keeps
// the caller's headers, less the gateway's preference header; an attempt at
// any other provider carries only the caller's headers the allowlist names
// (see DefaultForwardHeaders), then that provider's key and configured
// headers: deny by default. hasCreds says whether the caller's request
// carries credentials (found once per request). It returns the index of the
// pooled key it used, or -1.
func (g *gateway) newAttemptRequest(ctx context.Context, req *http.Request, o *origin, t *target, body []byte, hasCreds bool, now time.Time) (*http.Request, int, error) {
	u, err := targetURL(o, t.prov, t.model)
	if err != nil {
		return nil, -1, err
	}
	p := t.prov
	own := p == o.provider
	out := req.WithContext(ctx) // a shallow copy: the fields below are replaced, never modified
	out.URL = u
	out.Host = ""
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	// Only a provider whose base URL the request URL matched gets its
	// configured key and headers on the caller's URL: an inferred origin
	// (an Azure shape, the client provider by default) may be any host.
	inject := !own || o.matched
	if own && (hasCreds || !inject || p.auth == AuthNone || p.pool == nil) && (len(p.headers) == 0 || !inject || hasCreds) &&
		!hasHeaderKey(req.Header, HeaderPrefer) && !hasHeaderKey(req.Header, "Content-Length") {
		// The caller's own provider, with nothing to add or remove: the
		// caller's header is shared, read-only, as RoundTrip requires.
		return out, -1, nil
	}
	if own {
		out.Header = req.Header.Clone()
		delHeaderKey(out.Header, "Content-Length")
		delHeaderKey(out.Header, HeaderPrefer)
	} else {
		out.Header = g.forward.filter(req.Header)
		out.Trailer = nil // trailers are headers too
	}
	keyIdx := -1
	if !inject {
		return out, keyIdx, nil
	}
	if own && hasCreds {
		// The caller brings its own credentials: its identity, not the
		// configured one (neither key nor configured headers are mixed in).
		return out, keyIdx, nil
	}
	switch {
	case p.auth == AuthNone:
	case p.pool == nil:
		if !own && !p.keyOpt {
			hint := ""
			if p.keyEnv != "" {
				hint = " (set " + p.keyEnv + ")"
			}
			return nil, -1, fmt.Errorf("%w: no API key for provider %q%s", ErrMissingCredentials, p.name, hint)
		}
	default:
		i, key := p.pool.acquire(now)
		if i < 0 {
			return nil, -1, fmt.Errorf("%w: every API key of provider %q is resting, disabled or within its KeyInterval", ErrNoTarget, p.name)
		}
		keyIdx = i
		if p.auth == AuthAPIKey {
			out.Header.Set("Api-Key", key)
		} else {
			out.Header.Set("Authorization", "Bearer "+key)
		}
	}
	for k, v := range p.headers {
		out.Header[k] = v
	}
	return out, keyIdx, nil
}

// cancelOnClose ends an attempt's context when the caller is done with the
// body: on Close, or on reaching its end.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Read ends the attempt's context at the end of the body.
func (c *cancelOnClose) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err == io.EOF {
		c.cancel()
	}
	return n, err
}

// Close closes the body and ends the attempt's context.
func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// gateTrailers keeps a provider's trailers from passing for more than they
// are. net/http fills the trailers of the response it returned when the
// body reaches its end (HTTP/2 and chunked HTTP/1, declared or not), so
// they are filtered in place then, and at once for the names declared: none
// from another provider (its cookies among them), the own provider's
// without X-Gwtransport-* (the gateway's alone). A body that cannot carry
// trailers (HTTP/1 with a known length) is left as it is.
func gateTrailers(res *http.Response, own bool) *http.Response {
	if res.ProtoMajor < 2 && res.ContentLength >= 0 && len(res.TransferEncoding) == 0 && res.Trailer == nil {
		return res
	}
	g := &trailerGate{ReadCloser: res.Body, res: res, keep: own}
	g.filter()
	res.Body = g
	return res
}

// trailerGate filters its response's trailers when the body ends.
type trailerGate struct {
	io.ReadCloser
	res  *http.Response
	keep bool // the own provider's: keep all but the gateway's names
	done bool
}

// Read reads the body; at its end, the trailers net/http just filled in
// are filtered.
func (g *trailerGate) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF && !g.done {
		g.done = true
		g.filter()
	}
	return n, err
}

func (g *trailerGate) filter() {
	if !g.keep {
		g.res.Trailer = nil
		return
	}
	dropGatewayHeaders(g.res.Trailer)
}
