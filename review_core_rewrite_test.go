package gwtransport_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// reviewCoreRawString is the inside of a JSON string token: escape-heavy,
// runs of \" and \\, invalid UTF-8, lengths around 8-byte boundaries.
func reviewCoreRawString(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		switch rng.IntN(10) {
		case 0:
			b.WriteString(strings.Repeat(`\\`, 1+rng.IntN(9)))
		case 1:
			b.WriteString(strings.Repeat(`\"`, 1+rng.IntN(9)))
		case 2:
			b.WriteString(`\\\"`)
		case 3:
			b.WriteByte(byte(0x80 + rng.IntN(128)))
		case 4:
			b.WriteString([]string{`\u0022`, `\u005c`, `\n`, `\/`, `"model":"x"`[:0] + `\"model\":\"gateway\"`}[rng.IntN(5)])
		default:
			k := rng.IntN(70)
			b.WriteString(strings.Repeat(string(rune('a'+rng.IntN(26))), k))
		}
	}
	return b.String()
}

// TestReviewCoreRewriteExact: every body reaching the provider equals the
// caller's with only "model" replaced, for escape-heavy prompts before
// and after "model", of every length around word boundaries, small
// (copied) and large (replayed through GetBody, or without GetBody).
func TestReviewCoreRewriteExact(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`)
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	client := &http.Client{Transport: tr}

	rng := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 600; n++ {
		size := rng.IntN(80)
		if n%3 == 0 {
			size = 8000 + rng.IntN(400) // around the replay threshold
		}
		if n%17 == 0 {
			size = 100000 + rng.IntN(64)
		}
		s1 := reviewCoreRawString(rng, size)
		s2 := reviewCoreRawString(rng, rng.IntN(40))
		key := []string{"model", "Model", `mod\u0065l`, "MODEL"}[rng.IntN(4)]
		var body, want string
		if rng.IntN(2) == 0 {
			body = `{"messages":[{"role":"user","content":"` + s1 + `"}],"x":"` + s2 + `","model":"gateway","` + key + `":"gateway"}`
			want = `{"messages":[{"role":"user","content":"` + s1 + `"}],"x":"` + s2 + `","model":"gpt-4o","` + key + `":"gpt-4o"}`
		} else {
			body = `{"model" : "gateway","messages":[{"role":"user","content":"` + s1 + `"}],"x":["` + s2 + `",{"model":"gateway"}]}`
			want = `{"model" : "gpt-4o","messages":[{"role":"user","content":"` + s1 + `"}],"x":["` + s2 + `",{"model":"gateway"}]}`
		}
		var rdr io.Reader = strings.NewReader(body)
		if n%5 == 4 {
			rdr = io.MultiReader(bytes.NewReader([]byte(body))) // no GetBody
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", rdr)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		require.NoError(t, err, "body %d", n)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
		mu.Lock()
		last := got[len(got)-1]
		mu.Unlock()
		if string(last) != want {
			i := 0
			for i < len(last) && i < len(want) && last[i] == want[i] {
				i++
			}
			lo := max(0, i-40)
			t.Fatalf("body %d (size %d): differs at %d:\n got  %q\n want %q", n, len(body), i, last[lo:min(len(last), i+40)], want[lo:min(len(want), i+40)])
		}
	}
}
