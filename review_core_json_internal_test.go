package gwtransport

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// reviewCoreGenJSON writes a random JSON value (sometimes slightly wrong
// when bad is set) of at most depth levels.
func reviewCoreGenJSON(rng *rand.Rand, b *bytes.Buffer, depth int) {
	ws := func() {
		for rng.IntN(4) == 0 {
			b.WriteByte(" \t\r\n"[rng.IntN(4)])
		}
	}
	ws()
	k := rng.IntN(9)
	if depth <= 0 && k < 2 {
		k = 2 + rng.IntN(7)
	}
	switch k {
	case 0:
		b.WriteByte('{')
		n := rng.IntN(4)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			ws()
			reviewCoreGenString(rng, b)
			ws()
			b.WriteByte(':')
			reviewCoreGenJSON(rng, b, depth-1)
		}
		ws()
		b.WriteByte('}')
	case 1:
		b.WriteByte('[')
		n := rng.IntN(4)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			reviewCoreGenJSON(rng, b, depth-1)
		}
		ws()
		b.WriteByte(']')
	case 2, 3:
		reviewCoreGenString(rng, b)
	case 4, 5:
		nums := []string{"0", "-0", "1", "-12", "0.5", "1e5", "1E+5", "-1.25e-10", "123456789012345678901234567890", "0e0", "1.0E-0"}
		b.WriteString(nums[rng.IntN(len(nums))])
	case 6:
		b.WriteString("true")
	case 7:
		b.WriteString("false")
	default:
		b.WriteString("null")
	}
	ws()
}

func reviewCoreGenString(rng *rand.Rand, b *bytes.Buffer) {
	b.WriteByte('"')
	n := rng.IntN(40)
	for i := 0; i < n; i++ {
		switch rng.IntN(12) {
		case 0:
			b.WriteString(`\"`)
		case 1:
			b.WriteString(`\\`)
		case 2:
			b.WriteString([]string{`\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00e9`, `\uD83D\uDE00`, `\uDEAD`}[rng.IntN(9)])
		case 3:
			b.WriteByte(byte(0x80 + rng.IntN(128))) // invalid UTF-8 alone
		case 4:
			b.WriteString("é€😀")
		default:
			b.WriteByte(byte(0x20 + rng.IntN(0x5f)))
			if b.Bytes()[b.Len()-1] == '"' || b.Bytes()[b.Len()-1] == '\\' {
				b.Truncate(b.Len() - 1)
				b.WriteByte('x')
			}
		}
	}
	b.WriteByte('"')
}

// TestReviewCoreValidJSONGenerated holds validJSON to json.Valid on random
// well-formed documents and on every one-byte mutation, deletion,
// insertion and cut of them.
func TestReviewCoreValidJSONGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 78))
	special := []byte("{}[]:,\"\\ \t\n\r0123456789-+.eEtrufalsn\x00\x01\x1f\x7f\x80\xff/u")
	check := func(v []byte) {
		t.Helper()
		if got, want := validJSON(v), json.Valid(v); got != want {
			t.Fatalf("%q: validJSON %v, json.Valid %v", v, got, want)
		}
	}
	for n := 0; n < 4000; n++ {
		var b bytes.Buffer
		reviewCoreGenJSON(rng, &b, 1+rng.IntN(5))
		doc := b.Bytes()
		if !json.Valid(doc) {
			t.Fatalf("generator wrote invalid JSON %q", doc)
		}
		check(doc)
		for cut := 0; cut <= len(doc); cut++ {
			check(doc[:cut])
		}
		for m := 0; m < 60 && len(doc) > 0; m++ {
			i := rng.IntN(len(doc))
			c := special[rng.IntN(len(special))]
			mut := append([]byte(nil), doc...)
			switch rng.IntN(3) {
			case 0:
				mut[i] = c
			case 1:
				mut = append(mut[:i], mut[i+1:]...)
			default:
				mut = append(mut[:i], append([]byte{c}, mut[i:]...)...)
			}
			check(mut)
		}
	}
}

// TestReviewCoreValidJSONDepthBoundary: nesting at encoding/json's limit
// and one past it, arrays, objects and both mixed, closed and not.
func TestReviewCoreValidJSONDepthBoundary(t *testing.T) {
	for _, depth := range []int{9998, 9999, 10000, 10001, 10002} {
		for _, shape := range []string{"array", "object", "mixed"} {
			var open, close strings.Builder
			for i := 0; i < depth; i++ {
				obj := shape == "object" || shape == "mixed" && i%2 == 1
				if obj {
					open.WriteString(`{"k":`)
				} else {
					open.WriteString(`[`)
				}
			}
			for i := depth - 1; i >= 0; i-- {
				obj := shape == "object" || shape == "mixed" && i%2 == 1
				if obj {
					close.WriteString(`}`)
				} else {
					close.WriteString(`]`)
				}
			}
			for _, inner := range []string{"1", "[]", "{}", `""`} {
				doc := []byte(open.String() + inner + close.String())
				if got, want := validJSON(doc), json.Valid(doc); got != want {
					t.Errorf("depth %d %s inner %s: validJSON %v, json.Valid %v", depth, shape, inner, got, want)
				}
			}
		}
	}
}
