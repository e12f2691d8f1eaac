package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// This file holds the streaming commit point. Before its first content
// event a stream is still an attempt that may fail over; after it the
// response is the caller's, and the gateway only guards it: a stall, a cut,
// a malformed event or an in-band error ends in a read error, never in a
// clean EOF on an incomplete answer.
//
// Content is any event that is not one of these, which never commit (they
// are held and replayed to the caller once the stream commits, and the
// first-event limit keeps running): comments, events without data,
// keep-alives (an event named "ping", data whose "type" is "ping", empty
// data), Responses lifecycle events (response.created, response.queued,
// response.in_progress) and, for chat/completions, an unnamed event whose
// one data line is a role-only chunk: OpenAI's first chunk
// {"choices":[{"index":0,"delta":{"role":"assistant","content":"",
// "refusal":null},"finish_reason":null}]}, which comes at once while the
// first token may come much later (see roleOnly for the exact shape; a
// chunk whose reading could differ between decoders is content). An error
// or a malformed event before the commit fails over.
//
// A data line's value is its field value (after "data:" and one optional
// space) with JSON's white space (space, tab, CR, LF) trimmed, and nothing
// else: U+00A0, U+0085, \f or \v around it leave it malformed, since no
// JSON decoder accepts them. A line with white space before "data:" or
// "event:" (any Unicode space, as bytes.TrimSpace reads it) is malformed:
// go-openai trims every line and reads it as data, an SSE client (openai-go)
// reads a field named " data" and ignores it.
//
// Complete means, by the request's operation:
//
//   - for every operation, a data line "[DONE]";
//   - for chat/completions and completions, every choice 0..n-1 (n: the
//     request's top-level "n", default 1) has a "finish_reason" that is a
//     non-empty string (null and "" are not finishes); a choice without
//     "index" is choice 0, as openai-go reads it;
//   - for responses, a Responses terminal event: data whose top-level
//     "type" is "response.completed" or "response.incomplete" (an event:
//     line alone does not count: openai-go reads the type from the data);
//   - for any other operation, either of the last two.
//
// A member counts as one of the keys above ("finish_reason", "index",
// "choices", "type", "error") when its name equals the key under
// encoding/json's case folding (bytes.EqualFold: "Finish_Reason",
// "FINISH_REASON" and "finiſh_reason" are all "finish_reason" to
// encoding/json, and so to go-openai). A marker counts only if every such
// occurrence says so, so that it holds under every decoder's reading of
// duplicate and case-variant keys (openai-go reads an exact match, the
// first; encoding/json the last case-insensitive one). An in-band error
// counts under any reading.
//
// An event whose name (its last "event:" line) starts with "thread." never
// completes a stream: openai-go decodes such an event as {"event": name,
// "data": data}, where no finish or terminal type is visible (its [DONE]
// still ends openai-go's reading). It may still be an error.
//
// Once complete, a stream ends cleanly when reads have waited on the
// provider for the finish grace in all since it completed or since its
// last event with data other than a keep-alive: keep-alives do not extend
// the grace.
//
// An event counts once it is dispatched (the blank line that ends it): a
// stream cut after a finish chunk's data line but before its blank line is
// not complete, as an SSE client discards that event.

// MaxStreamLineBytes bounds one line of a committed stream, its end of line
// included. A longer line ends the stream with [ErrStreamMalformed] instead
// of growing memory without limit. It is openai-go's own limit on an SSE
// line.
const MaxStreamLineBytes = 32 << 20

// maxFirstEvent bounds the bytes read while waiting for a stream's first
// content event (comments, keep-alives and lifecycle events included).
const maxFirstEvent = 1 << 20

// maxChoices bounds the "n" whose choices the gateway tracks; above it only
// [DONE] or a terminal event completes a stream.
const maxChoices = 1 << 16

// maxErrorData bounds the data of an in-band error event kept to describe it.
const maxErrorData = 64 << 10

// ErrStreamFailed is matched (errors.Is) by the error a caller's Read gets
// when the provider reports an error inside a stream the gateway has
// already committed to: an "error" or "response.failed" event, data whose
// top-level "type" is "error" or "response.failed", or data with a non-null
// top-level "error" member (a member name is matched as encoding/json
// matches it, in any case). The error is a *StreamError naming the
// provider's code, type and message. The event itself is not delivered.
var ErrStreamFailed = errors.New("gwtransport: provider reported an error in the stream")

// StreamError is the provider's in-band error in a committed stream. It
// matches [ErrStreamFailed] with errors.Is.
type StreamError struct {
	// Event is the SSE event name that carried the error ("error",
	// "response.failed"), or "" when the data alone said so.
	Event string
	// Code, Type and Message are the provider's, as far as the event has
	// them (for "response.failed", from its response's "error").
	Code, Type, Message string
}

// Error names the provider's message, code and type.
func (e *StreamError) Error() string {
	var b bytes.Buffer
	b.WriteString(ErrStreamFailed.Error())
	if e.Event != "" {
		b.WriteString(" (event ")
		b.WriteString(strconv.Quote(e.Event))
		b.WriteByte(')')
	}
	msg := e.Message
	if len(msg) > 1024 {
		msg = msg[:1024] + "..."
	}
	if msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if e.Code != "" {
		b.WriteString(" [code ")
		b.WriteString(e.Code)
		b.WriteByte(']')
	}
	if e.Type != "" {
		b.WriteString(" [type ")
		b.WriteString(e.Type)
		b.WriteByte(']')
	}
	return b.String()
}

// Unwrap returns ErrStreamFailed.
func (e *StreamError) Unwrap() error { return ErrStreamFailed }

// completion is the set of markers that complete a stream, besides
// [DONE].
type completion uint8

const (
	byChoices  completion = 1 << iota // every choice finished
	byTerminal                        // a Responses terminal event
)

// completionFor returns the markers that complete a stream of operation op
// (an operations entry; "" when unknown).
func completionFor(op string) completion {
	switch op {
	case "chat/completions", "completions":
		return byChoices
	case "responses":
		return byTerminal
	}
	return byChoices | byTerminal
}

var (
	dataField    = []byte("data:")
	eventField   = []byte("event:")
	doneData     = []byte("[DONE]")
	threadPrefix = []byte("thread.")
)

// quietEvent reports whether an event name or data "type" is one that
// never commits a stream: keep-alives ("ping") and the Responses lifecycle
// events that carry no output ("response.created", "response.queued",
// "response.in_progress").
func quietEvent(name []byte) bool {
	switch string(name) {
	case "ping", "response.created", "response.queued", "response.in_progress":
		return true
	}
	return false
}

// errorEvent reports whether an event name or data "type" is an in-band
// error.
func errorEvent(name []byte) bool {
	switch string(name) {
	case "error", "response.failed":
		return true
	}
	return false
}

// terminalEvent reports whether an event name or data "type" completes a
// Responses stream.
func terminalEvent(name []byte) bool {
	switch string(name) {
	case "response.completed", "response.incomplete":
		return true
	}
	return false
}

// sseEvent is one server-sent event, as seen before the commit.
type sseEvent struct {
	name    string
	data    []byte // the data lines joined by '\n'
	hasData bool
	// malformed: a data line is neither JSON, [DONE] nor empty.
	malformed bool
	// errData is the first data line that is an in-band error, if any.
	errData []byte
	failed  bool
	// quiet: every data line is empty or has a quiet "type", or the event's
	// one data line that is not empty is a role-only chunk.
	quiet bool
	lines int  // data lines that are not empty
	role  bool // a data line is a role-only chunk
}

// failure reports whether the event is an error or malformed.
func (ev *sseEvent) failure() bool {
	return ev.malformed || ev.failed || errorEvent([]byte(ev.name))
}

// peekFirstEvent reads events until the first that is content or a
// failure. It skips comments, events without data, keep-alives (an event
// named "ping", data {"type":"ping"}, empty data), Responses lifecycle
// events (see quietEvent) and, when op is "chat/completions", unnamed
// events whose one data line is a role-only chunk (see roleOnly): a
// provider's error right after them still fails over, and the first-event
// limit keeps running. It returns every byte it read, to be replayed to the
// caller, and the event. A stream that ends first is ErrStreamTruncated;
// more than maxFirstEvent bytes without content is ErrStreamMalformed. A
// line with white space before "data:" or "event:" (see spacedField) makes
// its event malformed.
func peekFirstEvent(br *bufio.Reader, op string) (prefix []byte, ev sseEvent, err error) {
	var data bytes.Buffer
	chat := op == "chat/completions"
	ev.quiet = true
	for {
		line, err := readLine(br, maxFirstEvent)
		prefix = append(prefix, line...)
		if err == nil && len(prefix) > maxFirstEvent {
			err = fmt.Errorf("%w: no content in the first %d bytes of the stream", ErrStreamMalformed, maxFirstEvent)
		}
		if err != nil {
			if ev.failure() {
				// The provider's error, cut short: report it as such.
				ev.data = data.Bytes()
				return prefix, ev, nil
			}
			if err == io.EOF {
				err = ErrStreamTruncated
			}
			return prefix, ev, err
		}
		l := trimEOL(line)
		switch {
		case len(l) == 0:
			ev.data = data.Bytes()
			switch {
			case ev.failure():
				return prefix, ev, nil
			case !ev.hasData:
			case ev.name != "" && quietEvent([]byte(ev.name)):
			case ev.name == "" && ev.quiet:
			default:
				return prefix, ev, nil
			}
			data.Reset()
			ev = sseEvent{quiet: true}
		case spacedField(l):
			ev.malformed = true
		case bytes.HasPrefix(l, dataField):
			v := fieldValue(l, len(dataField))
			if ev.hasData {
				data.WriteByte('\n')
			}
			data.Write(v)
			ev.hasData = true
			ev.addData(trimJSONSpace(v), chat)
		case bytes.HasPrefix(l, eventField):
			ev.name = string(fieldValue(l, len(eventField)))
		}
	}
}

// addData classifies one data line of an event before the commit. Every
// line is fully validated here: this happens once per stream. chat: a
// role-only chunk (see roleOnly) keeps the event quiet when it is the
// event's one data line that is not empty (several would be joined into
// data that no decoder reads as one chunk).
func (ev *sseEvent) addData(v []byte, chat bool) {
	if len(v) > 0 {
		ev.lines++
		if ev.role && ev.lines > 1 {
			ev.quiet = false
		}
	}
	switch {
	case len(v) == 0:
		return
	case bytes.Equal(v, doneData):
		ev.quiet = false
		return
	case !validJSON(v):
		ev.malformed = true
		return
	}
	e, err := lineEffects(v, 0, nil)
	if err != nil {
		ev.quiet = false // JSON, but neither an object nor an array: content
		return
	}
	if e.failed && !ev.failed {
		ev.failed = true
		ev.errData = v
	}
	switch {
	case quietEvent(e.typ):
	case chat && !e.failed && roleOnly(v):
		ev.role = true
		if ev.lines > 1 {
			ev.quiet = false
		}
	default:
		ev.quiet = false
	}
}

// roleOnly reports whether the data value v, valid JSON, is a chat
// completion chunk that carries no output, as OpenAI's first chunk
// {"choices":[{"index":0,"delta":{"role":"assistant","content":"",
// "refusal":null},"finish_reason":null}]}: a JSON object with at least one
// "choices" member, every one of them an array of role-only choices, every
// "usage" member null, and no "error" or "type" member. A role-only choice
// is an object whose every "index" is a non-negative integer, every
// "finish_reason" null, every "delta" an object whose members are "role"
// (a string or null) or empty (null, "" or []), and whose other members
// are empty or {} ("logprobs": null, Azure's "content_filter_results": {}).
// Other top-level members (id, model, created, Azure's
// "prompt_filter_results") carry no output. Names are matched as
// encoding/json matches them (any case, escapes decoded), and the rule
// holds for every occurrence of a name, so that the chunk is role-only
// under every decoder's reading of duplicate and case-variant keys.
func roleOnly(v []byte) bool {
	choices := false
	err := eachMember(v, func(name []byte, s span) error {
		val := v[s.start:s.end]
		n := memberName(name)
		switch {
		case n == nil:
			return errNotRoleOnly
		case bytes.EqualFold(n, choicesKey):
			if val[0] != '[' {
				return errNotRoleOnly
			}
			choices = true
			return eachElement(val, func(_ int, el []byte) error {
				if !roleOnlyChoice(el) {
					return errNotRoleOnly
				}
				return nil
			})
		case bytes.EqualFold(n, usageKey):
			if string(val) != "null" {
				return errNotRoleOnly
			}
		case bytes.EqualFold(n, errorKey), bytes.EqualFold(n, typeKey):
			return errNotRoleOnly
		}
		return nil
	})
	return err == nil && choices
}

// roleOnlyChoice reports whether el is a role-only choice (see roleOnly).
func roleOnlyChoice(el []byte) bool {
	if el[0] != '{' {
		return false
	}
	err := eachMember(el, func(name []byte, s span) error {
		val := el[s.start:s.end]
		n := memberName(name)
		ok := false
		switch {
		case n == nil:
		case bytes.EqualFold(n, indexKey):
			_, ok = choiceIndex(val)
		case bytes.EqualFold(n, finishKey):
			ok = string(val) == "null"
		case bytes.EqualFold(n, deltaKey):
			ok = val[0] == '{' && eachMember(val, func(name []byte, s span) error {
				dv := val[s.start:s.end]
				dn := memberName(name)
				switch {
				case dn == nil:
					return errNotRoleOnly
				case bytes.EqualFold(dn, roleKey) && (dv[0] == '"' || string(dv) == "null"):
				case !emptyValue(dv, false):
					return errNotRoleOnly
				}
				return nil
			}) == nil
		default:
			ok = emptyValue(val, true)
		}
		if !ok {
			return errNotRoleOnly
		}
		return nil
	})
	return err == nil
}

// emptyValue reports whether a JSON value is null, "" or [] (or {}, when
// obj), white space inside the brackets allowed.
func emptyValue(val []byte, obj bool) bool {
	switch val[0] {
	case 'n', '"':
		return string(val) == "null" || string(val) == `""`
	case '[':
		return skipSpace(val, 1) == len(val)-1
	case '{':
		return obj && skipSpace(val, 1) == len(val)-1
	}
	return false
}

var (
	errNotRoleOnly = errors.New("not a role-only chunk")
	choicesKey     = []byte("choices")
	usageKey       = []byte("usage")
	errorKey       = []byte("error")
	typeKey        = []byte("type")
	indexKey       = []byte("index")
	finishKey      = []byte("finish_reason")
	deltaKey       = []byte("delta")
	roleKey        = []byte("role")
)

// trimJSONSpace trims JSON's white space (space, tab, CR, LF) from both
// ends of a data value. bytes.TrimSpace would also trim U+00A0, U+0085,
// \f and \v, which no JSON decoder accepts around a value: data framed by
// them must stay malformed.
func trimJSONSpace(v []byte) []byte {
	i := skipSpace(v, 0)
	j := len(v)
	for j > i {
		switch v[j-1] {
		case ' ', '\t', '\r', '\n':
			j--
			continue
		}
		break
	}
	return v[i:j]
}

// spacedField reports whether the line l (its end of line trimmed) is
// white space, as bytes.TrimSpace reads it (any Unicode space), then a
// "data:" or "event:" field. go-openai trims every line before it looks
// for "data:", so it reads such a line as data; an SSE client (openai-go)
// reads a field whose name starts with the space, and ignores it. Decoders
// disagree on what it delivers: the gateway refuses it as malformed.
func spacedField(l []byte) bool {
	if len(l) == 0 {
		return false
	}
	switch l[0] {
	case ' ', '\t', '\v', '\f', '\r', 0xc2, 0xe1, 0xe2, 0xe3: // ASCII spaces; the first bytes of U+0085, U+00A0, U+1680, U+2000-U+205F, U+3000
	default:
		return false
	}
	t := bytes.TrimLeftFunc(l, unicode.IsSpace)
	return len(t) < len(l) && (bytes.HasPrefix(t, dataField) || bytes.HasPrefix(t, eventField))
}

// readLine reads one line, including its end of line. A line longer than
// max bytes is ErrStreamMalformed; at most max bytes (and a buffer) are
// held.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		if len(line) > max {
			return nil, errLineTooLong(max)
		}
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		if len(long) > max {
			return nil, errLineTooLong(max)
		}
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	if len(long) > max {
		return nil, errLineTooLong(max)
	}
	return long, err
}

func errLineTooLong(max int) error {
	return fmt.Errorf("%w: a line is longer than %d bytes", ErrStreamMalformed, max)
}

func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
	}
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l
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
// than an answer: an event named "error" or "response.failed", a data line
// whose top-level "type" is one of those or whose top-level "error" is not
// null, or a data line that is neither JSON, [DONE] nor empty.
func eventFailure(ev sseEvent) (Outcome, bool) {
	var o Outcome
	switch {
	case ev.malformed:
		o.Err = ErrStreamMalformed
		return o, true
	case ev.failed, errorEvent([]byte(ev.name)):
		data := ev.errData
		if data == nil {
			data = ev.data
		}
		parseStreamError(&o, data)
		if o.Code == "" && o.Type == "" && o.Message == "" {
			o.Message = "error event"
		}
		return o, true
	}
	return o, false
}

// parseStreamError reads an in-band error: the shapes parseErrorBody
// knows, and "response.failed", whose error is its response's "error".
func parseStreamError(o *Outcome, data []byte) {
	parseErrorBody(o, data)
	if o.Code != "" || o.Message != "" {
		return
	}
	if i := skipSpace(data, 0); i < len(data) && data[i] == '[' {
		// An array: its first element that is an error (see lineEffects).
		var el []byte
		_ = eachElement(data[i:], func(_ int, v []byte) error {
			if e, err := lineEffects(v, 0, nil); el == nil && v[0] == '{' && err == nil && e.failed {
				el = v
			}
			return nil
		})
		if el == nil {
			return
		}
		data = el
		parseErrorBody(o, data)
		if o.Code != "" || o.Message != "" {
			return
		}
	}
	var resp, errVal []byte
	_ = eachMember(data, func(name []byte, v span) error {
		val := data[v.start:v.end]
		key, _ := guardKey(name)
		switch {
		case bytes.EqualFold(memberName(name), []byte("response")) && val[0] == '{':
			resp = val
		case key == keyError && (val[0] == '{' || val[0] == '"'):
			errVal = val // a case variant, such as "Error"
		}
		return nil
	})
	if resp == nil && errVal != nil {
		resp = append(append([]byte(`{"error":`), errVal...), '}')
	}
	if resp == nil {
		return
	}
	var inner Outcome
	parseErrorBody(&inner, resp)
	if inner.Code != "" || inner.Message != "" {
		o.Code, o.Message = inner.Code, inner.Message
		if inner.Type != "" {
			o.Type = inner.Type
		}
	}
}

// memberName decodes a quoted member name; plain ASCII names are not
// copied. An invalid name decodes to nil.
func memberName(tok []byte) []byte {
	s, err := decodeString(tok)
	if err != nil {
		return nil
	}
	return s
}

// effects is what one data line of a stream says about its completeness.
type effects struct {
	failed   bool   // an in-band error
	terminal bool   // a Responses terminal event
	finishes bool   // at least one choice finished
	typ      []byte // the last top-level "type", when a string
}

// The keys the completeness guard reads (see guardKey).
const (
	keyNone = iota
	keyError
	keyType
	keyChoices
	keyIndex
	keyFinish
)

var guardKeys = [...]struct {
	name []byte
	key  int
}{
	{[]byte("error"), keyError},
	{[]byte("type"), keyType},
	{[]byte("choices"), keyChoices},
	{[]byte("index"), keyIndex},
	{[]byte("finish_reason"), keyFinish},
}

// guardKey names the key the guard reads that the quoted member name tok
// is, as encoding/json matches a name to a struct field (bytes.EqualFold:
// any case, and "ſ" for "s", "K" for "k"), or keyNone; exact reports
// whether it is the key itself, as openai-go matches it.
func guardKey(tok []byte) (key int, exact bool) {
	// Every key starts with a letter whose only case folds are ASCII, so
	// the first byte of a match is that letter in either case, or an
	// escape.
	if len(tok) < 2 {
		return keyNone, false
	}
	switch tok[1] | 0x20 {
	case 'e', 't', 'c', 'i', 'f':
	default:
		if tok[1] != '\\' {
			return keyNone, false
		}
	}
	name := memberName(tok)
	if len(name) < len("type") || len(name) > 2*len("finish_reason") {
		return keyNone, false
	}
	for _, k := range guardKeys {
		if bytes.EqualFold(name, k.name) {
			return k.key, bytes.Equal(name, k.name)
		}
	}
	return keyNone, false
}

// lineEffects reads the top level of one data line, a JSON object or
// array, matching member names as guardKey does: an occurrence of a key
// is any member whose name folds to it. In an object: any top-level
// "error" that is not null, or any top-level "type" "error" or
// "response.failed", is an in-band error; it is terminal when every
// top-level "type" is "response.completed" or "response.incomplete" and
// one of them is spelled exactly "type"; when it has one "choices" array
// (or several, all the same bytes, one spelled exactly), each object in
// it whose every "finish_reason" is a non-empty string (one spelled
// exactly) and whose every "index" is the same non-negative integer (one
// spelled exactly; 0 when it has none) finishes that choice, reported
// through mark when below n. So a finish or a terminal type counts only
// when every decoder of duplicate or case-variant keys reads it (openai-go
// matches names exactly, encoding/json case-insensitively), an error when
// any does. An array is an in-band error
// when one of its elements is an object that is one (Gemini's error
// shape); it is never terminal and finishes nothing. Nested values are
// skipped, not validated: callers validate a line before acting on its
// effects.
func lineEffects(v []byte, n int, mark func(int)) (e effects, err error) {
	return effectsOf(v, n, mark, true)
}

// effectsOf is lineEffects; top is false for an array's element, whose
// null "error" is no error (the SDKs look for a top-level one only).
func effectsOf(v []byte, n int, mark func(int), top bool) (e effects, err error) {
	if i := skipSpace(v, 0); i < len(v) && v[i] == '[' {
		err = eachElement(v[i:], func(_ int, el []byte) error {
			if el[0] == '{' {
				if ee, err := effectsOf(el, 0, nil, false); err == nil && ee.failed {
					e.failed = true
				}
			}
			return nil
		})
		return e, err
	}
	var choices []byte
	sameChoices, types, terminals := true, 0, 0
	exactType, exactChoices := false, false
	err = eachMember(v, func(name []byte, s span) error {
		val := v[s.start:s.end]
		key, exact := guardKey(name)
		switch key {
		case keyError:
			// At the top level even null: openai-go fails on any "error"
			// member it finds (gjson Exists), go-openai on any line that
			// starts with one.
			if top || string(val) != "null" {
				e.failed = true
			}
		case keyType:
			e.typ = nil
			if val[0] == '"' {
				t, err := decodeString(val)
				if err != nil {
					return err
				}
				e.typ = t
				if errorEvent(t) {
					e.failed = true
				}
				if terminalEvent(t) {
					terminals++
				}
			}
			types++
			exactType = exactType || exact
		case keyChoices:
			exactChoices = exactChoices || exact
			if choices != nil && !bytes.Equal(choices, val) {
				sameChoices = false
			}
			choices = val
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	e.terminal = exactType && terminals == types
	if !exactChoices || !sameChoices || choices[0] != '[' || mark == nil {
		return e, nil
	}
	err = eachElement(choices, func(_ int, el []byte) error {
		if el[0] != '{' {
			return nil
		}
		i, ok, hasIdx, exactIdx := 0, true, false, false
		exactFinish, allFinish := false, true
		err := eachMember(el, func(name []byte, s span) error {
			val := el[s.start:s.end]
			switch key, exact := guardKey(name); key {
			case keyIndex:
				j, jok := choiceIndex(val)
				if !jok || (hasIdx && j != i) {
					ok = false
				}
				i, hasIdx = j, true
				exactIdx = exactIdx || exact
			case keyFinish:
				exactFinish = exactFinish || exact
				// A non-empty JSON string token decodes to a non-empty
				// string.
				allFinish = allFinish && finishes(val)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if hasIdx && !exactIdx {
			ok = false // openai-go reads choice 0, encoding/json another
		}
		if ok && i < n && exactFinish && allFinish {
			mark(i)
			e.finishes = true
		}
		return nil
	})
	return e, err
}

// finishes reports whether a "finish_reason" value is a non-empty string.
func finishes(val []byte) bool {
	return len(val) > 2 && val[0] == '"'
}

// choiceIndex reads a choice's "index": a non-negative integer literal.
func choiceIndex(val []byte) (int, bool) {
	if len(val) == 0 || len(val) > 9 {
		return 0, false
	}
	i := 0
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}

// eachElement walks the elements of the JSON array p, calling f with each
// element's position and bytes. Nested values are skipped, not validated.
func eachElement(p []byte, f func(pos int, v []byte) error) error {
	i := skipSpace(p, 1)
	if i < len(p) && p[i] == ']' {
		return nil
	}
	for pos := 0; ; pos++ {
		end, err := skipValue(p, i)
		if err != nil {
			return err
		}
		if err := f(pos, p[i:end]); err != nil {
			return err
		}
		i = skipSpace(p, end)
		if i >= len(p) {
			return errors.New("unterminated array")
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case ']':
			return nil
		default:
			return fmt.Errorf("unexpected %q at offset %d", p[i], i)
		}
	}
}

var (
	responseWord  = []byte(`response.`)
	unicodeEscape = []byte(`\u`)
	longS         = []byte("\u017f") // ſ, which folds to "s"
	kelvin        = []byte("\u212a") // K, which folds to "k"
)

// candidate is the per-event filter of a committed stream: it reports
// whether a data line may carry an error, a terminal type or a finish, so
// that only those lines are read member by member. It must never miss a
// key that guardKey matches, in any case or with "ſ" for "s". Every other
// event costs a few byte searches, by bytes rarer in JSON than its quotes:
// 'r' and 'R' for "error" and "response.(completed|incomplete|failed)"
// (values, which no decoder folds), '_' for "finish_reason" (with a value
// other than null), '\' for \u escapes, which could spell any of those.
func candidate(v []byte) bool {
	for off := 0; ; {
		i := bytes.IndexByte(v[off:], 'r')
		if i < 0 {
			break
		}
		i += off
		switch {
		case i >= 2 && v[i-2] == '"' && foldMatch(v[i-1:], `error"`) > 0:
			return true
		case i >= 1 && v[i-1] == '"' && bytes.HasPrefix(v[i:], responseWord):
			rest := v[i+len(responseWord):]
			for _, s := range [...]string{`completed"`, `incomplete"`, `failed"`} {
				if len(rest) >= len(s) && string(rest[:len(s)]) == s {
					return true
				}
			}
		}
		off = i + 1
	}
	for off := 0; ; {
		i := bytes.IndexByte(v[off:], 'R')
		if i < 0 {
			break
		}
		i += off
		if i >= 2 && v[i-2] == '"' && foldMatch(v[i-1:], `error"`) > 0 {
			return true
		}
		off = i + 1
	}
	return hasFinish(v) || (bytes.IndexByte(v, '\\') >= 0 && bytes.Contains(v, unicodeEscape))
}

// foldMatch reports how many bytes at the start of v spell word (lower-case
// ASCII) under encoding/json's case folding, or 0 when v does not start
// with it: a letter matches itself in either case, 's' also "ſ" (U+017F)
// and 'k' also "K" (U+212A), the only other runes that fold to ASCII.
func foldMatch(v []byte, word string) int {
	i := 0
	for j := 0; j < len(word); j++ {
		c := word[j]
		switch {
		case i >= len(v):
			return 0
		case v[i] == c, 'a' <= c && c <= 'z' && v[i] == c-('a'-'A'):
			i++
		case c == 's' && bytes.HasPrefix(v[i:], longS):
			i += 2
		case c == 'k' && bytes.HasPrefix(v[i:], kelvin):
			i += 3
		default:
			return 0
		}
	}
	return i
}

// hasFinish reports whether a "finish_reason" key, in any case or with
// "ſ" for "s", is followed by a value other than null.
func hasFinish(v []byte) bool {
	for off := 0; ; {
		u := bytes.IndexByte(v[off:], '_')
		if u < 0 {
			return false
		}
		u += off
		off = u + 1
		// '_' is the key's 7th byte, its 8th with "ſ" for its 's'.
		for _, q := range [...]int{u - 7, u - 8} {
			if q < 0 || v[q] != '"' {
				continue
			}
			m := foldMatch(v[q+1:], `finish_reason"`)
			if m == 0 {
				continue
			}
			rest := v[q+1+m:]
			j := skipSpace(rest, 0)
			if j < len(rest) && rest[j] == ':' {
				j = skipSpace(rest, j+1)
				if j < len(rest) && rest[j] != 'n' {
					return true
				}
			}
		}
	}
}

// upstream is the provider's body. It records when a read is blocked on
// it, so the stream's limits measure the provider's silence, never the
// caller's pauses between reads.
type upstream struct {
	rc    io.ReadCloser
	start time.Time
	// since is 1 + the nanoseconds from start at which the read in
	// progress began, or 0 when no read is in progress.
	since atomic.Int64
	// done is the nanoseconds every finished read waited, in sum.
	done atomic.Int64
}

func newUpstream(rc io.ReadCloser) *upstream {
	return &upstream{rc: rc, start: time.Now()}
}

// Read implements io.Reader.
func (u *upstream) Read(p []byte) (int, error) {
	t0 := time.Since(u.start)
	u.since.Store(int64(t0) + 1)
	n, err := u.rc.Read(p)
	t1 := time.Since(u.start)
	u.since.Store(0)
	u.done.Add(int64(t1 - t0))
	return n, err
}

// waited returns how long reads have waited on the provider in all, the
// read in progress included. Seen from another goroutine it may lag
// behind, never run ahead.
func (u *upstream) waited() time.Duration {
	return time.Duration(u.done.Load()) + u.blocked()
}

// blocked returns how long the read in progress has waited, 0 when none is.
func (u *upstream) blocked() time.Duration {
	b := u.since.Load()
	if b == 0 {
		return 0
	}
	return time.Since(u.start) - time.Duration(b-1)
}

// streamBody is a committed stream handed to the caller. It passes bytes
// through line by line, and turns the ways a stream can break into errors.
type streamBody struct {
	// mask hides secrets in a provider's in-band error before the caller
	// sees it (the zero value hides nothing).
	mask    masker
	pending []byte // bytes of the current line not yet returned
	br      *bufio.Reader
	up      *upstream
	cancel  context.CancelFunc
	idle    time.Duration
	grace   time.Duration
	maxLine int

	// The completeness state, used by the reading goroutine only.
	mode     completion
	n        int      // choices to finish; 0: completion by choices is off
	fin      []uint64 // choices finished
	pend     []uint64 // choices finished by the event being read
	words    [2]uint64
	nFin     int
	pendAny  bool // pend is not empty
	pendDone bool // the event being read completes the stream
	inFail   bool // reading an error event; its data goes to errData
	failName string
	errData  []byte
	thread   bool // the event being read is named "thread.*"
	ping     bool // the event being read is named "ping"
	evData   bool // the event being read has data other than a keep-alive

	complete atomic.Bool // a complete event was dispatched
	// doneSeen: a [DONE] line, outside a thread.* event, was handed over
	// (its event may not be dispatched yet: a reader such as go-openai
	// stops at the line); a stream closed after it counts as complete.
	doneSeen atomic.Bool
	// evDone: the line just inspected (or, held, the event being read) is
	// such a [DONE].
	evDone bool
	// graceFrom is up.waited() when the stream completed or, after that,
	// when the last event with data other than a keep-alive was
	// dispatched: the finish grace counts the provider's silence from
	// there, so keep-alives do not extend it.
	graceFrom atomic.Int64
	fired     atomic.Bool // the idle (or grace) timer ended the stream

	mu     sync.Mutex // guards timer and closed
	timer  *time.Timer
	closed bool

	err  error
	once sync.Once

	// settle gives the stream's verdict when it ends (nil once given, or
	// for none): see run.settler. continued says whether the part that
	// ended is a continuation.
	settle func(err error, continued bool)
	// lease is the breaker probe the stream's attempt holds, if any: it is
	// released once the verdict is given, or when none will be.
	lease probeLease

	// ext holds event holding, dropped malformed events and the rescue
	// (continuation.go); nil for a stream that needs none of them.
	ext *streamExt

	// An Observer's hooks (observer.go), nil without one: onData reads
	// each valid JSON data line; onEnd is called once when the stream
	// ends, with io.EOF when it completed, the error that ended it, or
	// nil and closed when the caller closed it before its end.
	onData func(v []byte)
	onEnd  func(err error, closed bool)
}

// newStreamBody commits to a stream whose first bytes, prefix, were read
// (and checked) by peekFirstEvent. n is the request's "n" (0 or less: 1);
// op its operation, which names the markers that complete it (see
// completionFor).
func newStreamBody(prefix []byte, br *bufio.Reader, up *upstream, cancel context.CancelFunc, idle, grace time.Duration, n int, op string) *streamBody {
	s := &streamBody{pending: prefix, br: br, up: up, cancel: cancel, idle: idle, grace: grace, maxLine: MaxStreamLineBytes}
	s.mode = completionFor(op)
	if n <= 0 {
		n = 1
	}
	if n <= maxChoices && s.mode&byChoices != 0 {
		s.n = n
		w := (n + 63) / 64
		if w == 1 {
			s.fin, s.pend = s.words[:1], s.words[1:2]
		} else {
			s.fin, s.pend = make([]uint64, w), make([]uint64, w)
		}
	}
	// The prefix holds no error and no malformed line (peekFirstEvent
	// checked them); it may complete the stream.
	for p := prefix; len(p) > 0; {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p) - 1
		}
		_, _ = s.inspect(p[:i+1])
		p = p[i+1:]
	}
	if d := s.limit(); d > 0 && s.timer == nil {
		s.mu.Lock()
		s.timer = time.AfterFunc(d, s.check)
		s.mu.Unlock()
	}
	return s
}

// limit is the provider's silence allowed now: the grace once complete,
// else idle. 0 means none.
func (s *streamBody) limit() time.Duration {
	if s.complete.Load() && s.grace > 0 {
		return s.grace
	}
	return s.idle
}

// check runs when the timer fires: it ends the stream when a read has been
// blocked on the provider for the whole limit (once the stream is complete:
// when reads have waited that long in all since it completed or last sent
// data other than a keep-alive), else looks again when it could next be.
func (s *streamBody) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.limit()
	if s.closed || d <= 0 {
		return
	}
	if s.complete.Load() {
		used := s.up.waited() - time.Duration(s.graceFrom.Load())
		if used >= d {
			s.fired.Store(true)
			s.cancel()
			return
		}
		next := d - used
		if s.up.blocked() == 0 {
			// The caller is not reading: the silence does not grow
			// until it does; look again a little later.
			next = max(next, d/4)
		}
		s.timer.Reset(next)
		return
	}
	b := s.up.blocked()
	if b >= d {
		s.fired.Store(true)
		s.cancel()
		return
	}
	s.timer.Reset(d - b)
}

// completed records a dispatched complete event; the limit becomes the
// grace.
func (s *streamBody) completed() {
	if s.complete.Load() {
		return
	}
	s.graceFrom.Store(int64(s.up.waited()))
	s.complete.Store(true)
	d := s.limit()
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case s.timer == nil:
		s.timer = time.AfterFunc(d, s.check)
	default:
		s.timer.Reset(0) // check now against the new limit
	}
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
	if s.ext != nil {
		return s.readHeld(p)
	}
	n := 0
	for n < len(p) {
		var line []byte
		if n == 0 {
			var err error
			line, err = readLine(s.br, s.maxLine)
			if err != nil || len(line) == 0 || line[len(line)-1] != '\n' {
				// The stream ended. A partial last line is not delivered.
				s.stop(s.end(err))
				return 0, s.err
			}
		} else {
			// Hand over the complete lines already buffered too, without
			// blocking: one Read per line would cost a call per event.
			buf, _ := s.br.Peek(s.br.Buffered())
			i := bytes.IndexByte(buf, '\n')
			if i < 0 || i+1 > s.maxLine {
				break
			}
			line = buf[:i+1]
			_, _ = s.br.Discard(i + 1) // valid until the next read of br
		}
		deliver, err := s.inspect(line)
		if err != nil {
			s.stop(err)
			if n > 0 {
				return n, nil // the lines before it; the error comes next
			}
			return 0, err
		}
		if !deliver {
			continue
		}
		if s.evDone {
			s.doneSeen.Store(true)
		}
		m := copy(p[n:], line)
		s.pending = line[m:]
		n += m
	}
	return n, nil
}

// end is the error that ends a stream whose upstream read failed with err.
func (s *streamBody) end(err error) error {
	switch {
	case errors.Is(err, ErrStreamMalformed): // a line too long
		return err
	case s.inFail:
		return s.eventError()
	case s.complete.Load():
		return io.EOF
	case s.fired.Load():
		return ErrStreamIdle
	case err == nil, err == io.EOF:
		return ErrStreamTruncated
	}
	return errors.Join(ErrStreamTruncated, err)
}

// inspect reads one complete line of the stream. It reports whether the
// line is delivered (an error event's lines are not), and the error that
// ends the stream at this line, if any.
func (s *streamBody) inspect(line []byte) (bool, error) {
	l := trimEOL(line)
	if s.inFail {
		switch {
		case len(l) == 0:
			return false, s.eventError()
		case bytes.HasPrefix(l, dataField) && len(s.errData) < maxErrorData:
			if len(s.errData) > 0 {
				s.errData = append(s.errData, '\n')
			}
			s.errData = append(s.errData, fieldValue(l, len(dataField))...)
		}
		return false, nil
	}
	if len(l) == 0 {
		s.dispatch()
		return true, nil
	}
	switch {
	case spacedField(l):
		return false, ErrStreamMalformed
	case bytes.HasPrefix(l, dataField):
		return s.data(trimJSONSpace(fieldValue(l, len(dataField))))
	case bytes.HasPrefix(l, eventField):
		name := fieldValue(l, len(eventField))
		// The last event: line names the event.
		s.thread = bytes.HasPrefix(name, threadPrefix)
		s.ping = string(name) == "ping"
		// A terminal event name alone completes nothing: openai-go reads
		// an event's type from its data.
		if errorEvent(name) {
			s.inFail, s.failName = true, string(name)
			return false, nil
		}
	}
	return true, nil
}

// data reads one data line's value.
func (s *streamBody) data(v []byte) (bool, error) {
	if len(v) > 0 && !s.evData && (!s.complete.Load() || !pingData(v)) {
		s.evData = true
	}
	switch {
	case len(v) == 0: // a keep-alive
		return true, nil
	case bytes.Equal(v, doneData):
		s.pendDone = true
		// A reader ends at this line (openai-go even in a "thread.*"
		// event, go-openai always); it counts as the end for the verdict
		// once handed over (see doneSeen), outside a thread.* event.
		s.evDone = !s.thread
		return true, nil
	case !validJSON(v):
		// Every data line is validated whole: a raw reader must never
		// take garbage for an answer (an SDK would reject it, a plain
		// http.Client reader would not).
		return false, ErrStreamMalformed
	case s.onData != nil:
		s.onData(v)
	}
	switch {
	case !candidate(v):
		return true, nil
	}
	var mark func(int)
	if s.n > 0 {
		mark = s.mark
	}
	e, err := lineEffects(v, s.n, mark)
	if err == nil && !e.failed && !e.terminal && !e.finishes {
		return true, nil
	}
	if err != nil {
		return true, nil // JSON, but neither an object nor an array
	}
	if e.failed {
		var o Outcome
		parseStreamError(&o, v)
		return false, s.streamError("", o)
	}
	if e.terminal && s.mode&byTerminal != 0 {
		s.pendDone = true
	}
	return true, nil
}

// mark records that choice i finished in the event being read.
func (s *streamBody) mark(i int) {
	s.pend[i/64] |= 1 << (i % 64)
	s.pendAny = true
}

// pingData reports whether a data line is a keep-alive: JSON whose "type"
// is quiet (see quietEvent).
func pingData(v []byte) bool {
	// Every quiet type has a 'p' ("ping", "response.*"), or is escaped.
	if bytes.IndexByte(v, 'p') < 0 && !bytes.Contains(v, unicodeEscape) {
		return false
	}
	e, err := lineEffects(v, 0, nil)
	return err == nil && validJSON(v) && quietEvent(e.typ)
}

// dispatch applies the effects of the event that a blank line ends.
func (s *streamBody) dispatch() {
	if s.thread {
		// openai-go decodes a "thread.*" event as {"event", "data"}: no
		// finish or terminal type of it is visible to it. (A [DONE] in it
		// ends openai-go's reading all the same; the gateway still does
		// not take it for the end: a raw reader gets the truncation.)
		clear(s.pend)
		s.pendAny, s.pendDone = false, false
	}
	if s.evData && !s.ping && s.complete.Load() {
		s.graceFrom.Store(int64(s.up.waited()))
	}
	s.thread, s.ping, s.evData = false, false, false
	if s.pendAny {
		for i, p := range s.pend {
			s.nFin += bits.OnesCount64(p &^ s.fin[i])
			s.fin[i] |= p
			s.pend[i] = 0
		}
		s.pendAny = false
		if s.nFin >= s.n {
			s.pendDone = true
		}
	}
	if s.pendDone {
		s.pendDone = false
		s.completed()
	}
}

// eventError describes the error event being read.
func (s *streamBody) eventError() error {
	var o Outcome
	parseStreamError(&o, s.errData)
	return s.streamError(s.failName, o)
}

// stop records the error that ends the stream, gives its verdict and
// releases it.
func (s *streamBody) stop(err error) {
	s.err = err
	s.verdict(err)
	s.releaseErr(err)
}

// verdict gives the stream's verdict once: err is how it ended, nil when
// the caller closed it first (no verdict).
func (s *streamBody) verdict(err error) {
	s.mu.Lock()
	f, lease := s.settle, s.lease
	s.settle, s.lease = nil, probeLease{}
	s.mu.Unlock()
	if f != nil && err != nil {
		f(err, s.ext != nil && s.ext.splicing)
	}
	lease.release() // settled by the verdict, or freed for the next probe
}

// Close implements io.Closer.
func (s *streamBody) Close() error {
	s.release()
	return nil
}

func (s *streamBody) release() { s.releaseErr(nil) }

// releaseErr releases the stream once; err is how it ended, nil when the
// caller closed it.
func (s *streamBody) releaseErr(err error) {
	s.once.Do(func() {
		if s.onEnd != nil {
			defer func() {
				switch {
				case err == nil && (s.complete.Load() || s.doneSeen.Load()):
					s.onEnd(io.EOF, false)
				case err == nil:
					s.onEnd(nil, true)
				default:
					s.onEnd(err, false)
				}
			}()
		}
		s.mu.Lock()
		s.closed = true
		// Closed before its end: a success if it was complete (a reader
		// may stop at [DONE], as go-openai does), else no verdict.
		settle, lease := s.settle, s.lease
		s.settle, s.lease = nil, probeLease{}
		defer func() {
			if settle != nil && (s.complete.Load() || s.doneSeen.Load()) {
				settle(io.EOF, s.ext != nil && s.ext.splicing)
			}
			lease.release()
		}()
		if s.timer != nil {
			s.timer.Stop()
		}
		up, cancel := s.up, s.cancel // a rescue swaps them under mu
		var rescue context.CancelFunc
		if s.ext != nil && s.ext.cont != nil {
			rescue = s.ext.cont.cancel // a continuation in flight
		}
		s.mu.Unlock()
		if rescue != nil {
			rescue()
		}
		cancel()
		up.rc.Close()
	})
}

// streamError is the error of an in-band failure, with the gateway's known
// secrets masked: a provider echoing another provider's key never gets it
// to the caller.
func (s *streamBody) streamError(event string, o Outcome) *StreamError {
	o.Code, o.Type, o.Message = s.mask.mask(o.Code), s.mask.mask(o.Type), s.mask.mask(o.Message)
	return &StreamError{Event: event, Code: o.Code, Type: o.Type, Message: o.Message}
}
