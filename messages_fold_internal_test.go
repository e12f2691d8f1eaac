package gwtransport

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestModelVariantsAreFiveASCIIBytes backs memberKey's length check: no
// rune outside ASCII folds to a letter of "model" (as U+212A KELVIN SIGN
// folds to k), so every name equal to "model" under Unicode case folding,
// as Go's encoding/json and strings.EqualFold apply it, is five bytes long.
func TestModelVariantsAreFiveASCIIBytes(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		for _, l := range "model" {
			if strings.EqualFold(string(r), string(l)) {
				require.Less(t, r, rune(utf8.RuneSelf), "%U folds to %q", r, l)
			}
		}
	}
}

// TestMemberKeyCaseVariants: every case variant of "model", escaped or not,
// is a variant; the exact name is the model; near misses are other members.
func TestMemberKeyCaseVariants(t *testing.T) {
	for _, tc := range []struct {
		tok  string
		want int
	}{
		{`"model"`, keyModel},
		{`"mod\u0065l"`, keyModel},
		{`"Model"`, keyModelVariant},
		{`"MODEL"`, keyModelVariant},
		{`"mOdEl"`, keyModelVariant},
		{`"MOD\u0045L"`, keyModelVariant},
		{`"\u004dodel"`, keyModelVariant},
		{`"Models"`, keyOther},
		{`"mode"`, keyOther},
		{`"modeI"`, keyOther},
		{`"model "`, keyOther},
		{`"mode\u212a"`, keyOther},
	} {
		got, err := memberKey([]byte(tc.tok))
		require.NoError(t, err, tc.tok)
		assert.Equal(t, tc.want, got, tc.tok)
	}
	// Every one of the 32 ASCII case spellings is a variant but one.
	n := 0
	for mask := 0; mask < 32; mask++ {
		b := []byte("model")
		for i := range b {
			if mask&(1<<i) != 0 {
				b[i] -= 'a' - 'A'
			}
		}
		got, err := memberKey([]byte(`"` + string(b) + `"`))
		require.NoError(t, err)
		if got == keyModelVariant {
			n++
		} else {
			assert.Equal(t, keyModel, got, string(b))
		}
	}
	assert.Equal(t, 31, n)
}
