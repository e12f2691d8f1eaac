package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
)

// This file holds the rescue of a committed stream after its commit point:
// a chat/completions stream that breaks (a cut, a stall past the idle
// limit, a malformed event) is continued at the next target declared
// capable (see Continuation), with the text delivered so far as a final
// assistant message, and the continuation is spliced into the stream the
// caller is reading. It also drops malformed events up to
// WithStreamMalformedLimit.
//
// What is delivered is tracked per event: the lines of an event are held
// until the blank line that ends it, so an event cut in the middle never
// reaches the caller and the delivered text is exactly the content of the
// events the caller received. Holding costs a copy of each line, paid only
// by the streams that may be rescued (or may drop malformed events): the
// others are passed through as before.

// streamExt is what a committed stream needs beyond the plain guard: event
// holding, malformed events dropped, and the rescue.
type streamExt struct {
	cont *continuer // nil: no rescue (malformed events dropped only)

	malformedLimit int
	malformed      int    // malformed events seen
	onMalformed    func() // reports one dropped

	held     []byte // the lines of the event being read, not yet delivered
	dropping bool   // the event being read is malformed: dropped whole

	// The event being read, for the rescue.
	evText  []byte
	evData  int  // its data lines with a value
	evBad   bool // it carries what a prefill cannot reproduce
	evDrop  bool // a role-only chunk: dropped at the head of a continuation
	evSolid bool // it has data that is not droppable

	text     []byte // the content delivered so far, across every part
	id       []byte // the "id" value of the stream the caller first saw
	tainted  bool   // something delivered makes a splice unsafe
	splicing bool   // reading a continuation
	leading  bool   // no content event of the continuation delivered yet
}

// continuer rescues one committed chat stream.
type continuer struct {
	r   *run
	rt  *route
	t   *target        // the target serving the stream now
	try int            // its attempt's try
	res *http.Response // the caller's response
	// ctx and cancel are the continuation attempts' context, made at the
	// first break (under the stream's mu: Close cancels it).
	ctx    context.Context
	cancel context.CancelFunc
	breaks map[*target]int // break records per target (not sends)
	parts  int             // continuations spliced
}

// guard prepares a committed stream for the rescue and for dropped
// malformed events, when the configuration asks for either. Other
// responses are returned as they are.
func (r *run) guard(rt *route, t *target, try int, res *http.Response) *http.Response {
	sb, ok := res.Body.(*streamBody)
	if !ok {
		return res
	}
	cont := r.continuable(rt)
	if !cont && rt.s.malformedLimit <= 1 {
		return res
	}
	x := &streamExt{malformedLimit: rt.s.malformedLimit}
	if rt.s.malformedLimit > 1 {
		x.onMalformed = func() {
			if r.trail != nil {
				r.trail.malformed.Add(1)
			}
			if rt.s.onEvent != nil || rt.s.logger != nil {
				rt.emit(Event{Kind: EventStreamMalformed, Time: rt.s.clock.Now(), Route: rt.name, Target: x.target(t)})
			}
		}
	}
	if cont {
		if r.borrowed {
			// The continuation reads the request after RoundTrip returned,
			// when the caller may reuse its bytes: its own copy.
			r.body = bytes.Clone(r.body)
			r.borrowed = false
		}
		x.cont = &continuer{r: r, rt: rt, t: t, try: try, res: res}
		// The prefix is whole events (peekFirstEvent stops at the blank
		// line of the first content event).
		x.scan(sb.pending)
		x.commit()
	}
	sb.ext = x
	return res
}

// target names the target serving the stream now.
func (x *streamExt) target(t *target) string {
	if x.cont != nil {
		return x.cont.t.name
	}
	return t.name
}

// continuable reports whether the request may be rescued: a streamed
// chat/completions request with one choice, continuation on, and some
// target of the route declared capable. (logprobs are checked at the
// break: see eligible.)
func (r *run) continuable(rt *route) bool {
	if rt.s.noContinuation || r.origin.op != "chat/completions" || !r.info.stream || r.info.n > 1 ||
		r.info.ambiguous != "" || r.info.messages.start < 0 || r.body[r.info.messages.start] != '[' {
		return false
	}
	for _, t := range rt.targets {
		if t.cont != ContinueNone {
			return true
		}
	}
	return false
}

// eligible reports whether the request's own members allow a splice: no
// logprobs asked for (under any decoder's reading of their names).
func eligible(body []byte) bool {
	ok := true
	_ = eachMember(body, func(name []byte, v span) error {
		n := memberName(name)
		val := string(body[v.start:v.end])
		switch {
		case n == nil:
			ok = false
		case folds(n, "logprobs"):
			ok = ok && (val == "false" || val == "null")
		case folds(n, "top_logprobs"):
			ok = ok && val == "null"
		}
		return nil
	})
	return ok
}

// scan tracks the data lines of whole events (a committed prefix).
func (x *streamExt) scan(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p) - 1
		}
		l := trimEOL(p[:i+1])
		p = p[i+1:]
		switch {
		case len(l) == 0:
			x.commit()
		case bytes.HasPrefix(l, dataField):
			x.track(trimJSONSpace(fieldValue(l, len(dataField))))
		case bytes.HasPrefix(l, eventField):
			x.event(fieldValue(l, len(eventField)))
		}
	}
}

// event reads an event's name: openai-go decodes a "thread.*" event as
// {"event", "data"}, so what its data delivers is not what the gateway
// reads: such a stream is never spliced.
func (x *streamExt) event(name []byte) {
	if bytes.HasPrefix(name, threadPrefix) {
		x.evBad = true
	}
}

// track reads one data line of the event being read.
func (x *streamExt) track(v []byte) {
	if len(v) == 0 {
		return
	}
	x.evData++
	if bytes.Equal(v, doneData) {
		// Delivered, [DONE] ends the answer for a reader (openai-go stops
		// at it whatever the event's name): nothing may follow it.
		x.evSolid, x.evBad = true, true
		return
	}
	text, ok := chunkContent(v)
	x.evText = append(x.evText, text...)
	x.evBad = x.evBad || !ok || x.evData > 1
	if roleOnly(v) { // as the commit point reads it: nothing else is dropped
		x.evDrop = true
	} else {
		x.evSolid = true
	}
	if x.id == nil && !x.splicing {
		x.id = topID(v)
	}
}

// commit records the event being read as delivered.
func (x *streamExt) commit() {
	x.text = append(x.text, x.evText...)
	x.tainted = x.tainted || x.evBad
	if x.evSolid {
		x.leading = false
	}
	x.resetEvent()
}

func (x *streamExt) resetEvent() {
	x.evText = x.evText[:0]
	x.evData, x.evBad, x.evDrop, x.evSolid = 0, false, false, false
}

// readHeld is Read for a stream with an extension: lines are delivered an
// event at a time.
func (s *streamBody) readHeld(p []byte) (int, error) {
	x := s.ext
	for len(s.pending) == 0 {
		line, err := readLine(s.br, s.maxLine)
		if err != nil || len(line) == 0 || line[len(line)-1] != '\n' {
			e := s.end(err)
			if e == io.EOF && len(x.held) > 0 && !x.dropping {
				// A complete stream whose last event lacks its blank
				// line: delivered as an unheld stream delivers it.
				s.pending, x.held = x.held, nil
				break
			}
			if s.rescue(e) {
				continue
			}
			s.halt(e)
			return 0, s.err
		}
		l := trimEOL(line)
		if x.dropping {
			if len(l) == 0 {
				x.dropping = false
			}
			continue
		}
		deliver, err := s.inspect(line)
		if err != nil {
			if errors.Is(err, ErrStreamMalformed) && s.dropMalformed() {
				continue
			}
			if s.rescue(err) {
				continue
			}
			s.halt(err)
			return 0, err
		}
		if !deliver {
			continue
		}
		if len(l) == 0 {
			s.eventEnd(line)
			continue
		}
		if x.cont != nil && bytes.HasPrefix(l, eventField) {
			x.event(fieldValue(l, len(eventField)))
		}
		if x.cont != nil && bytes.HasPrefix(l, dataField) {
			v := trimJSONSpace(fieldValue(l, len(dataField)))
			x.track(v)
			if x.splicing && x.id != nil && len(v) > 0 && v[0] == '{' {
				x.held = append(x.held, "data: "...)
				x.held = replaceID(x.held, v, x.id)
				x.held = append(x.held, '\n')
				continue
			}
		}
		x.held = append(x.held, line...)
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// eventEnd delivers the event a blank line ends, unless it is a role-only
// chunk at the head of a continuation.
func (s *streamBody) eventEnd(blank []byte) {
	x := s.ext
	if x.cont != nil {
		if x.splicing && x.leading && (x.evDrop && !x.evSolid || x.evData == 0) {
			// A role-only chunk or a keep-alive (a comment, empty data) at
			// the head of a continuation: the caller has had its own.
			x.held = x.held[:0]
			x.resetEvent()
			s.evDone = false
			return
		}
		x.commit()
	}
	x.held = append(x.held, blank...)
	s.pending, x.held = x.held, x.held[:0]
	if s.evDone {
		s.doneSeen.Store(true) // the held [DONE] is handed over now
	}
	s.evDone = false
}

// dropMalformed drops the malformed event being read, unless it is one
// too many.
func (s *streamBody) dropMalformed() bool {
	x := s.ext
	x.malformed++
	if x.malformed >= x.malformedLimit {
		return false
	}
	s.dropEvent()
	x.dropping = true
	if x.onMalformed != nil {
		x.onMalformed()
	}
	return true
}

// dropEvent forgets the event being read: its lines and its effects.
func (s *streamBody) dropEvent() {
	x := s.ext
	x.held = x.held[:0]
	x.resetEvent()
	s.evDone = false
	clear(s.pend)
	s.pendAny, s.pendDone = false, false
	s.thread, s.ping, s.evData = false, false, false
}

// halt ends the stream with err; a spliced stream gets its trailers.
func (s *streamBody) halt(err error) {
	if c := s.ext.cont; c != nil && c.parts > 0 {
		h := http.Header{}
		c.r.decorate(h, c.t.name)
		c.res.Trailer = h
	}
	s.stop(err)
}

// rescue continues a broken stream at a capable target. It reports whether
// a continuation now feeds the stream; otherwise the caller's read gets
// err, the original break.
func (s *streamBody) rescue(err error) bool {
	x := s.ext
	c := x.cont
	if c == nil || !(errors.Is(err, ErrStreamTruncated) || errors.Is(err, ErrStreamIdle) || errors.Is(err, ErrStreamMalformed)) {
		return false
	}
	var se *StreamError
	if errors.As(err, &se) {
		return false
	}
	s.mu.Lock()
	closed := s.closed
	if s.timer != nil {
		s.timer.Stop()
	}
	if c.ctx == nil && !closed {
		c.ctx, c.cancel = context.WithCancel(c.r.ctx())
	}
	s.mu.Unlock()
	if closed || c.r.req.Context().Err() != nil {
		// The caller closed the body or gave up: no break of the target's,
		// nothing to rescue.
		return false
	}
	s.dropEvent()
	x.dropping = false
	s.verdict(err) // the broken part's target failed
	part, ok := c.next(x.text, !x.tainted && eligible(c.r.body))
	if !ok {
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		part.cancel()
		part.up.rc.Close()
		part.lease.release()
		return false
	}
	oldUp, oldCancel := s.up, s.cancel
	s.up, s.cancel, s.settle, s.lease = part.up, part.cancel, part.settle, part.lease
	s.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(part.prefix), part.br), 4<<10)
	s.resetGuard()
	if d := s.limit(); d > 0 {
		if s.timer == nil {
			s.timer = time.AfterFunc(d, s.check)
		} else {
			s.timer.Reset(d)
		}
	}
	s.mu.Unlock()
	oldCancel()
	oldUp.rc.Close()
	x.splicing, x.leading = true, true
	return true
}

// resetGuard starts the completeness state over, for a continuation.
func (s *streamBody) resetGuard() {
	clear(s.fin)
	clear(s.pend)
	s.nFin, s.pendAny, s.pendDone = 0, false, false
	s.inFail, s.failName, s.errData = false, "", nil
	s.thread, s.ping, s.evData = false, false, false
	s.complete.Store(false)
	s.doneSeen.Store(false)
	s.graceFrom.Store(0)
	s.fired.Store(false)
}

// streamPart is what a committed stream is made of, taken from it to be
// spliced into another (see detach).
type streamPart struct {
	prefix []byte
	br     *bufio.Reader
	up     *upstream
	cancel context.CancelFunc
	settle func(error, bool)
	lease  probeLease
}

// detach takes a committed stream's parts from it (a continuation spliced
// into another stream); lease is the breaker probe its attempt holds.
func (s *streamBody) detach(lease probeLease) streamPart {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	p := streamPart{prefix: s.pending, br: s.br, up: s.up, cancel: s.cancel, settle: s.settle, lease: lease}
	s.settle = nil
	return p
}

// next, when allowed, tries the capable targets in
// turn: those after the broken one in route order (wrapping around), then
// the broken one, each once, while the request's attempts last.
func (c *continuer) next(text []byte, allowed bool) (streamPart, bool) {
	r, rt, s := c.r, c.rt, c.rt.s
	// The break itself was recorded by the broken part's verdict.
	if c.breaks == nil {
		c.breaks = map[*target]int{}
	}
	c.breaks[c.t]++
	if !allowed || c.ctx == nil {
		return streamPart{}, false
	}
	// Continuation attempts run under the stream's own context: closing
	// the body cancels them.
	r.mark = &attemptCtx{c.ctx}
	defer r.endAttempts() // its attempts' timer and context (watchdog.go)
	from := 0
	for i, t := range rt.targets {
		if t == c.t {
			from = i
		}
	}
	n := len(rt.targets)
	prev := c.t
	for k := 1; k <= n; k++ {
		t := rt.targets[(from+k)%n]
		if t.cont == ContinueNone {
			continue
		}
		if r.sent >= s.maxAttempts || c.ctx.Err() != nil {
			break
		}
		now := s.clock.Now()
		if t.excluded(now, r.ownCreds) != "" {
			continue
		}
		probe, ok := rt.admit(t, now)
		if !ok {
			continue
		}
		rt.emit(Event{Kind: EventFallback, Time: now, Route: rt.name, Target: prev.name, Next: t.name})
		prev = t
		body := prefillBody(rewriteBody(nil, r.body, &r.info, t.quotedModel, t.messages), text, t.cont)
		try := c.tries(t) + 1
		res, a, _ := r.attempt(c.ctx, rt, t, try, body)
		a.Continued = true
		if a.Action == Succeed {
			if sb, ok := res.Body.(*streamBody); ok {
				// The probe, if this is one, is settled by the stream's
				// verdict when it ends.
				r.record(rt, a)
				c.t, c.try = t, try
				c.parts++
				return sb.detach(probe), true
			}
			res.Body.Close()
			a.Action, a.Err = NextTarget, errors.New("no stream")
		}
		probe.release()
		if a.Action == FailFast || a.Action == RetrySame {
			a.Action = NextTarget
		}
		r.record(rt, a)
	}
	return streamPart{}, false
}

// tries counts the requests sent to t in this run.
func (c *continuer) tries(t *target) int {
	n := 0
	for i := range c.r.attempts {
		if c.r.attempts[i].Target == t.name {
			n++
		}
	}
	return n - c.breaks[t]
}

// prefillBody adds the delivered text to a chat body as its final
// assistant message, in the target's way (see Continuation).
func prefillBody(body, text []byte, mode Continuation) []byte {
	if len(text) == 0 {
		// Nothing delivered but a role: the plain request, which any
		// provider answers (some refuse an empty assistant message).
		return body
	}
	var info bodyInfo
	_ = scanBody(body, &info)
	msgs := info.messages
	if msgs.start < 0 || body[msgs.start] != '[' {
		return body
	}
	quoted, _ := json.Marshal(string(text))
	var msg bytes.Buffer
	if j := skipSpace(body, msgs.start+1); j < len(body) && body[j] != ']' {
		msg.WriteByte(',')
	}
	msg.WriteString(`{"role":"assistant","content":`)
	msg.Write(quoted)
	if mode == ContinuePrefix {
		msg.WriteString(`,"prefix":true`)
	}
	msg.WriteByte('}')
	at := msgs.end - 1 // the array's ']'
	out := make([]byte, 0, len(body)+msg.Len()+64)
	out = append(out, body[:at]...)
	out = append(out, msg.Bytes()...)
	out = append(out, body[at:]...)
	if mode == ContinueFinalMessage {
		// Last, so that a decoder keeping the last duplicate (Python's)
		// reads these.
		end := bytes.LastIndexByte(out, '}')
		tail := append([]byte(`,"continue_final_message":true,"add_generation_prompt":false`), out[end:]...)
		out = append(out[:end], tail...)
	}
	return out
}

// chunkContent reads one chat chunk for the rescue: its content, and ok
// false when it carries anything a prefill cannot reproduce (a tool call,
// a refusal, reasoning, audio, logprobs, another choice) or that decoders
// could read differently (a case variant or a duplicate of "content",
// "role", "choices", "delta", "index", "id"). Whether it is role-only is
// roleOnly's to say, as at the commit point.
func chunkContent(v []byte) (text []byte, ok bool) {
	var choices []byte
	nChoices, ids := 0, 0
	ok = true
	err := eachMember(v, func(name []byte, sp span) error {
		n := memberName(name)
		val := v[sp.start:sp.end]
		switch {
		case n == nil:
			ok = false
		case folds(n, "id"):
			// openai-go reads "id" exactly, go-openai in any case: they
			// must agree for the continuation's id to be the one seen.
			ids++
			ok = ok && string(n) == "id"
		case folds(n, "choices"):
			nChoices++
			ok = ok && string(n) == "choices"
			choices = val
		}
		return nil
	})
	if err != nil || !ok || nChoices > 1 || ids > 1 {
		return nil, false
	}
	if choices == nil || string(choices) == "null" {
		return nil, true
	}
	if choices[0] != '[' {
		return nil, false
	}
	count := 0
	err = eachElement(choices, func(_ int, el []byte) error {
		count++
		if el[0] != '{' {
			ok = false
			return nil
		}
		deltas := 0
		err := eachMember(el, func(name []byte, sp span) error {
			n := memberName(name)
			val := el[sp.start:sp.end]
			switch {
			case n == nil:
				ok = false
			case folds(n, "index"):
				ok = ok && string(n) == "index" && string(val) == "0"
			case folds(n, "logprobs"):
				ok = ok && string(val) == "null"
			case folds(n, "delta"):
				deltas++
				ok = ok && string(n) == "delta"
				if val[0] == '{' {
					text = deltaContent(val, &ok)
				} else if string(val) != "null" {
					ok = false
				}
			}
			return nil
		})
		if err != nil || deltas > 1 {
			ok = false
		}
		return nil
	})
	if err != nil || count > 1 {
		return nil, false
	}
	return text, ok
}

// deltaContent reads a delta: exactly "role" and "content" (each once,
// spelled exactly), any other member null or empty. It returns the
// content.
func deltaContent(d []byte, ok *bool) []byte {
	var text []byte
	roles, contents := 0, 0
	err := eachMember(d, func(name []byte, sp span) error {
		n := memberName(name)
		val := d[sp.start:sp.end]
		switch {
		case n == nil:
			*ok = false
		case string(n) == "content":
			contents++
			switch {
			case val[0] == '"':
				s, err := decodeString(val)
				if err != nil || !faithful(val) {
					*ok = false // decoders would not read the same text
				}
				text = s
			case string(val) != "null":
				*ok = false
			}
		case string(n) == "role":
			roles++
			if val[0] != '"' && string(val) != "null" {
				*ok = false
			}
		case folds(n, "content"), folds(n, "role"):
			*ok = false // a case variant: decoders disagree
		default:
			switch string(bytes.Join(bytes.Fields(val), nil)) {
			case "null", `""`, "[]":
			default:
				*ok = false // a tool call, refusal, reasoning, audio...
			}
		}
		return nil
	})
	if err != nil || roles > 1 || contents > 1 {
		*ok = false
	}
	return text
}

// faithful reports whether every decoder reads a JSON string token the
// same: raw bytes valid UTF-8, and no lone surrogate escape (encoding/json
// reads one as U+FFFD, gjson, which openai-go uses, swallows what follows).
func faithful(tok []byte) bool {
	if !utf8.Valid(tok) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] != '\\' {
			continue
		}
		i++
		if i >= len(tok) || tok[i] != 'u' {
			continue
		}
		r, ok := hex4(tok[i+1:])
		switch {
		case !ok:
			return false
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate with no high one before it
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(0), false
			if j := i + 5; j+1 < len(tok) && tok[j] == '\\' && tok[j+1] == 'u' {
				lo, ok = hex4(tok[j+2:])
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6 // the low half
		}
		i += 4
	}
	return true
}

// hex4 reads four hex digits.
func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// folds reports whether a decoded member name equals want (lower case)
// under encoding/json's case folding.
func folds(name []byte, want string) bool { return bytes.EqualFold(name, []byte(want)) }

// topID returns a copy of the value of a chunk's top-level "id", or nil when it
// has none or an empty one (openai-go's accumulator adopts the first id that
// is not empty).
func topID(v []byte) []byte {
	var id []byte
	_ = eachMember(v, func(name []byte, sp span) error {
		if n := memberName(name); id == nil && string(n) == "id" && string(v[sp.start:sp.end]) != `""` {
			id = append([]byte(nil), v[sp.start:sp.end]...)
		}
		return nil
	})
	return id
}

// replaceID appends v to dst with the value of every top-level member
// named "id" (in any case) replaced by id; an object without one gets it
// first.
func replaceID(dst, v, id []byte) []byte {
	last, found := 0, false
	err := eachMember(v, func(name []byte, sp span) error {
		if n := memberName(name); n != nil && folds(n, "id") {
			dst = append(dst, v[last:sp.start]...)
			dst = append(dst, id...)
			last, found = sp.end, true
		}
		return nil
	})
	if err == nil && !found {
		i := bytes.IndexByte(v, '{') + 1
		dst = append(dst, v[:i]...)
		dst = append(dst, `"id":`...)
		dst = append(dst, id...)
		if j := skipSpace(v, i); j < len(v) && v[j] != '}' {
			dst = append(dst, ',')
		}
		last = i
	}
	return append(dst, v[last:]...)
}
