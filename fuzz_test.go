package gwtransport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzRewriteModel: locating and replacing the top-level "model", with and
// without prepended model messages. Invariants: no panic; every valid JSON
// object is scanned without error; the model the scanner reports is the
// one encoding/json decodes (the last duplicate wins in both); the output
// is valid JSON exactly when the input is (the scanner checks the top level
// only, so an input malformed deeper stays malformed); and, decoded, the
// output equals the input except "model" (and the prepended messages); every
// top-level member named "model" in any case ("Model", "MODEL", which Go's
// encoding/json matches case-insensitively) is rewritten too, while only
// the exact "model" is reported; a case-insensitive decoder sees the new
// model.
func FuzzRewriteModel(f *testing.F) {
	for _, s := range []string{
		`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":"say \"model\":\"x\""}],"model":"gateway","stream":true}`,
		`{"model":"x","model":"gateway"}`,
		`{"mod\u0065l":"gate\u0077ay","input":"hi"}`,
		`{"metadata":{"model":"gateway"},"model":{"n":1}}`,
		`{"model":"gateway" /* comment */}`,
		"{\"model\":\"gate\xffway\",\"messages\":[]}",
		` { "model" : "gateway" , "input" : [ ] } `,
		`{"model":"gateway","messages":[1,2}`,
		`[]`, ``, `{}`, `{"model":null}`,
		`{"model":"gateway","Model":"other-model","messages":[]}`,
		`{"MODEL":{"a":[1]},"model":"gateway","mOdEl":null}`,
		`{"MOD\u0045L":"x","model":"gateway","Models":"y","Mode":"z"}`,
		`{"Model":"gateway","input":"hi"}`,
		`{"model":"gateway","Model":tru}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	prepend, err := encodeMessages("p/m", []Message{{Role: "system", Content: "S \"q\" \u2603"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, withMessages bool) {
		var info bodyInfo
		scanErr := scanBody(in, &info)
		valid := json.Valid(in)
		var want map[string]any
		isObject := valid && json.Unmarshal(in, &want) == nil && want != nil
		if isObject && scanErr != nil {
			t.Fatalf("valid object rejected: %v", scanErr)
		}
		if scanErr != nil {
			return
		}
		var pre []byte
		if withMessages {
			pre = prepend
		}
		out := rewriteBody(nil, in, &info, []byte(`"m2"`), pre)
		if !isObject {
			// The scanner checks the top level only; whatever is malformed
			// inside stays malformed, and the provider rejects it.
			if json.Valid(out) {
				t.Fatalf("invalid input became valid:\nin:  %q\nout: %q", in, out)
			}
			return
		}
		if m, ok := want["model"].(string); ok != info.modelIsString || (ok && m != string(info.model)) {
			t.Fatalf("scanner saw model %q (string: %v), encoding/json %#v", info.model, info.modelIsString, want["model"])
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output is not valid JSON: %v\nin:  %q\nout: %q", err, in, out)
		}
		variants := 0
		for k := range want {
			if strings.EqualFold(k, "model") {
				variants++
			}
		}
		if (info.nModels > 0) != (variants > 0) || info.nModels < variants {
			t.Fatalf("scanner found %d model members, the body has %d distinct names: %q", info.nModels, variants, in)
		}
		if info.nModels > 0 {
			for k := range want {
				if strings.EqualFold(k, "model") {
					if got[k] != "m2" {
						t.Fatalf("%q not rewritten: %q", k, out)
					}
					want[k] = "m2"
				}
			}
			var goDecoder struct {
				Model any `json:"model"`
			}
			if err := json.Unmarshal(out, &goDecoder); err != nil || goDecoder.Model != "m2" {
				t.Fatalf("a case-insensitive decoder sees model %#v (%v): %q", goDecoder.Model, err, out)
			}
		}
		if withMessages {
			stripPrepended(t, got, want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("output differs beyond the rewrite:\nin:  %q\nout: %q", in, out)
		}
	})
}

// stripPrepended removes the prepended message from got's messages (or
// input), checking it is there, so the rest can be compared.
func stripPrepended(t *testing.T, got, want map[string]any) {
	t.Helper()
	key := "input"
	if _, ok := want["messages"]; ok {
		key = "messages"
	}
	switch w := want[key].(type) {
	case []any:
		g, ok := got[key].([]any)
		if !ok || len(g) != len(w)+1 {
			t.Fatalf("%s: want one prepended message, got %#v", key, got[key])
		}
		got[key] = g[1:]
	case string:
		if key != "input" {
			return
		}
		g, ok := got[key].([]any)
		if !ok || len(g) != 2 {
			t.Fatalf("input: want [message, user input], got %#v", got[key])
		}
		last, _ := g[1].(map[string]any)
		if last["content"] != w || last["role"] != "user" {
			t.Fatalf("input: the caller's input was not kept: %#v", g[1])
		}
		got[key] = w
	}
}

// FuzzRetryAfter: header parsing never panics, never yields a negative
// wait, and accepts exactly the reference grammar: retry-after-ms is
// OWS 1*DIGIT ["." 1*DIGIT] OWS (below 10^12), else Retry-After is OWS
// 1*DIGIT OWS (at most 10^9 seconds) or an HTTP date. No sign, exponent,
// hex, underscore, Inf or NaN is ever read as a number.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"2", "1.5", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "", "1e308", "NaN", "Inf", "99999999999",
		"0x1p4", "1_000", "+5", " 7 ", "1 0", "0.5", ".5", "5.", "1e3", "\uff15", "Wednesday, 21-Oct-15 07:28:00 GMT", "Wed Oct 21 07:28:00 2015"} {
		f.Add(s, "")
		f.Add("", s)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ra, raMs string) {
		h := http.Header{}
		h.Set("Retry-After", ra)
		h.Set("Retry-After-Ms", raMs)
		d, ok := RetryAfter(h, now)
		if d < 0 {
			t.Fatalf("negative wait %s for %q / %q", d, ra, raMs)
		}
		if !ok && d != 0 {
			t.Fatalf("wait %s without ok", d)
		}
		wantD, wantOK := referenceRetryAfter(ra, raMs, now)
		if d != wantD || ok != wantOK {
			t.Fatalf("RetryAfter(%q, %q) = %s, %v; the reference grammar says %s, %v", ra, raMs, d, ok, wantD, wantOK)
		}
	})
}

var (
	refMillis  = regexp.MustCompile(`^[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*$`)
	refSeconds = regexp.MustCompile(`^[ \t]*([0-9]+)[ \t]*$`)
)

// referenceRetryAfter is the grammar of RetryAfter written independently:
// regular expressions and arbitrary-precision numbers.
func referenceRetryAfter(ra, raMs string, now time.Time) (time.Duration, bool) {
	if m := refMillis.FindStringSubmatch(raMs); m != nil {
		r, _ := new(big.Rat).SetString(m[1])
		if r.Cmp(big.NewRat(1e12, 1)) < 0 {
			ns := new(big.Rat).Mul(r, big.NewRat(int64(time.Millisecond), 1))
			return time.Duration(new(big.Int).Quo(ns.Num(), ns.Denom()).Int64()), true
		}
	}
	if m := refSeconds.FindStringSubmatch(ra); m != nil {
		n, _ := new(big.Int).SetString(m[1], 10)
		if n.Cmp(big.NewInt(1e9)) > 0 {
			return 0, false
		}
		return time.Duration(n.Int64()) * time.Second, true
	}
	v := strings.Trim(ra, " \t")
	if v == "" {
		return 0, false
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// FuzzStream: the stream reader against the reference model of
// completeness (stream_model_test.go). Random SSE bytes, a random "n" and
// operation (chat/completions, responses, unknown, completions: each
// completes by its own markers), random upstream read sizes and random caller buffer sizes go through
// peekFirstEvent, eventFailure and the committed streamBody; the outcome
// must be the model's exactly: failover or commit (and where), the bytes
// the caller reads, and how the reading ends (io.EOF only for a complete
// stream; ErrStreamTruncated, ErrStreamMalformed or a *StreamError
// otherwise). Where the model allows the gateway not to validate a line,
// ErrStreamMalformed at that line is accepted too.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n",
		": keep-alive\n\ndata: {\"x\":1}\n\n",
		"data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
		"event: error\ndata: {\"type\":\"error\",\"code\":\"overloaded\"}\n\n",
		"data: {\"error\":{\"message\":\"boom\"}}\n\n",
		"data: {not json\n\n",
		"data: {\"a\":1}\r\n\r\ndata: {\"b\":",
		"event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n",
		"event: ping\ndata: {}\n\ndata: {\"type\":\"ping\"}\n\ndata:\n\nevent: response.created\ndata: {\"type\":\"response.created\"}\n\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\ndata: {\"type\":\"response.incomplete\"}\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null},{\"index\":1,\"delta\":{},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[{\"index\":1,\"finish_reason\":\"\"}]}\n\n",
		"data: {\"choices\":[{\"index\":1,\"finish_reason\":\"length\"},{\"finish_reason\":\"stop\"}]}\n\ndata: {\"usage\":{}}\n\n",
		"data: {\"x\":1}\n\nevent: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"m\"}}}\n\n",
		"data: {\"x\":1}\n\ndata: {\"type\":\"error\",\"message\":\"late\"}\n\n",
		"data: {\"x\":1}\n\ndata: {\"t\\u0079pe\":\"response.c\\u006fmpleted\"}\n\n",
		"data: {\"x\":1}\n\ndata: {\"" + strings.Repeat("a", 100) + "\":1}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"finish_reason\":\"stop\",]}\n\n",
		"data: [DONE]\n\ndata: {\"error\":\"after done\"}\n\n",
		"data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\ndata: [DONE]\n",
	} {
		f.Add([]byte(s), uint8(0), uint64(1), false)
		f.Add([]byte(s), uint8(2), uint64(7), false)
	}
	// The hostile forms: duplicate keys, array-shaped errors, markers of
	// another operation, choices without "index". n/4 picks the operation
	// (chat/completions, responses, unknown, completions).
	for _, s := range []string{
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"index\":0,\"finish_reason\":null,\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"finish_reason\":\"length\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"finish_reason\":null}],\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"finish_reason\":\"stop\"}],\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"index\":0,\"index\":1,\"finish_reason\":\"stop\"},{\"index\":1,\"index\":1,\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"},{\"finish_reason\":\"stop\"}]}\n\n",
		"data: {\"x\":1}\n\ndata: {\"type\":\"response.output_text.delta\",\"type\":\"response.completed\"}\n\n",
		"data: {\"x\":1}\n\ndata: {\"type\":\"response.completed\",\"type\":\"response.incomplete\"}\n\n",
		"data: {\"x\":1}\n\ndata: {\"type\":\"ping\",\"type\":\"error\"}\n\n",
		"data: {\"x\":1}\n\nevent: response.completed\ndata: {\"x\":2}\n\n",
		"data: {\"x\":1}\n\ndata: {\"type\":\"response.completed\",\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
		"data: [{\"error\":{\"code\":503,\"message\":\"m\",\"status\":\"UNAVAILABLE\"}}]\n\n",
		": x\n\ndata: [{\"a\":1},{\"error\":\"e\"}]\n\n",
		"data: [1,{\"error\":null},[{\"error\":1}]]\n\ndata: [DONE]\n\ndata: [{\"type\":\"error\"}]\n\n",
	} {
		for _, n := range []uint8{1, 2, 5, 9, 13} {
			f.Add([]byte(s), n, uint64(n), false)
		}
	}
	for _, s := range []string{
		"\x02\x00\x03\x00\x07\x00\x01\x00",
		"\x08\x00\x0a\x0b\x00\x0c\x0d\x00\x12\x13\x00",
		"\x0e\x00\x0f\x10\x00",
		"\x02\x00\x03\x00\x04\x00",
		"\x02\x00\x05\x00\x14\x00",
		"\x0e\x00\x18\x00\x1a\x00\x11\x00",
		"\x02\x00\x1c\x1b\x1d\x00",
	} {
		f.Add([]byte(s), uint8(2), uint64(3), true)
	}
	const maxLine = 80
	f.Fuzz(func(t *testing.T, in []byte, n uint8, seed uint64, grammar bool) {
		if grammar {
			in = grammarStream(in, seed)
		}
		op := [...]string{"chat/completions", "responses", "", "completions"}[n/4%4]
		want := refStream(in, int(n%4), op, maxLine, maxFirstEvent)
		up := newUpstream(io.NopCloser(&chunkReader{in: in, seed: seed}))
		br := bufio.NewReaderSize(up, 16)
		prefix, ev, err := peekFirstEvent(br, op)
		if err == nil {
			if _, bad := eventFailure(ev); bad {
				err = errors.New("failure event")
			}
		}
		if err != nil {
			if !want.failover {
				t.Fatalf("failed over (%v); the model commits after %d bytes\n%q", err, want.prefix, in)
			}
			return
		}
		if want.failover {
			t.Fatalf("committed after %d bytes; the model fails over\n%q", len(prefix), in)
		}
		if !bytes.Equal(prefix, in[:want.prefix]) {
			t.Fatalf("committed after %d bytes; the model after %d\n%q", len(prefix), want.prefix, in)
		}
		_, cancel := context.WithCancel(context.Background())
		sb := newStreamBody(prefix, br, up, cancel, 0, 0, int(n%4), op)
		sb.maxLine = maxLine
		defer sb.Close()
		var out []byte
		sizes := seed
		for {
			sizes = sizes*2862933555777941757 + 3037000493
			buf := make([]byte, 1+int(sizes>>40)%40)
			m, err := sb.Read(buf)
			out = append(out, buf[:m]...)
			if err == nil {
				continue
			}
			var got string
			var se *StreamError
			switch {
			case err == io.EOF:
				got = "eof"
			case errors.As(err, &se):
				got = "failed"
				if !errors.Is(err, ErrStreamFailed) {
					t.Fatalf("a StreamError that is not ErrStreamFailed: %v", err)
				}
			case errors.Is(err, ErrStreamMalformed):
				got = "malformed"
			case errors.Is(err, ErrStreamTruncated):
				got = "truncated"
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if !bytes.Equal(out, in[:len(out)]) {
				t.Fatalf("stream altered: %q -> %q", in, out)
			}
			if got == want.end && len(out) == want.delivered {
				return
			}
			if got == "malformed" && slices.Contains(want.malformedAt, len(out)) {
				return
			}
			t.Fatalf("read %d bytes, then %s (%v); the model: %d bytes, then %s (or malformed after %v)\n%q",
				len(out), got, err, want.delivered, want.end, want.malformedAt, in)
		}
	})
}

// streamLines is the vocabulary of FuzzStream's grammar mode: the lines
// that matter to completeness, errors and the commit point.
var streamLines = []string{
	"\n",
	"data: [DONE]\n",
	`data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}` + "\n",
	`data: {"choices":[{"index":0,"finish_reason":"stop"}]}` + "\n",
	`data: {"choices":[{"index":1,"finish_reason":"length"}]}` + "\n",
	`data: {"choices":[{"index":0,"finish_reason":""}]}` + "\n",
	`data: {"choices":[{"finish_reason":"stop"},{"finish_reason":"stop"}]}` + "\n",
	`data: {"choices":[],"usage":{"total_tokens":3}}` + "\n",
	": keep-alive\n",
	"data:\n",
	"event: ping\n",
	`data: {"type":"ping"}` + "\n",
	"event: response.created\n",
	`data: {"type":"response.in_progress"}` + "\n",
	`data: {"type":"response.output_text.delta","delta":"x"}` + "\n",
	"event: response.completed\n",
	`data: {"type":"response.completed","response":{}}` + "\n",
	`data: {"type":"response.incomplete"}` + "\n",
	"event: error\n",
	`data: {"type":"error","message":"m"}` + "\n",
	`data: {"error":{"message":"m","code":"c"}}` + "\n",
	`data: {"error":null,"x":1}` + "\n",
	"event: response.failed\n",
	`data: {"type":"response.failed","response":{"error":{"code":"x"}}}` + "\n",
	"data: {not json}\n",
	"data: garbage\n",
	`data: {"x":"` + strings.Repeat("a", 100) + `"}` + "\n",
	"\r\n",
	`data: {"choices":[{"index":0,"finish_reason":"stop"}],"type":"response.completed"}` + "\r\n",
	`data: {"t\u0079pe":"error"}` + "\n",
	"id: 1\n",
	"event: message\n",
	`data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n",
	`data: {"choices":[{"delta":{"role":"assistant","content":null,"tool_calls":[]}},{"index":1,"delta":{"Role":"assistant"}}]}` + "\n",
	`data: {"choices":[{"index":0,"delta":{"role":"assistant"}}],"Choices":[{"delta":{"content":"x"}}]}` + "\n",
	`data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":"stop"}]}` + "\n",
	`data: {"choices":[],"usage":{"total_tokens":1},"x":{"choices":[]}}` + "\n",
	" data: {\"choices\":[]}\n",
	"\u00a0event: ping\n",
	"data: \u00a0{\"choices\":[]}\n",
	"data: {\"choices\":[]}\t \f\n",
}

// grammarStream turns each byte of ops into a line of streamLines, and
// cuts up to 3 bytes off the end.
func grammarStream(ops []byte, seed uint64) []byte {
	var out []byte
	for _, op := range ops {
		out = append(out, streamLines[int(op)%len(streamLines)]...)
	}
	cut := int(seed>>62) % 4
	if cut > len(out) {
		cut = len(out)
	}
	return out[:len(out)-cut]
}
