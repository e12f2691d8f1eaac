package gwtransport

// A reference model of the stream completeness definition (see stream.go),
// written independently of the implementation: it reads JSON with
// encoding/json's tokenizer instead of the gateway's byte scanner, and
// takes the whole input at once instead of reads of arbitrary sizes.
// FuzzStream compares the two.

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"unicode"
)

// modelOutcome is what the model expects of a stream.
type modelOutcome struct {
	// failover: the attempt fails before the commit.
	failover bool
	// prefix: the bytes read before the commit.
	prefix int
	// delivered: the bytes the caller reads; end: how the reading ends
	// ("eof", "truncated", "malformed", "failed").
	delivered int
	end       string
	// malformedAt: other acceptable ends, as ErrStreamMalformed after
	// that many bytes: lines that look like JSON by their first and last
	// bytes but are not valid, which the gateway need not validate.
	malformedAt []int
}

// refEffects is the model's reading of one data line that is valid JSON.
type refEffects struct {
	failed, terminal bool
	typ              *string
	finished         []int
}

var digits = regexp.MustCompile(`^[0-9]{1,9}$`)

// members returns every top-level member of a JSON object, duplicates
// included, in order; ok is false when v is not an object.
func members(v []byte) (names []string, vals []json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(v))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, false
		}
		names = append(names, k.(string))
		vals = append(vals, raw)
	}
	return names, vals, true
}

// jsonKey names the key the definition reads ("error", "type",
// "choices", "index", "finish_reason") that encoding/json itself decodes
// a member named name into, or ""; exact reports whether name is that key
// spelled exactly (as openai-go matches it).
func jsonKey(name string) (key string, exact bool) {
	q, err := json.Marshal(name)
	if err != nil {
		return "", false
	}
	var probe struct {
		Error   json.RawMessage `json:"error"`
		Type    json.RawMessage `json:"type"`
		Choices json.RawMessage `json:"choices"`
		Index   json.RawMessage `json:"index"`
		Finish  json.RawMessage `json:"finish_reason"`
	}
	if json.Unmarshal([]byte("{"+string(q)+":1}"), &probe) != nil {
		return "", false
	}
	switch {
	case probe.Error != nil:
		key = "error"
	case probe.Type != nil:
		key = "type"
	case probe.Choices != nil:
		key = "choices"
	case probe.Index != nil:
		key = "index"
	case probe.Finish != nil:
		key = "finish_reason"
	}
	return key, key != "" && name == key
}

// refLine reads one data line the way the completeness definition does,
// a member being an occurrence of a key when encoding/json decodes it
// into that key: an error under any reading of duplicate or case-variant
// keys, a finish or a terminal type only when every occurrence says so
// and one is spelled exactly; an array is an error when one of its object
// elements is.
func refLine(v []byte, n int) refEffects { return refLineAt(v, n, true) }

// refLineAt is refLine; top is false for an array's element, whose null
// "error" is no error.
func refLineAt(v []byte, n int, top bool) refEffects {
	var e refEffects
	var arr []json.RawMessage
	if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '[' {
		if json.Unmarshal(t, &arr) == nil {
			for _, el := range arr {
				if el[0] == '{' && refLineAt(el, 0, false).failed {
					e.failed = true
				}
			}
		}
		return e
	}
	names, vals, ok := members(v)
	if !ok {
		return e
	}
	var choices []json.RawMessage
	var types []*string
	exactType, exactChoices := false, false
	for i, name := range names {
		k, exact := jsonKey(name)
		switch k {
		case "error":
			if top || string(vals[i]) != "null" {
				e.failed = true // at the top level null too, as the SDKs read it
			}
		case "type":
			var t *string
			var s string
			if json.Unmarshal(vals[i], &s) == nil && vals[i][0] == '"' {
				t = &s
				if s == "error" || s == "response.failed" {
					e.failed = true
				}
			}
			types = append(types, t)
			exactType = exactType || exact
		case "choices":
			choices = append(choices, vals[i])
			exactChoices = exactChoices || exact
		}
	}
	terminal := func(t *string) bool {
		return t != nil && (*t == "response.completed" || *t == "response.incomplete")
	}
	if len(types) > 0 {
		e.typ = types[len(types)-1]
		e.terminal = exactType
		for _, t := range types {
			e.terminal = e.terminal && terminal(t)
		}
	}
	for _, c := range choices {
		if !bytes.Equal(c, choices[0]) {
			return e // the decoders read different choices
		}
	}
	if !exactChoices || choices[0][0] != '[' || json.Unmarshal(choices[0], &arr) != nil {
		return e
	}
	for _, el := range arr {
		names, vals, ok := members(el)
		if !ok {
			continue
		}
		var idxs []json.RawMessage
		var finish []string
		exactIdx, exactFinish := false, false
		for i, name := range names {
			switch k, exact := jsonKey(name); k {
			case "index":
				idxs = append(idxs, vals[i])
				exactIdx = exactIdx || exact
			case "finish_reason":
				var s string
				if vals[i][0] != '"' || json.Unmarshal(vals[i], &s) != nil {
					s = ""
				}
				finish = append(finish, s)
				exactFinish = exactFinish || exact
			}
		}
		// A choice without "index" is choice 0; with any, every one must
		// be the same non-negative integer, and one spelled exactly.
		idx, idxOK := 0, true
		if len(idxs) > 0 {
			idxOK = exactIdx
			for j, raw := range idxs {
				if !digits.Match(raw) {
					idxOK = false
					break
				}
				v := 0
				for _, c := range raw {
					v = v*10 + int(c-'0')
				}
				if j == 0 {
					idx = v
				} else if v != idx {
					idxOK = false
				}
			}
		}
		finishOK := exactFinish
		for _, f := range finish {
			finishOK = finishOK && f != ""
		}
		if idxOK && idx < n && finishOK {
			e.finished = append(e.finished, idx)
		}
	}
	return e
}

func refPlausible(v []byte) bool {
	switch {
	case len(v) == 0:
		return false
	case v[0] == '{':
		return v[len(v)-1] == '}'
	case v[0] == '[':
		return v[len(v)-1] == ']'
	case v[0] == '"':
		return len(v) > 1 && v[len(v)-1] == '"'
	}
	return json.Valid(v)
}

// refRoleOnly is the model of a role-only chat chunk: an object with a
// "choices" member; every member whose name folds (strings.EqualFold) to
// "choices" an array of objects whose every member folding to "index" is
// a digit string, to "finish_reason" null, to "delta" an object whose
// members are "role" with a string or null, or null, "" or []; every other
// member of a choice null, "", [] or {}; every "usage" null; no "error" or
// "type".
func refRoleOnly(v []byte) bool {
	empty := func(raw json.RawMessage, obj bool) bool {
		var x any
		if json.Unmarshal(raw, &x) != nil {
			return false
		}
		switch x := x.(type) {
		case nil:
			return true
		case string:
			return x == ""
		case []any:
			return len(x) == 0
		case map[string]any:
			return obj && len(x) == 0 && bytes.HasPrefix(raw, []byte("{"))
		}
		return false
	}
	names, vals, ok := members(v)
	if !ok {
		return false
	}
	hasChoices := false
	for i, name := range names {
		switch {
		case strings.EqualFold(name, "choices"):
			hasChoices = true
			var els []json.RawMessage
			if json.Unmarshal(vals[i], &els) != nil || !bytes.HasPrefix(vals[i], []byte("[")) {
				return false
			}
			for _, el := range els {
				cn, cv, ok := members(el)
				if !ok {
					return false
				}
				for j, c := range cn {
					switch {
					case strings.EqualFold(c, "index"):
						if !digits.Match(cv[j]) {
							return false
						}
					case strings.EqualFold(c, "finish_reason"):
						if string(cv[j]) != "null" {
							return false
						}
					case strings.EqualFold(c, "delta"):
						dn, dv, ok := members(cv[j])
						if !ok {
							return false
						}
						for k, d := range dn {
							role := strings.EqualFold(d, "role") && (dv[k][0] == '"' || string(dv[k]) == "null")
							if !role && !empty(dv[k], false) {
								return false
							}
						}
					default:
						if !empty(cv[j], true) {
							return false
						}
					}
				}
			}
		case strings.EqualFold(name, "usage"):
			if string(vals[i]) != "null" {
				return false
			}
		case strings.EqualFold(name, "error"), strings.EqualFold(name, "type"):
			return false
		}
	}
	return hasChoices
}

func isQuiet(s string) bool {
	return s == "ping" || s == "response.created" || s == "response.queued" || s == "response.in_progress"
}

func isErrorName(s string) bool { return s == "error" || s == "response.failed" }

// refLines splits in into lines, each with its end of line; the last may
// be partial.
func refLines(in []byte) [][]byte {
	var out [][]byte
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			out = append(out, in)
			break
		}
		out = append(out, in[:i+1])
		in = in[i+1:]
	}
	return out
}

// field reads a line: a "data" or "event" field and its value, ok for a
// blank line; "spaced" for white space (any Unicode space, as go-openai's
// bytes.TrimSpace) before "data:" or "event:".
func field(l []byte) (name string, value []byte, ok bool) {
	l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
	if t := bytes.TrimLeftFunc(l, unicode.IsSpace); len(t) < len(l) &&
		(bytes.HasPrefix(t, []byte("data:")) || bytes.HasPrefix(t, []byte("event:"))) {
		return "spaced", nil, false
	}
	for _, f := range []string{"data", "event"} {
		if bytes.HasPrefix(l, []byte(f+":")) {
			v := l[len(f)+1:]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			return f, v, true
		}
	}
	return "", nil, len(l) == 0
}

// refStream is the model: the outcome of a provider stream in for a request
// of operation op asking for n choices, with maxLine bounding the lines
// after the commit. Chat and completions streams complete by [DONE] or
// their choices, Responses streams by [DONE] or a terminal data "type"
// (never by an event: line), others by any of them; an event named
// "thread.*" completes nothing.
func refStream(in []byte, n int, op string, maxLine, maxFirst int) modelOutcome {
	if n <= 0 {
		n = 1
	}
	choicesComplete := op != "responses"
	terminalCompletes := op != "chat/completions" && op != "completions"
	lines := refLines(in)
	var out modelOutcome

	// Before the commit: events until the first that is content.
	pos, k := 0, 0
	commit := false
	type event struct {
		name                             string
		hasData, malformed, failed, loud bool
		lines                            int  // data lines not empty
		role                             bool // a role-only chat chunk
	}
	ev := event{}
	for ; k < len(lines); k++ {
		line := lines[k]
		pos += len(line)
		if line[len(line)-1] != '\n' || pos > maxFirst {
			break
		}
		f, v, ok := field(line)
		switch {
		case ok && f == "":
			// A blank line ends the event.
			if ev.malformed || ev.failed || isErrorName(ev.name) {
				out.failover = true
				return out
			}
			quiet := !ev.hasData || (ev.name != "" && isQuiet(ev.name)) || (ev.name == "" && !ev.loud && !(ev.role && ev.lines > 1))
			if !quiet {
				commit = true
			}
			ev = event{}
		case f == "spaced":
			ev.malformed = true
		case f == "data":
			v = bytes.Trim(v, " \t\r\n")
			ev.hasData = true
			if len(v) > 0 {
				ev.lines++
			}
			switch {
			case len(v) == 0:
			case string(v) == "[DONE]":
				ev.loud = true
			case !json.Valid(v):
				ev.malformed = true
			default:
				e := refLine(v, 0)
				if e.failed {
					ev.failed = true
				}
				switch {
				case e.typ != nil && isQuiet(*e.typ):
				case op == "chat/completions" && !e.failed && refRoleOnly(v):
					ev.role = true
				default:
					ev.loud = true
				}
			}
		case f == "event":
			ev.name = string(v)
		}
		if commit {
			break
		}
	}
	if !commit {
		out.failover = true
		return out
	}
	out.prefix = pos
	k++

	// After the commit. The prefix counts for completeness too.
	finished := map[int]bool{}
	complete := false
	pendDone := false
	pend := []int{}
	inFail := false
	evName := "" // the event being read: its last event: line
	delivered := 0
	step := func(line []byte, committed bool) (deliver bool, end string) {
		f, v, blank := field(line)
		if inFail {
			if blank && f == "" {
				return false, "failed"
			}
			return false, ""
		}
		switch {
		case blank && f == "":
			if strings.HasPrefix(evName, "thread.") {
				// openai-go reads such an event as {"event","data"}.
				pend, pendDone = pend[:0], false
			}
			evName = ""
			for _, i := range pend {
				finished[i] = true
			}
			pend = pend[:0]
			if choicesComplete && len(finished) >= n {
				pendDone = true
			}
			if pendDone {
				complete = true
			}
			pendDone = false
		case f == "spaced":
			return false, "malformed"
		case f == "data":
			v = bytes.Trim(v, " \t\r\n")
			switch {
			case len(v) == 0:
			case string(v) == "[DONE]":
				pendDone = true
			case !refPlausible(v):
				return false, "malformed"
			case !json.Valid(v):
				if committed {
					out.malformedAt = append(out.malformedAt, delivered)
				}
			default:
				e := refLine(v, n)
				if e.failed {
					return false, "failed"
				}
				if e.terminal && terminalCompletes {
					pendDone = true
				}
				pend = append(pend, e.finished...)
			}
		case f == "event":
			evName = string(v)
			if isErrorName(string(v)) {
				inFail = true
				return false, ""
			}
		}
		return true, ""
	}
	for _, line := range lines[:k] {
		step(line, false)
	}
	delivered = pos
	for ; k < len(lines); k++ {
		line := lines[k]
		if len(line) > maxLine {
			out.delivered, out.end = delivered, "malformed"
			return out
		}
		if line[len(line)-1] != '\n' {
			break
		}
		deliver, end := step(line, true)
		if end != "" {
			out.delivered, out.end = delivered, end
			return out
		}
		if deliver {
			delivered += len(line)
		}
	}
	out.delivered = delivered
	switch {
	case inFail:
		out.end = "failed"
	case complete:
		out.end = "eof"
	default:
		out.end = "truncated"
	}
	return out
}

// chunkReader returns its input in reads of pseudo-random sizes.
type chunkReader struct {
	in   []byte
	seed uint64
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	c.seed = c.seed*6364136223846793005 + 1442695040888963407
	n := 1 + int(c.seed>>33)%64
	if n > len(p) {
		n = len(p)
	}
	if n > len(c.in) {
		n = len(c.in)
	}
	copy(p, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}
