package gwtransport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"reflect"
	"sync"
)

// This file is the gateway's path for large request bodies that can be
// replayed (the request carries GetBody, as openai-go's, go-openai's and
// http.NewRequest's in-memory bodies do). The gateway then keeps no copy of
// its own: it reads the caller's bytes once to scan them, without a copy
// when GetBody replays an in-memory *bytes.Reader, else through a pooled
// buffer given back at once; a pass-through goes on with the caller's
// request untouched, its body unread; and each attempt's body is the
// caller's bytes replayed with the model values swapped and the model
// messages inserted on the fly (see splice), never a full copy.
//
// GetBody must replay the bytes Body would have read, as net/http's own
// contract requires (net/http replays with it too).

// replayMin is the smallest body the replay path takes. Below it the
// plain path (one copy, rewritten in memory) is faster: net/http writes an
// in-memory body with the headers in one packet, while a body it does not
// know (the splice) has its headers flushed on their own first. Measured in
// BENCHMARKS.md (BenchmarkReplayThreshold).
var replayMin int64 = 8 << 10 // a variable for BenchmarkReplayThreshold alone

// scanned is what the replay path learnt of a body.
type scanned struct {
	info    bodyInfo
	scanErr error
	body    []byte  // the caller's own bytes (no copy), or nil
	pooled  *[]byte // the pooled buffer the body was read into, if any
	// where model messages go: into "messages", else into "input"
	msgSpot, inSpot prependAt
	grab            grab // inMemory's writer, allocated with the rest
	size            int64
}

// scanReplay reads the body through GetBody and scans it. ok is false when
// the replay path cannot take the request (GetBody failed, or replayed a
// different length): req.Body is unread then, and the plain path goes on.
func scanReplay(req *http.Request, call *sdkCall) (sc *scanned, ok bool) {
	n := req.ContentLength
	rc, err := req.GetBody()
	if err != nil || rc == nil {
		return sc, false
	}
	if sameReader(rc, req.Body) {
		// GetBody hands out Body itself, rewound (openai-go does for a
		// *bytes.Reader body): reading it would consume the caller's
		// Body. The plain path reads it once instead.
		return sc, false
	}
	defer rc.Close()
	sc = &scanned{}
	p, own := inMemory(rc, &sc.grab)
	if own {
		if int64(len(p)) != n {
			return sc, false
		}
		sc.body = p
	} else if n < replayMin {
		return sc, false // small: the plain path reads req.Body
	} else {
		buf := getBuf(int(n))
		if _, err := io.ReadFull(rc, *buf); err != nil {
			putBuf(buf)
			return sc, false
		}
		var one [1]byte
		if m, _ := rc.Read(one[:]); m != 0 {
			putBuf(buf)
			return sc, false
		}
		sc.pooled, p = buf, *buf
	}
	sc.size = n
	if !looksLikeJSONObject(p) {
		sc.scanErr = errNotObject
		sc.release()
		return sc, true
	}
	if m := call.memoOf(p); m != nil {
		sc.info, sc.scanErr = m.info, m.err // scanned when the call started
	} else {
		sc.scanErr = scanBody(p, &sc.info)
	}
	sc.msgSpot = prependSpot(p, sc.info.messages, false)
	sc.inSpot = prependSpot(p, sc.info.input, true)
	return sc, true
}

var errNotObject = errors.New("not a JSON object")

// scanMemo is the scan of an openai-go call's body made when the call
// started (sdk.go, takes): the gateway's own read of the very same bytes
// (the same array, the same length) reuses it rather than scan again.
type scanMemo struct {
	p    *byte
	n    int
	info bodyInfo
	err  error
}

// scanned reports whether the call scanned its body when it started.
func (c *sdkCall) scanned() bool { return c != nil && c.memo != nil }

// memoOf returns the call's scan of p, if it made one of these bytes.
func (c *sdkCall) memoOf(p []byte) *scanMemo {
	if c == nil || c.memo == nil || len(p) == 0 || c.memo.n != len(p) || c.memo.p != &p[0] {
		return nil
	}
	return c.memo
}

// release gives the pooled buffer back. info.model aliases it: it must not
// be read after.
func (sc *scanned) release() {
	if sc.pooled != nil {
		putBuf(sc.pooled)
		sc.pooled = nil
		sc.info.model = nil
	}
}

// inMemory returns the bytes rc reads, without a copy, when rc is an
// io.NopCloser over a *bytes.Reader (what http.NewRequest's and openai-go's
// GetBody return): bytes.Reader.WriteTo hands its unread bytes over in one
// Write. Any other reader is left unread.
func inMemory(rc io.ReadCloser, g *grab) ([]byte, bool) {
	var r any = rc
	if v := reflect.ValueOf(rc); v.Kind() == reflect.Struct && v.Type().PkgPath() == "io" && v.NumField() == 1 {
		if f := v.Field(0); f.CanInterface() {
			r = f.Interface()
		}
	}
	br, ok := r.(*bytes.Reader)
	if !ok {
		return nil, false
	}
	at := br.Size() - int64(br.Len())
	_, err := br.WriteTo(g)
	_, _ = br.Seek(at, io.SeekStart) // as it was, should another share it
	if err != nil || g.calls > 1 {
		return nil, false
	}
	if g.p == nil {
		g.p = []byte{}
	}
	return g.p, true
}

// sameReader reports whether a and b are the same reader (GetBody handing
// out Body itself). Readers that cannot be compared are not the same.
func sameReader(a, b io.ReadCloser) (same bool) {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	defer func() {
		if recover() != nil {
			same = false // a comparable type holding an uncomparable value
		}
	}()
	return a == b
}

// grab keeps the one slice bytes.Reader.WriteTo writes: the reader's own
// bytes, which the caller does not change while the request is in flight.
type grab struct {
	p     []byte
	calls int
}

func (g *grab) Write(p []byte) (int, error) {
	g.p = p
	g.calls++
	return len(p), nil
}

// Pooled scan buffers, by power-of-two size class.
var bufPools [40]sync.Pool

func getBuf(n int) *[]byte {
	c := bits.Len(uint(n - 1))
	if v, ok := bufPools[c].Get().(*[]byte); ok {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n, 1<<c)
	return &b
}

func putBuf(b *[]byte) {
	c := bits.Len(uint(cap(*b) - 1))
	if cap(*b) != 1<<c {
		return
	}
	bufPools[c].Put(b)
}

// prependAt is where prependEdit would put model messages, found while the
// body is at hand.
type prependAt struct {
	kind int8 // one of the spot* constants
	at   span // the array or string value
}

const (
	spotNone       = iota
	spotEmptyArray // after '[', no comma
	spotArray      // after '[', then a comma
	spotString     // a string input: becomes a one-message list
)

// prependSpot mirrors prependEdit's choice for the value v ("messages",
// or "input" when isInput).
func prependSpot(body []byte, v span, isInput bool) prependAt {
	if v.start < 0 {
		return prependAt{}
	}
	switch body[v.start] {
	case '[':
		if j := skipSpace(body, v.start+1); j < len(body) && body[j] == ']' {
			return prependAt{spotEmptyArray, v}
		}
		return prependAt{spotArray, v}
	case '"':
		if isInput {
			return prependAt{spotString, v}
		}
	}
	return prependAt{}
}

// splice is one target's body: the caller's bytes with edits applied as
// they are read. It is built once per target and opened once per attempt
// (and again whenever net/http replays the attempt through GetBody).
type splice struct {
	body  []byte // the caller's bytes, when held without a copy
	open  func() (io.ReadCloser, error)
	edits []edit // in body order, none overlapping
	size  int64  // the caller's body length
	n     int64  // the output length
}

// newSplice returns the splice of the body for a target's model and
// messages: the same bytes rewriteBody would produce.
func newSplice(sc *scanned, open func() (io.ReadCloser, error), quotedModel, prepend []byte) *splice {
	s := &splice{body: sc.body, open: open, size: sc.size}
	s.edits = make([]edit, 0, sc.info.nModels+2)
	for i := 0; i < sc.info.nModels; i++ {
		s.edits = append(s.edits, edit{at: sc.info.modelAt(i), parts: [][]byte{quotedModel}})
	}
	if len(prepend) > 0 {
		spot := sc.inSpot
		if sc.info.messages.start >= 0 {
			spot = sc.msgSpot
		} else if sc.info.input.start < 0 {
			spot = prependAt{}
		}
		at := spot.at
		switch spot.kind {
		case spotEmptyArray:
			s.edits = append(s.edits, edit{at: span{at.start + 1, at.start + 1}, parts: [][]byte{prepend}})
		case spotArray:
			s.edits = append(s.edits, edit{at: span{at.start + 1, at.start + 1}, parts: [][]byte{prepend, comma}})
		case spotString:
			s.edits = append(s.edits,
				edit{at: span{at.start, at.start}, parts: [][]byte{openArr, prepend, userOpen}},
				edit{at: span{at.end, at.end}, parts: [][]byte{closeObjArr}})
		}
	}
	for i := 1; i < len(s.edits); i++ {
		for j := i; j > 0 && s.edits[j].at.start < s.edits[j-1].at.start; j-- {
			s.edits[j], s.edits[j-1] = s.edits[j-1], s.edits[j]
		}
	}
	s.n = s.size
	for _, e := range s.edits {
		s.n -= int64(e.at.end - e.at.start)
		for _, p := range e.parts {
			s.n += int64(len(p))
		}
	}
	return s
}

// attach makes the splice req's body, replayable through GetBody.
func (s *splice) attach(req *http.Request) error {
	rc, err := s.reader()
	if err != nil {
		return err
	}
	req.Body = rc
	req.GetBody = s.reader
	req.ContentLength = s.n
	return nil
}

// reader opens the spliced body once more.
func (s *splice) reader() (io.ReadCloser, error) {
	r := &spliceReader{edits: s.edits, size: s.size}
	if s.body != nil {
		r.mem.Reset(s.body)
		r.src = &r.mem
		return r, nil
	}
	rc, err := s.open()
	if err != nil {
		return nil, err
	}
	r.src, r.closer = rc, rc
	return r, nil
}

// spliceReader reads the caller's bytes with the edits applied.
type spliceReader struct {
	mem    bytes.Reader
	src    io.Reader
	closer io.Closer
	edits  []edit // the edits not yet written
	size   int64  // the caller's body length
	pos    int    // the offset in the caller's bytes
	part   int    // of edits[0], the part being written
	off    int    // in that part, the next byte
	err    error  // sticky
}

// Read implements io.Reader.
func (r *spliceReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.edits) == 0 {
			if r.err != nil {
				return n, r.err
			}
			m, err := r.src.Read(p[n:])
			r.pos += m
			n += m
			if err == io.EOF && int64(r.pos) != r.size {
				err = io.ErrUnexpectedEOF // not the bytes the scan saw
			}
			if err != nil {
				r.err = err
				if n > 0 {
					return n, nil
				}
				return 0, err
			}
			return n, nil
		}
		e := &r.edits[0]
		if r.pos < e.at.start {
			want := min(len(p)-n, e.at.start-r.pos)
			m, err := r.src.Read(p[n : n+want])
			r.pos += m
			n += m
			if err != nil && r.pos < e.at.start {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				r.err, r.edits = err, nil
				return n, err
			}
			if m == 0 {
				return n, nil
			}
			continue
		}
		if r.pos < e.at.end {
			// Skip the value replaced, using p's free part as scratch:
			// what is written there is overwritten before it is returned.
			scratch := p[n:]
			want := min(len(scratch), e.at.end-r.pos)
			m, err := r.src.Read(scratch[:want])
			r.pos += m
			if err != nil && r.pos < e.at.end {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				r.err, r.edits = err, nil
				return n, err
			}
			continue
		}
		for r.part < len(e.parts) && n < len(p) {
			c := copy(p[n:], e.parts[r.part][r.off:])
			n += c
			r.off += c
			if r.off == len(e.parts[r.part]) {
				r.part, r.off = r.part+1, 0
			}
		}
		if r.part == len(e.parts) {
			r.edits, r.part = r.edits[1:], 0
		}
	}
	return n, nil
}

// WriteTo writes the spliced body to w. When the caller's bytes are in
// memory (or its reader writes them itself), they go to w in a few large
// writes, without a copy through a buffer.
func (r *spliceReader) WriteTo(w io.Writer) (int64, error) {
	if r.pos != 0 || r.part != 0 || r.off != 0 || r.err != nil {
		return io.Copy(w, struct{ io.Reader }{r}) // partly read: finish plainly
	}
	wt, ok := r.src.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{r})
	}
	ew := &editWriter{w: w, edits: r.edits, size: r.size}
	_, err := wt.WriteTo(ew)
	r.edits = nil
	if err == nil && ew.err == nil {
		ew.finish()
	}
	if err == nil {
		err = ew.err
	}
	r.err = io.EOF
	return ew.n, err
}

// editWriter applies the edits to the caller's bytes as they are written
// through it.
type editWriter struct {
	w     io.Writer
	edits []edit
	size  int64 // the caller's body length
	pos   int   // the offset in the caller's bytes
	n     int64 // written to w
	err   error
}

func (e *editWriter) write(p []byte) bool {
	if len(p) == 0 || e.err != nil {
		return e.err == nil
	}
	m, err := e.w.Write(p)
	e.n += int64(m)
	if err == nil && m < len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
	return err == nil
}

func (e *editWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && e.err == nil {
		if len(e.edits) == 0 {
			e.write(p)
			e.pos += len(p)
			break
		}
		ed := &e.edits[0]
		if e.pos < ed.at.start {
			k := min(len(p), ed.at.start-e.pos)
			e.write(p[:k])
			p, e.pos = p[k:], e.pos+k
			continue
		}
		if e.pos < ed.at.end {
			k := min(len(p), ed.at.end-e.pos)
			p, e.pos = p[k:], e.pos+k
			if e.pos < ed.at.end {
				break
			}
		}
		for _, part := range ed.parts {
			e.write(part)
		}
		e.edits = e.edits[1:]
	}
	if e.err != nil {
		return 0, e.err
	}
	return total, nil
}

// finish writes the edits at the very end of the body (none in a JSON
// object, but an insertion at the end would land here), and fails on a
// body shorter than the edits say.
func (e *editWriter) finish() {
	for _, ed := range e.edits {
		if ed.at.start != e.pos || ed.at.end != e.pos {
			e.err = io.ErrUnexpectedEOF
			return
		}
		for _, part := range ed.parts {
			e.write(part)
		}
	}
	e.edits = nil
	if int64(e.pos) != e.size && e.err == nil {
		e.err = io.ErrUnexpectedEOF // not the bytes the scan saw
	}
}

// Close closes the caller's reader, if any.
func (r *spliceReader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// prepareReplay is prepare for a body scanned by scanReplay: the same
// decisions, without a copy of the body.
func (g *gateway) prepareReplay(req *http.Request, snd sender, sc *scanned) (r *run, rt *route, first int, pass *http.Request, err error) {
	var ok bool
	if sc.scanErr != errNotObject && sc.info.modelIsString {
		rt, first, ok = g.lookup(sc.info.model)
	}
	if !ok {
		sc.release()
		return nil, nil, 0, req, nil // the caller's request, its body unread
	}
	snd.call.intercepted()
	if rt.s.observer != nil {
		// A refused request is observed too (observer.go).
		at, model, stream := rt, string(sc.info.model), sc.info.stream
		defer func() { g.refused(at, req, model, stream, err) }()
	}
	if sc.scanErr != nil || sc.info.conflict != "" || (sc.info.ambiguous != "" && rt.prepends) {
		req.Body.Close() // never read: the request is refused
	}
	if sc.scanErr != nil {
		sc.release()
		return nil, nil, 0, nil, fmt.Errorf("%w: %v", ErrMalformedBody, sc.scanErr)
	}
	if sc.info.conflict != "" {
		sc.release()
		return nil, nil, 0, nil, fmt.Errorf("%w: %s", ErrMalformedBody, sc.info.conflict)
	}
	if sc.info.ambiguous != "" && rt.prepends {
		sc.release()
		return nil, nil, 0, nil, fmt.Errorf("%w: %s", ErrMalformedBody, sc.info.ambiguous)
	}
	// The caller's Body is never read (each attempt replays the bytes),
	// and closed only when RoundTrip returns: until then the caller keeps
	// its bytes as they are (see roundTrip), and r.body may be them.
	r = &run{g: g, req: req, body: sc.body, snd: snd, scan: sc, closeBody: true, borrowed: sc.pooled == nil}
	if sc.size < replayMin {
		// Small: rewritten in memory (net/http then writes headers and
		// body in one packet), from the caller's bytes without a copy.
		r.scan = nil
	}
	if sc.pooled != nil && sc.info.stream && sc.info.messages.start >= 0 {
		// A stream the continuation may rescue: its prefill is built from
		// the caller's bytes (continuation.go), kept for it alone.
		r.body = bytes.Clone(*sc.pooled)
	}
	sc.release()
	r.info = sc.info
	r.attempts = r.inPlace[:0]
	return r, rt, first, nil, nil
}

// bodyFor returns a target's body rewritten in memory, or nil after
// making r.splice the target's body: when the caller's bytes are replayed,
// and for a large body the gateway had to copy (no GetBody), spliced from
// that copy rather than copied again per target.
func (r *run) bodyFor(t *target) []byte {
	if r.scan == nil && int64(len(r.body)) >= replayMin {
		r.scan = &scanned{body: r.body, size: int64(len(r.body)),
			msgSpot: prependSpot(r.body, r.info.messages, false), inSpot: prependSpot(r.body, r.info.input, true)}
	}
	if r.scan == nil {
		return rewriteBody(nil, r.body, &r.info, t.quotedModel, t.messages)
	}
	r.scan.info = r.info // the op may have cleared messages or input (run.start)
	r.splice = newSplice(r.scan, r.req.GetBody, t.quotedModel, t.messages)
	return nil
}

// chunkSize is the size of the pooled chunks a body of unknown length is
// read into.
const chunkSize = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// readChunks reads r to its end into pooled chunks, then copies them into
// one allocation of the exact size: at most twice the body's size while it
// is read, the body's size after.
func readChunks(r io.Reader) ([]byte, error) {
	var (
		chunks [](*[]byte)
		total  int
		last   int // bytes in the last chunk
		err    error
	)
	defer func() {
		for _, c := range chunks {
			chunkPool.Put(c)
		}
	}()
	for err == nil {
		if len(chunks) == 0 || last == chunkSize {
			chunks = append(chunks, chunkPool.Get().(*[]byte))
			last = 0
		}
		c := *chunks[len(chunks)-1]
		var n int
		n, err = r.Read(c[last:])
		last += n
		total += n
	}
	if err != io.EOF {
		return nil, err
	}
	body := make([]byte, 0, total)
	for i, c := range chunks {
		if i == len(chunks)-1 {
			body = append(body, (*c)[:last]...)
		} else {
			body = append(body, *c...)
		}
	}
	return body, nil
}
