package gwtransport

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// jsonValidCases are JSON texts at every edge of the grammar, valid and
// not.
var jsonValidCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, "\t\r\n[]\n", `{`, `}`, `[`, `]`, `[}`, `{]`, `{}}`, `[]]`, `{}{}`, `[] []`,
	`0`, `-0`, `01`, `-01`, `1.`, `.1`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-`, `--1`, `+1`, `1.5e3`, `0.0e0`,
	`123456789012345678901234567890`, `1.2.3`, `0x10`, `1_000`, `-.5`, `1e5.5`, `NaN`, `Infinity`,
	`true`, `false`, `null`, `tru`, `nul`, `falsey`, `True`, `nulll`, `[true,false,null]`, `[true false]`,
	`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u12"`, `"\x"`, `"\'"`,
	"\"\x00\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"é\"", `"unterminated`, `"a\"`, `"\`, `"\u`,
	`{"a":1}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":1,"b":[1,2,{"c":null}]}`,
	`[1,]`, `[,1]`, `[1,,2]`, `[[[]]]`, `[[[]]`, `{"a":{"b":{}}}`, `{"a":[}`, `{"":""}`, `{"a":1}x`, `[1]x`,
	` { "a" : [ 1 , 2 ] , "b" : "c" } `, `{"a":"b",,"c":1}`, `{"a"::1}`, `[1:2]`, `{"a",1}`,
	`data: {}`, `{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
	strings.Repeat("[", 40) + strings.Repeat("]", 39),
}

// TestValidJSONTable holds validJSON to encoding/json's Valid at every
// edge of the grammar.
func TestValidJSONTable(t *testing.T) {
	for _, c := range jsonValidCases {
		assert.Equal(t, json.Valid([]byte(c)), validJSON([]byte(c)), "%.80q", c)
	}
}

// TestValidJSONMutations mutates valid documents byte by byte (every
// byte replaced by each byte that matters to the grammar, deleted,
// doubled) and holds validJSON to json.Valid on every result.
func TestValidJSONMutations(t *testing.T) {
	docs := []string{
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a\"b\\c\u00e9"},"finish_reason":null}],"n":-1.5e-3,"t":true,"f":false,"z":null}`,
		`[0,-0,1.25,3e10,"",{},[],{"a":[{"b":"c"}]}]`,
	}
	alphabet := []byte("{}[]:,\"\\/ \t\r\n0123456789-+.eEtrufalsn\x00\x1f\x7fu")
	for _, d := range docs {
		require := []byte(d)
		for i := range require {
			for _, c := range alphabet {
				m := append([]byte(nil), require...)
				m[i] = c
				assert.Equal(t, json.Valid(m), validJSON(m), "%q", m)
			}
			del := append(append([]byte(nil), require[:i]...), require[i+1:]...)
			assert.Equal(t, json.Valid(del), validJSON(del), "%q", del)
			dup := append(append([]byte(nil), require[:i+1]...), require[i:]...)
			assert.Equal(t, json.Valid(dup), validJSON(dup), "%q", dup)
		}
	}
}

// TestValidJSONRandom: random byte strings over the grammar's alphabet.
func TestValidJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	alphabet := []byte("{}[]:,\"\\ 0123456789-.eEtrufalsn\u00e9x")
	valid := 0
	for n := 0; n < 200000; n++ {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if n%2 == 1 {
			// A string of 0 to 40 bytes, mostly plain, some bytes any
			// byte at all: every position within a word is tried.
			s := make([]byte, rng.IntN(41))
			for i := range s {
				s[i] = 'a'
				if rng.IntN(8) == 0 {
					s[i] = byte(rng.IntN(256))
				}
			}
			b = append(append(append(b[:0], '"'), s...), '"')
		}
		want := json.Valid(b)
		if want {
			valid++
		}
		if got := validJSON(b); got != want {
			t.Fatalf("%q: validJSON %v, json.Valid %v", b, got, want)
		}
	}
	assert.Greater(t, valid, 1000, "the random texts must include valid ones")
}

// FuzzValidJSON holds validJSON to json.Valid on any input.
func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonValidCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("%q: validJSON %v, json.Valid %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON: a stream event, against json.Valid.
func BenchmarkValidJSON(b *testing.B) {
	ev := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there, this is a token or two"},"finish_reason":null}]}`)
	for _, impl := range []string{"encoding-json", "gwtransport"} {
		b.Run("impl="+impl, func(b *testing.B) {
			b.SetBytes(int64(len(ev)))
			for i := 0; i < b.N; i++ {
				if impl == "gwtransport" {
					_ = validJSON(ev)
				} else {
					_ = json.Valid(ev)
				}
			}
		})
	}
}
