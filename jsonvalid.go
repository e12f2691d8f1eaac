package gwtransport

import "encoding/binary"

// validJSON reports whether v is one valid JSON value, white space around
// it allowed: exactly what encoding/json's Valid reports (the same grammar,
// the same nesting limit, no check of UTF-8 inside strings), several
// times faster. Every data line of a stream and every verified body goes
// through it, so its cost is paid per event (FuzzValidJSON holds it to
// json.Valid).
func validJSON(v []byte) bool {
	var small [32]byte
	stack := small[:0] // the open containers: '{' or '['
	i := skipJSONSpace(v, 0)
	for {
		// A value starts at i.
		if i >= len(v) {
			return false
		}
		switch c := v[i]; c {
		case '{':
			if stack = append(stack, '{'); len(stack) > maxJSONDepth {
				return false
			}
			if i = skipJSONSpace(v, i+1); i < len(v) && v[i] == '}' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if i = jvKey(v, i); i < 0 {
				return false
			}
			continue
		case '[':
			if stack = append(stack, '['); len(stack) > maxJSONDepth {
				return false
			}
			if i = skipJSONSpace(v, i+1); i < len(v) && v[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			continue
		case '"':
			if i = jsonString(v, i+1); i < 0 {
				return false
			}
		case 't':
			if i = jsonLiteral(v, i, "true"); i < 0 {
				return false
			}
		case 'f':
			if i = jsonLiteral(v, i, "false"); i < 0 {
				return false
			}
		case 'n':
			if i = jsonLiteral(v, i, "null"); i < 0 {
				return false
			}
		default:
			if i = jsonNumber(v, i); i < 0 {
				return false
			}
		}
		// A value ended at i: close containers, or go on to the next value.
		for {
			i = skipJSONSpace(v, i)
			if len(stack) == 0 {
				return i == len(v)
			}
			if i >= len(v) {
				return false
			}
			top := stack[len(stack)-1]
			if c := v[i]; c == ',' {
				i = skipJSONSpace(v, i+1)
				if top == '{' {
					if i = jvKey(v, i); i < 0 {
						return false
					}
				}
				break
			} else if c == '}' && top == '{' || c == ']' && top == '[' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return false
		}
	}
}

// maxJSONDepth is encoding/json's nesting limit: a deeper value is not
// valid.
const maxJSONDepth = 10000

// skipJSONSpace skips JSON white space from i.
func skipJSONSpace(v []byte, i int) int {
	for i < len(v) {
		switch v[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jvKey reads `"key" :` and the space after, from i; -1 when there is
// none.
func jvKey(v []byte, i int) int {
	if i >= len(v) || v[i] != '"' {
		return -1
	}
	if i = jsonString(v, i+1); i < 0 {
		return -1
	}
	if i = skipJSONSpace(v, i); i >= len(v) || v[i] != ':' {
		return -1
	}
	return skipJSONSpace(v, i+1)
}

// jsonPlain marks the bytes a string holds as they are: not '"', not '\\',
// not a control character.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// jsonString reads the rest of a string whose opening quote is before i;
// it returns the index after the closing quote, or -1.
func jsonString(v []byte, i int) int {
	for {
		// Eight bytes at a time while none is '"', '\\' or a control
		// character (each test exact: no byte passes that should not).
		for i+8 <= len(v) {
			x := binary.LittleEndian.Uint64(v[i:])
			if (x-lo8*0x20)&^x&hi8|(x^lo8*'"'-lo8)&^(x^lo8*'"')&hi8|(x^lo8*'\\'-lo8)&^(x^lo8*'\\')&hi8 != 0 {
				break
			}
			i += 8
		}
		for i < len(v) && jsonPlain[v[i]] {
			i++
		}
		if i >= len(v) {
			return -1
		}
		switch v[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(v) {
				return -1
			}
			switch v[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(v) || !jvHex(v[i+2]) || !jvHex(v[i+3]) || !jvHex(v[i+4]) || !jvHex(v[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
}

// Bytes repeated over a word: x-lo8*n &^ x & hi8 is not 0 exactly when a
// byte of x is below n (n at most 0x80), and x^(lo8*c) has a zero byte
// exactly where x has c.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

func jvHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// jsonLiteral reads lit at i; it returns the index after it, or -1.
func jsonLiteral(v []byte, i int, lit string) int {
	if len(v)-i < len(lit) || string(v[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// jsonNumber reads a number at i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?;
// it returns the index after it, or -1.
func jsonNumber(v []byte, i int) int {
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i >= len(v):
		return -1
	case v[i] == '0':
		i++
	case '1' <= v[i] && v[i] <= '9':
		i = jvDigits(v, i+1)
	default:
		return -1
	}
	if i < len(v) && v[i] == '.' {
		j := jvDigits(v, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		j := jvDigits(v, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// jvDigits skips decimal digits from i.
func jvDigits(v []byte, i int) int {
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	return i
}
