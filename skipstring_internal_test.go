package gwtransport

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skipStringRef is the plain reading of a JSON string's end: the first
// quote not escaped, found byte by byte.
func skipStringRef(p []byte, i int) (int, error) {
	for j := i + 1; j < len(p); j++ {
		switch p[j] {
		case '"':
			return j + 1, nil
		case '\\':
			j++
		}
	}
	return 0, errors.New("unterminated string")
}

// skipStringIndexByte is skipString as it was: each quote found with
// IndexByte, its escape decided by the backslashes before it.
func skipStringIndexByte(p []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(p[j:], '"')
		if k < 0 {
			return 0, errors.New("unterminated string")
		}
		j += k
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

// TestSkipStringRandom holds skipString to the byte-by-byte reading on
// strings of quotes, backslashes and other bytes at every position and
// density (escape-heavy, sparse, long runs), cut at any point.
func TestSkipStringRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 100000; n++ {
		size := rng.IntN(200)
		density := 1 + rng.IntN(64) // one special byte in density, about
		p := make([]byte, 1+size)
		p[0] = '"'
		for i := 1; i < len(p); i++ {
			p[i] = 'a' + byte(rng.IntN(26))
			if rng.IntN(density) == 0 {
				p[i] = `"\`[rng.IntN(2)]
			}
		}
		wantEnd, wantErr := skipStringRef(p, 0)
		gotEnd, gotErr := skipString(p, 0)
		if wantErr != nil {
			require.Error(t, gotErr, "%q", p)
			continue
		}
		require.NoError(t, gotErr, "%q", p)
		require.Equal(t, wantEnd, gotEnd, "%q", p)
	}
}

// TestSkipStringEncoded: every string encoding/json writes is skipped to
// its exact end, whatever follows it.
func TestSkipStringEncoded(t *testing.T) {
	texts := []string{"", `"`, `\`, `\\"`, `"\"`, "a\"b\\c", benchPrompt(300, "escapes"), benchPrompt(300, "prose"),
		`\\\\\\\\\\\\\\\\"`, "x\x00\x1f\u2028é", string(bytes.Repeat([]byte{'\\'}, 33)), string(bytes.Repeat([]byte{'"'}, 33))}
	for _, s := range texts {
		enc, err := json.Marshal(s)
		require.NoError(t, err)
		for _, tail := range []string{"", `"`, `\"`, `,"x":"y"}`} {
			p := append(append([]byte(nil), enc...), tail...)
			end, err := skipString(p, 0)
			require.NoError(t, err, "%q", p)
			assert.Equal(t, len(enc), end, "%q", p)
		}
	}
}

// BenchmarkSkipString: skipString against the byte-by-byte reading and
// the IndexByte one (the scan before), on 1 MB strings.
func BenchmarkSkipString(b *testing.B) {
	impls := map[string]func([]byte, int) (int, error){
		"bytewise": skipStringRef, "indexbyte": skipStringIndexByte, "gwtransport": skipString,
	}
	for _, text := range []string{"prose", "escapes"} {
		p, _ := json.Marshal(benchPrompt(1<<20, text))
		for _, impl := range []string{"bytewise", "indexbyte", "gwtransport"} {
			b.Run("text="+text+"/impl="+impl, func(b *testing.B) {
				b.SetBytes(int64(len(p)))
				for i := 0; i < b.N; i++ {
					_, _ = impls[impl](p, 0)
				}
			})
		}
	}
}
