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
// output equals the input except "model" (and the prepended messages).
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
		if info.nModels > 0 {
			if got["model"] != "m2" {
				t.Fatalf("model not rewritten: %q", out)
			}
			want["model"] = "m2"
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

// FuzzStream: the first-event peek and the committed stream never panic;
// a stream read to its end ends in io.EOF only when it was complete
// ([DONE] or a finish reason), else in one of the gateway's stream errors.
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		prefix, ev, err := peekFirstEvent(br)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(in, prefix) {
			t.Fatalf("peek changed the bytes")
		}
		if _, bad := eventFailure(ev); bad {
			return
		}
		_, cancel := context.WithCancel(context.Background())
		sb := newStreamBody(prefix, br, io.NopCloser(nil), cancel, 0, 0)
		out, err := io.ReadAll(sb)
		sb.Close()
		switch {
		case err == nil:
			if !sb.finished.Load() {
				t.Fatalf("clean end of an unfinished stream: %q", in)
			}
			if !bytes.HasPrefix(in, out) {
				t.Fatalf("stream altered: %q -> %q", in, out)
			}
		case errors.Is(err, ErrStreamTruncated), errors.Is(err, ErrStreamMalformed):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
