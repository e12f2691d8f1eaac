package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the streaming commit point. Before its first real event a
// stream is still an attempt that may fail over; after it the response is the
// caller's, and the gateway only guards it: a stall, a cut or a malformed
// event ends in a read error, never in a clean EOF on a truncated answer.

// maxFirstEvent bounds the bytes read while waiting for a stream's first
// event (comments and keep-alives included).
const maxFirstEvent = 1 << 20

func isEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

var (
	dataField  = []byte("data:")
	eventField = []byte("event:")
	doneData   = []byte("[DONE]")
)

// peekFirstEvent reads lines until the first complete event that has data or
// a name, skipping comments and keep-alives. It returns every byte it read,
// to be replayed to the caller, and the event.
func peekFirstEvent(br *bufio.Reader) (prefix []byte, ev sseEvent, err error) {
	var data bytes.Buffer
	hasData := false
	for {
		line, err := readLine(br)
		prefix = append(prefix, line...)
		if err != nil {
			if err == io.EOF {
				err = ErrStreamTruncated
			}
			return prefix, ev, err
		}
		if len(prefix) > maxFirstEvent {
			return prefix, ev, ErrStreamMalformed
		}
		l := trimEOL(line)
		switch {
		case len(l) == 0:
			if hasData || ev.name != "" {
				ev.data = data.Bytes()
				return prefix, ev, nil
			}
		case l[0] == ':':
			// comment / keep-alive
		case bytes.HasPrefix(l, dataField):
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(fieldValue(l, len(dataField)))
			hasData = true
		case bytes.HasPrefix(l, eventField):
			ev.name = string(fieldValue(l, len(eventField)))
		}
	}
}

// readLine reads one line, however long, including its end of line.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

func trimEOL(l []byte) []byte {
	l = bytes.TrimSuffix(l, []byte{'\n'})
	return bytes.TrimSuffix(l, []byte{'\r'})
}

// fieldValue returns a field's value: after the colon, one optional space.
func fieldValue(l []byte, n int) []byte {
	v := l[n:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v
}

// eventFailure reports whether a stream's first event is an error rather
// than an answer: an "error" event, a data object with a top-level "error",
// or data that is neither JSON nor [DONE].
func eventFailure(ev sseEvent) (Outcome, bool) {
	var o Outcome
	if bytes.Equal(ev.data, doneData) {
		return o, false
	}
	if len(ev.data) > 0 && !json.Valid(ev.data) {
		o.Err = ErrStreamMalformed
		return o, true
	}
	if ev.name == "error" || ev.name == "response.failed" {
		parseErrorBody(&o, ev.data)
		if o.Code == "" && o.Type == "" && o.Message == "" {
			o.Message = "error event"
		}
		return o, true
	}
	if bytes.Contains(ev.data, []byte(`"error"`)) && hasErrorMember(ev.data) {
		parseErrorBody(&o, ev.data)
		if o.Code == "" && o.Type == "" && o.Message == "" {
			o.Message = "error event"
		}
		return o, true
	}
	return o, false
}

// streamBody is a committed stream handed to the caller. It passes bytes
// through line by line, and turns the ways a stream can break into errors.
type streamBody struct {
	pending  []byte // bytes of the current line not yet returned
	br       *bufio.Reader
	upstream io.ReadCloser
	cancel   context.CancelFunc
	idle     time.Duration
	grace    time.Duration

	mu       sync.Mutex // guards timer
	timer    *time.Timer
	start    time.Time    // the stream's commit, the origin of last
	last     atomic.Int64 // nanoseconds since start at the last line
	fired    atomic.Bool  // the idle (or grace) timer ended the stream
	finished atomic.Bool  // [DONE] or a finish reason was seen
	// armed is set once the timer exists; graceArmed once it was re-armed
	// with the grace. graceArmed is only written by the reading goroutine.
	armed      atomic.Bool
	graceArmed bool
	err        error
	once       sync.Once
}

func newStreamBody(prefix []byte, br *bufio.Reader, upstream io.ReadCloser, cancel context.CancelFunc, idle, grace time.Duration) *streamBody {
	s := &streamBody{pending: prefix, br: br, upstream: upstream, cancel: cancel, idle: idle, grace: grace, start: time.Now()}
	_ = s.scan(prefix) // the first event was validated by eventFailure
	s.arm()
	return s
}

// arm notes that a line arrived. The silence timer is not reset for every
// line (that would cost a timer operation per event): it fires at the
// limit after the last reset and re-arms itself for what remains when
// lines came since.
func (s *streamBody) arm() {
	s.last.Store(int64(time.Since(s.start)))
	if s.armed.Load() && (!s.finished.Load() || s.graceArmed) {
		return // the usual case: nothing to change, no lock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.limit()
	switch {
	case d <= 0:
		if s.timer != nil {
			s.timer.Stop()
		}
	case s.timer == nil:
		s.timer = time.AfterFunc(d, s.check)
		s.armed.Store(true)
	case s.finished.Load() && !s.graceArmed:
		// The finish shortens the limit to the grace: re-arm now.
		s.graceArmed = true
		s.timer.Reset(d)
	}
}

// check runs when the silence timer fires: it ends the stream if nothing
// came for the whole limit, else waits for the rest of it.
func (s *streamBody) check() {
	d := s.limit()
	quiet := time.Since(s.start) - time.Duration(s.last.Load())
	if d > 0 && quiet < d {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Reset(d - quiet)
		}
		s.mu.Unlock()
		return
	}
	s.fired.Store(true)
	s.cancel()
}

// limit is the silence allowed now: the grace after a finish, else idle.
func (s *streamBody) limit() time.Duration {
	if s.finished.Load() && s.grace > 0 {
		return s.grace
	}
	return s.idle
}

// Read implements io.Reader.
func (s *streamBody) Read(p []byte) (int, error) {
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	line, err := readLine(s.br)
	if len(line) > 0 && err == nil {
		if bad := s.scan(line); bad != nil {
			s.stop(bad)
			return 0, bad
		}
		n := copy(p, line)
		s.pending = line[n:]
		// Hand over the complete lines already buffered too, without
		// blocking: one Read per line would cost a call per event.
		for len(s.pending) == 0 && n < len(p) && s.br.Buffered() > 0 {
			buf, _ := s.br.Peek(s.br.Buffered())
			if bytes.IndexByte(buf, '\n') < 0 {
				break
			}
			line, err := s.br.ReadSlice('\n')
			if err != nil {
				break
			}
			if bad := s.scan(line); bad != nil {
				s.stop(bad)
				return n, nil // the lines before it; the error comes next
			}
			m := copy(p[n:], line)
			s.pending = line[m:]
			n += m
		}
		s.arm()
		return n, nil
	}
	// The stream ended. A partial last line is not delivered.
	switch {
	case s.fired.Load() && s.finished.Load():
		err = io.EOF
	case s.fired.Load():
		err = ErrStreamIdle
	case err == io.EOF && s.finished.Load():
		err = io.EOF
	case err == io.EOF:
		err = ErrStreamTruncated
	default:
		err = errors.Join(ErrStreamTruncated, err)
	}
	s.stop(err)
	return 0, err
}

// scan inspects complete lines for the end of the answer and for malformed
// data. It returns ErrStreamMalformed for data that is neither JSON nor
// [DONE].
func (s *streamBody) scan(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p) - 1
		}
		l := trimEOL(p[:i+1])
		p = p[i+1:]
		switch {
		case bytes.HasPrefix(l, dataField):
			v := fieldValue(l, len(dataField))
			switch {
			case bytes.Equal(v, doneData):
				s.finished.Store(true)
			case !plausibleJSON(v):
				return ErrStreamMalformed
			case hasFinish(v):
				s.finished.Store(true)
			}
		case bytes.HasPrefix(l, eventField):
			switch string(fieldValue(l, len(eventField))) {
			case "response.completed", "response.incomplete", "done":
				s.finished.Store(true)
			}
		}
	}
	return nil
}

// hasErrorMember reports whether an event's data object has a top-level
// "error" member that is not null.
func hasErrorMember(data []byte) bool {
	found := false
	_ = eachMember(data, func(name []byte, v span) error {
		if errorField(name) == "error" && string(data[v.start:v.end]) != "null" {
			found = true
		}
		return nil
	})
	return found
}

// plausibleJSON is the per-event check of a committed stream: the data
// must be a whole JSON value by its first and last bytes (a cut or garbled
// line fails). It is O(1) where a full validation would cost more than the
// rest of the stream's handling; the first event is fully validated, and
// the SDK decoding each event rejects what is malformed inside.
func plausibleJSON(v []byte) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return false
	}
	switch v[0] {
	case '{':
		return v[len(v)-1] == '}'
	case '[':
		return v[len(v)-1] == ']'
	case '"':
		return len(v) > 1 && v[len(v)-1] == '"'
	}
	return json.Valid(v)
}

var finishKey = []byte(`"finish_reason"`)

// hasFinish reports whether an event carries a non-null finish_reason.
func hasFinish(v []byte) bool {
	for {
		i := bytes.Index(v, finishKey)
		if i < 0 {
			return false
		}
		v = v[i+len(finishKey):]
		j := skipSpace(v, 0)
		if j < len(v) && v[j] == ':' {
			j = skipSpace(v, j+1)
			if j < len(v) && v[j] != 'n' {
				return true
			}
		}
	}
}

// stop records the error that ends the stream and releases it.
func (s *streamBody) stop(err error) {
	s.err = err
	s.release()
}

// Close implements io.Closer.
func (s *streamBody) Close() error {
	s.release()
	return nil
}

func (s *streamBody) release() {
	s.once.Do(func() {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
		s.cancel()
		s.upstream.Close()
	})
}
