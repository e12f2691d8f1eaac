package gwtransport

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// foldVariants returns every spelling of word that encoding/json matches
// to it: each letter in either case, "ſ" (U+017F) for 's', "K" (U+212A)
// for 'k'.
func foldVariants(word string) []string {
	out := []string{""}
	for _, c := range word {
		alts := []string{string(c)}
		if 'a' <= c && c <= 'z' {
			alts = append(alts, string(c-'a'+'A'))
		}
		switch c {
		case 's':
			alts = append(alts, "ſ")
		case 'k':
			alts = append(alts, "K")
		}
		var next []string
		for _, p := range out {
			for _, a := range alts {
				next = append(next, p+a)
			}
		}
		out = next
	}
	return out
}

// TestGuardKeyMatchesEncodingJSON: every spelling encoding/json decodes
// into one of the keys the guard reads is that key to guardKey (exact only
// for the key itself), and the candidate prefilter selects every line in
// which such a spelling carries an error or a finish.
func TestGuardKeyMatchesEncodingJSON(t *testing.T) {
	keys := map[string]int{"error": keyError, "type": keyType, "choices": keyChoices, "index": keyIndex, "finish_reason": keyFinish}
	for word, want := range keys {
		vs := foldVariants(word)
		require.Greater(t, len(vs), 1<<len("type")-1)
		for _, v := range vs {
			q, _ := json.Marshal(v)
			// encoding/json's own reading, as the reference.
			var probe map[string]json.RawMessage
			var into struct {
				E json.RawMessage `json:"error"`
				T json.RawMessage `json:"type"`
				C json.RawMessage `json:"choices"`
				I json.RawMessage `json:"index"`
				F json.RawMessage `json:"finish_reason"`
			}
			line := []byte("{" + string(q) + `:"x"}`)
			require.NoError(t, json.Unmarshal(line, &probe))
			require.NoError(t, json.Unmarshal(line, &into))
			require.True(t, into.E != nil || into.T != nil || into.C != nil || into.I != nil || into.F != nil, "encoding/json folds %q", v)
			key, exact := guardKey(q)
			assert.Equal(t, want, key, "%q", v)
			assert.Equal(t, v == word, exact, "%q", v)
			switch word {
			case "error":
				assert.True(t, candidate(line), "%s", line)
				e, err := lineEffects(line, 0, nil)
				require.NoError(t, err)
				assert.True(t, e.failed, "%s", line)
			case "finish_reason":
				fin := []byte(`{"choices":[{` + string(q) + `:"stop"}]}`)
				assert.True(t, candidate(fin), "%s", fin)
				marked := false
				_, err := lineEffects(fin, 1, func(int) { marked = true })
				require.NoError(t, err)
				assert.Equal(t, v == word, marked, "%s: a finish counts only when spelled exactly", fin)
			}
		}
	}
	// Near misses are no key.
	for _, v := range []string{`"errors"`, `"rror"`, `"typ"`, `"choice"`, `"indexes"`, `"finish_reasons"`, `"fınish_reason"`, `"İndex"`} {
		key, _ := guardKey([]byte(v))
		assert.Equal(t, keyNone, key, v)
	}
}

// TestCandidateNeverMissesAnEffect: random objects over a small alphabet
// of keys (case variants, "ſ", escapes) and values: whenever lineEffects
// finds an error, a terminal type or a finish, candidate selected the
// line.
func TestCandidateNeverMissesAnEffect(t *testing.T) {
	names := []string{"error", "Error", "ERROR", "type", "Type", "choices", "Choiceſ", "index", "Index",
		"finish_reason", "Finish_Reason", "finiſh_reaſon", `\u0065rror`, `Finish_Re\u0061son`, "x", "_", "reason"}
	vals := []string{`null`, `""`, `"stop"`, `0`, `1`, `"error"`, `"response.completed"`, `"response.failed"`, `"ping"`, `{}`, `[]`}
	r := rand.New(rand.NewPCG(1, 2))
	obj := func() string {
		var b bytes.Buffer
		b.WriteByte('{')
		for i, n := 0, r.IntN(4); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + names[r.IntN(len(names))] + `":`)
			b.WriteString(vals[r.IntN(len(vals))])
		}
		b.WriteByte('}')
		return b.String()
	}
	seen := map[string]int{}
	for i := 0; i < 100000; i++ {
		var line string
		if r.IntN(2) == 0 {
			line = obj()
		} else {
			ch := "["
			for j, n := 0, 1+r.IntN(2); j < n; j++ {
				if j > 0 {
					ch += ","
				}
				ch += obj()
			}
			line = `{"` + names[r.IntN(len(names))] + `":` + ch + "]," + obj()[1:]
			line = string(bytes.Replace([]byte(line), []byte(",}"), []byte("}"), 1))
		}
		v := []byte(line)
		if !json.Valid(v) {
			continue
		}
		marked := false
		e, err := lineEffects(v, 2, func(int) { marked = true })
		if err == nil && (e.failed || e.terminal || marked) {
			require.True(t, candidate(v), "candidate missed %s", v)
		}
		if e.failed {
			seen["failed"]++
		}
		if e.terminal {
			seen["terminal"]++
		}
		if marked {
			seen["finish"]++
		}
	}
	// The walk reaches every kind of effect, many times.
	for _, k := range []string{"failed", "terminal", "finish"} {
		assert.Greater(t, seen[k], 50, k)
	}
}
