package gwtransport

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// This file reads and rewrites request bodies at the byte level. The
// gateway never decodes the caller's body into Go values: it locates the
// top-level members it needs ("model", "stream", "messages", "input") with a
// small scanner and splices new bytes in, so every other byte reaches the
// provider exactly as the caller wrote it.

// ErrMalformedBody is wrapped by the error RoundTrip returns when a body
// names a gateway route or target in its "model" member but is not valid
// JSON, so no provider would accept it.
var ErrMalformedBody = errors.New("gwtransport: malformed JSON request body")

// span is a half-open byte range [start, end) of a body.
type span struct{ start, end int }

// bodyInfo is what the scanner learnt about a JSON request body.
type bodyInfo struct {
	// nModels counts the top-level members whose decoded name is "model" in
	// any case ("model", "Model", "MODEL", "mod\u0065l"); modelAt returns
	// their value ranges in body order (the first two are kept in place, to
	// spare an allocation). Decoders disagree on duplicate keys, and some
	// (Go's encoding/json) match names case-insensitively, so a rewrite
	// replaces all of them: no provider, whatever its decoder, sees a model
	// other than the target's.
	nModels  int
	inPlace  [2]span
	moreSpan []span
	// model is the decoded value of the last top-level member named exactly
	// "model" (case variants are rewritten but never decide interception)
	// when it is a JSON string. It aliases the body's bytes (no copy) unless the
	// string has escapes.
	model []byte
	// modelIsString reports whether that last member's value is a string.
	modelIsString bool
	// modelVariants counts the members naming the model in another case
	// ("Model", "MODEL"), rewritten with the others.
	modelVariants int
	// stream reports whether the top-level "stream" member is literally true.
	stream bool
	// messages and input are the value ranges of the top-level "messages" and
	// "input" members (the last of each), or start == -1 when absent.
	messages, input span
	// ambiguous says why the body's conversation is ambiguous (two
	// "messages" or "input" members, or one in another case: decoders
	// disagree on which counts), or is "". A route that prepends model
	// messages refuses such a body.
	ambiguous string
	// conflict says why decoders would read the request differently in a
	// way the gateway's guard depends on ("stream" or "n" members that
	// disagree), or is "": such a body is refused.
	conflict          string
	streamSeen, nSeen bool
	// n is the last top-level "n" when it is a positive integral number
	// (2, 2.0), else 0: the number of choices a stream must finish.
	n int
}

func (b *bodyInfo) addModel(s span) {
	if b.nModels < len(b.inPlace) {
		b.inPlace[b.nModels] = s
	} else {
		b.moreSpan = append(b.moreSpan, s)
	}
	b.nModels++
}

func (b *bodyInfo) modelAt(i int) span {
	if i < len(b.inPlace) {
		return b.inPlace[i]
	}
	return b.moreSpan[i-len(b.inPlace)]
}

// looksLikeJSONObject reports whether the first non-space byte of p opens a
// JSON object. It is the cheap test that decides whether a body is scanned.
func looksLikeJSONObject(p []byte) bool {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// scanBody parses the top level of a JSON object and records the members the
// gateway cares about. Nested values are skipped without being decoded; long
// strings are skipped with bytes.IndexByte. It returns an error when the body
// is not a well-formed JSON object at its top level; what was found before
// the error is still returned.
func scanBody(p []byte, info *bodyInfo) error {
	*info = bodyInfo{messages: span{-1, -1}, input: span{-1, -1}}
	return eachMember(p, func(name []byte, v span) error {
		key, err := memberKey(name)
		if err != nil {
			return err
		}
		switch key {
		case keyModel:
			info.addModel(v)
			info.model, info.modelIsString = nil, false
			if p[v.start] == '"' {
				s, err := decodeString(p[v.start:v.end])
				if err != nil {
					return err
				}
				info.model, info.modelIsString = s, true
			} else if !json.Valid(p[v.start:v.end]) {
				// A rewrite replaces this value too: it must not turn a
				// malformed body into a valid one.
				return fmt.Errorf("invalid model value at offset %d", v.start)
			}
		case keyModelVariant:
			// Rewritten with the others, never read: the exact "model"
			// alone decides whether the gateway takes the request.
			info.addModel(v)
			info.modelVariants++
			if p[v.start] == '"' {
				if _, err := decodeString(p[v.start:v.end]); err != nil {
					return err
				}
			} else if !json.Valid(p[v.start:v.end]) {
				return fmt.Errorf("invalid model value at offset %d", v.start)
			}
		case keyStream, keyStreamVariant:
			val := string(p[v.start:v.end])
			if val != "true" && val != "false" && val != "null" {
				// "true" or 1 streams at a lenient provider (pydantic's
				// lax mode) while the gateway would not guard a stream.
				info.conflict = `"stream" is neither true, false nor null: a lenient provider may stream an answer the gateway would not guard as one`
			}
			on := val == "true"
			if info.streamSeen && on != info.stream {
				info.conflict = `"stream" members (in some case) disagree: decoders would not agree on whether the answer streams`
			}
			info.stream, info.streamSeen = info.stream || on, true
		case keyMessages:
			if info.messages.start >= 0 {
				info.ambiguous = `two "messages" members: decoders disagree on which one counts`
			}
			info.messages = v
		case keyInput:
			if info.input.start >= 0 {
				info.ambiguous = `two "input" members: decoders disagree on which one counts`
			}
			info.input = v
		case keyConversationVariant:
			info.ambiguous = fmt.Sprintf(`a member named like "messages" or "input" in another case, at offset %d: decoders disagree on which one counts`, v.start)
		case keyN, keyNVariant:
			if c := p[v.start]; c != '-' && (c < '0' || c > '9') && string(p[v.start:v.end]) != "null" {
				// "2" is 2 choices at a lenient provider, and the gateway
				// would wait for one.
				info.conflict = `"n" is neither a number nor null: a lenient provider may read more choices than the gateway would guard`
			}
			n := choiceCount(p[v.start:v.end])
			if info.nSeen && n != info.n {
				info.conflict = `"n" members (in some case) disagree: decoders would not agree on how many choices stream`
			}
			info.n, info.nSeen = max(info.n, n), true
		}
		return nil
	})
}

// choiceCount reads a request's "n": a positive integral number (capped
// at maxChoices+1), else 0.
func choiceCount(v []byte) int {
	f, err := strconv.ParseFloat(string(v), 64)
	switch {
	case err != nil || !(f >= 1) || f != math.Trunc(f):
		return 0
	case f > maxChoices:
		return maxChoices + 1
	}
	return int(f)
}

// eachMember walks the members of the JSON object that p holds (white
// space around it allowed), calling f with each member's quoted name token
// and value range. Nested values are skipped without being decoded. It
// returns an error when p is not a well-formed object at its top level, or
// f's error.
func eachMember(p []byte, f func(name []byte, v span) error) error {
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return errors.New("body is not a JSON object")
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return trailing(p, i+1)
	}
	for {
		if i >= len(p) || p[i] != '"' {
			return fmt.Errorf("expected a member name at offset %d", i)
		}
		nameEnd, err := skipString(p, i)
		if err != nil {
			return err
		}
		name := p[i:nameEnd]
		i = skipSpace(p, nameEnd)
		if i >= len(p) || p[i] != ':' {
			return fmt.Errorf("expected ':' at offset %d", i)
		}
		i = skipSpace(p, i+1)
		valStart := i
		valEnd, err := skipValue(p, i)
		if err != nil {
			return err
		}
		if err := f(name, span{valStart, valEnd}); err != nil {
			return err
		}
		i = skipSpace(p, valEnd)
		if i >= len(p) {
			return errors.New("unexpected end of body")
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case '}':
			return trailing(p, i+1)
		default:
			return fmt.Errorf("unexpected %q at offset %d", p[i], i)
		}
	}
}

// trailing checks that only white space follows the top-level object.
func trailing(p []byte, i int) error {
	if j := skipSpace(p, i); j != len(p) {
		return fmt.Errorf("unexpected data after the top-level object at offset %d", j)
	}
	return nil
}

func skipSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// The member names the scanner looks for.
const (
	keyOther = iota
	keyModel
	keyStream
	keyMessages
	keyInput
	keyN
	// keyConversationVariant is a name equal to "messages" or "input"
	// under a decoder's case folding but not exactly: a body holding one
	// is ambiguous (decoders would disagree on which list the model
	// messages were prepended to).
	keyConversationVariant
	// keyStreamVariant and keyNVariant are "stream" and "n" in another
	// case: a case-insensitive decoder reads them, so the gateway does too.
	keyStreamVariant
	keyNVariant
	// keyModelVariant is a name equal to "model" under case folding but
	// not exactly "model" ("Model", "MODEL").
	keyModelVariant
)

// memberKey identifies a member from its quoted name token. Names are
// almost always plain ASCII, so escapes take the slow path.
func memberKey(tok []byte) (int, error) {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		s, err := decodeString(tok)
		if err != nil {
			return keyOther, err
		}
		inner = s
	}
	switch string(inner) {
	case "model":
		return keyModel, nil
	case "stream":
		return keyStream, nil
	case "messages":
		return keyMessages, nil
	case "input":
		return keyInput, nil
	case "n":
		return keyN, nil
	}
	if len(inner) == len("model") && bytes.EqualFold(inner, modelName) {
		// Only ASCII letters fold to m, o, d, e and l (unlike k and s, which
		// U+212A and U+017F fold to), so a variant is five bytes long.
		return keyModelVariant, nil
	}
	if foldsTo(inner, "messages") || foldsTo(inner, "input") {
		return keyConversationVariant, nil
	}
	if foldsTo(inner, "stream") {
		return keyStreamVariant, nil
	}
	if foldsTo(inner, "n") {
		return keyNVariant, nil
	}
	return keyOther, nil
}

// foldsTo reports whether name equals want under the case folding of Go's
// encoding/json (which also folds U+017F to s and U+212A to k). want is
// lower-case ASCII. Plain ASCII names, nearly all of them, cost no
// allocation.
func foldsTo(name []byte, want string) bool {
	for _, c := range name {
		if c >= 0x80 {
			if len(name) > 3*len(want) {
				return false
			}
			s := strings.NewReplacer("\u017f", "s", "\u212a", "k").Replace(string(name))
			return strings.EqualFold(s, want)
		}
	}
	if len(name) != len(want) {
		return false
	}
	for i, c := range name {
		if c|0x20 != want[i] {
			return false
		}
	}
	return true
}

var modelName = []byte("model")

// decodeString decodes a quoted JSON string token, validating it. A plain
// ASCII string is returned as a sub-slice of tok, without a copy.
func decodeString(tok []byte) ([]byte, error) {
	inner := tok[1 : len(tok)-1]
	plain := true
	for _, c := range inner {
		if c < 0x20 || c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, fmt.Errorf("invalid string: %w", err)
	}
	return []byte(s), nil
}

// skipString returns the offset just past the string token starting at p[i].
func skipString(p []byte, i int) (int, error) {
	j := i + 1
	for {
		// Quotes and backslashes close together (an escape-heavy prompt)
		// are read byte by byte, 64 bytes at a time; a run of neither is
		// found eight bytes at a time and, when long, with IndexByte,
		// which is much faster there.
		run := 0
		for ; run < 4 && j+8 <= len(p); run++ {
			x := binary.LittleEndian.Uint64(p[j:])
			q, e := x^lo8*'"', x^lo8*'\\'
			if m := (q-lo8)&^q&hi8 | (e-lo8)&^e&hi8; m != 0 {
				// The lowest bit set marks the first such byte (a
				// borrow only ever marks bytes after it).
				j += bits.TrailingZeros64(m) / 8
				break
			}
			j += 8
		}
		if run < 4 {
			for stop := min(j+64, len(p)); j < stop; j++ {
				switch p[j] {
				case '"':
					return j + 1, nil
				case '\\':
					j++ // an escape: its second byte is never the end
				}
			}
			if j >= len(p) {
				return 0, errors.New("unterminated string")
			}
			continue
		}
		k := bytes.IndexByte(p[j:], '"')
		if k < 0 {
			return 0, errors.New("unterminated string")
		}
		j += k
		// The quote is escaped when an odd number of backslashes precede it
		// (within this string: the opening quote bounds the count).
		n := 0
		for b := j - 1; b > i && p[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, nil
		}
		j++
	}
}

// skipValue returns the offset just past the JSON value starting at p[i].
// Containers are skipped by counting brackets outside strings; their inside
// is not validated, which is all the gateway needs to find the next top-level
// member (the provider validates the rest).
func skipValue(p []byte, i int) (int, error) {
	if i >= len(p) {
		return 0, errors.New("unexpected end of body")
	}
	switch c := p[i]; {
	case c == '"':
		return skipString(p, i)
	case c == '{' || c == '[':
		return skipContainer(p, i)
	case c == 't':
		return skipLiteral(p, i, "true")
	case c == 'f':
		return skipLiteral(p, i, "false")
	case c == 'n':
		return skipLiteral(p, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(p) && strings.IndexByte("0123456789.eE+-", p[j]) >= 0 {
			j++
		}
		return j, nil
	default:
		return 0, fmt.Errorf("unexpected %q at offset %d", c, i)
	}
}

func skipLiteral(p []byte, i int, lit string) (int, error) {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return 0, fmt.Errorf("invalid literal at offset %d", i)
	}
	return i + len(lit), nil
}

func skipContainer(p []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(p); j++ {
		switch p[j] {
		case '"':
			end, err := skipString(p, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, errors.New("unterminated container")
}

// Message is a model-specific message prepended to a request's messages
// (chat) or input (Responses API) when the request is sent to that model.
type Message struct {
	// Role is "system", "developer" or "user": the roles that may open a
	// conversation.
	Role string `json:"role"`
	// Content is the message text.
	Content string `json:"content"`
}

// encodeMessages validates messages and encodes them as the comma-separated
// elements to splice into an array.
func encodeMessages(target string, msgs []Message) ([]byte, error) {
	var buf bytes.Buffer
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user":
		default:
			return nil, fmt.Errorf("gwtransport: model messages for %q: message %d has role %q; want system, developer or user", target, i, m.Role)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("gwtransport: model messages for %q: %w", target, err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

// edit replaces p[at.start:at.end] with the concatenation of parts.
type edit struct {
	at    span
	parts [][]byte
}

// rewriteBody returns a copy of body in which every top-level "model" value
// ("Model" and other case variants too: see bodyInfo.nModels) is replaced
// by the JSON string model and, when prepend is not empty, the model
// messages are spliced at the front of "messages" (or of "input" for the
// Responses API; a string input becomes a one-message list). quotedModel is
// the JSON encoding of the model name. The result is appended to dst.
func rewriteBody(dst, body []byte, info *bodyInfo, quotedModel, prepend []byte) []byte {
	var edits [4]edit
	es := edits[:0]
	for i := 0; i < info.nModels; i++ {
		es = append(es, edit{at: info.modelAt(i), parts: [][]byte{quotedModel}})
	}
	if len(prepend) > 0 {
		if e, ok := prependEdit(body, info, prepend); ok {
			es = append(es, e)
		}
	}
	// Edits are produced in body order except the prepend, which may sit
	// anywhere; a tiny insertion sort keeps the splice linear.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].at.start < es[j-1].at.start; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
	n := len(body) + len(prepend) + 32
	for _, e := range es {
		for _, part := range e.parts {
			n += len(part)
		}
	}
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	last := 0
	for _, e := range es {
		dst = append(dst, body[last:e.at.start]...)
		for _, part := range e.parts {
			dst = append(dst, part...)
		}
		last = e.at.end
	}
	return append(dst, body[last:]...)
}

var (
	comma       = []byte{','}
	userOpen    = []byte(`,{"role":"user","content":`)
	closeObjArr = []byte("}]")
	openArr     = []byte{'['}
)

// prependEdit builds the edit that puts model messages first: into the
// "messages" array when there is one (chat), else into "input" (Responses:
// an array, or a string that becomes a one-message list). Anything else is
// left alone.
func prependEdit(body []byte, info *bodyInfo, prepend []byte) (edit, bool) {
	target, isInput := info.messages, false
	if target.start < 0 {
		target, isInput = info.input, true
	}
	if target.start < 0 {
		return edit{}, false
	}
	switch body[target.start] {
	case '[':
		// Insert right after '['; add a comma unless the array is empty.
		at := span{target.start + 1, target.start + 1}
		if j := skipSpace(body, at.start); j < len(body) && body[j] == ']' {
			return edit{at: at, parts: [][]byte{prepend}}, true
		}
		return edit{at: at, parts: [][]byte{prepend, comma}}, true
	case '"':
		if isInput {
			return edit{at: target, parts: [][]byte{openArr, prepend, userOpen, body[target.start:target.end], closeObjArr}}, true
		}
	}
	return edit{}, false
}
