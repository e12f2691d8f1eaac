package gwtransport_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestRVCallerHugeMaxVerifiedBody: WithMaxVerifiedBody accepts any
// non-negative n; the largest ("verify everything") must not crash the
// caller's request. limit+1 overflows in verify's buffer sizing.
func TestRVCallerHugeMaxVerifiedBody(t *testing.T) {
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 1, 1 << 62} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a := server(t, "primary", "key-p")
			c := openaiClient(a, "key-p")
			mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithMaxVerifiedBody(n))
			var res any
			var err error
			require.NotPanics(t, func() {
				res, _, err = chat(t, c, "gateway")
			})
			require.NoError(t, err)
			assert.NotNil(t, res)
		})
	}
}

// TestRVCallerHugeMaxVerifiedBodyInConfig: the same from a configuration
// file, which validates max_verified_body as any non-negative int.
func TestRVCallerHugeMaxVerifiedBodyInConfig(t *testing.T) {
	a := server(t, "primary", "key-p")
	cfg, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\ndefaults:\n  max_verified_body: 9223372036854775807\n"))
	require.NoError(t, err)
	c := openaiClient(a, "key-p")
	mustInit(t, c, nil, noEnv(), gwtransport.WithConfig(cfg))
	require.NotPanics(t, func() {
		_, _, err = chat(t, c, "gateway")
	})
	require.NoError(t, err)
}

// TestRVCallerLargeBoundHugeDeclaredLength: with a large bound (1<<62, say
// "verify everything"), a provider that declares a huge Content-Length
// and sends nothing makes verify allocate Content-Length+1 bytes up front:
// a panic (cap out of range) in the caller's request instead of a
// truncated body failing over.
func TestRVCallerLargeBoundHugeDeclaredLength(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.FormatInt(1<<50, 10))
		w.WriteHeader(200)
		w.Write([]byte(`{"id":`))
	}))
	t.Cleanup(bad.Close)
	good := server(t, "second", "key-b")
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()),
		provider("fb", good, "key-b"), gwtransport.WithMaxRetries(0), gwtransport.WithMaxVerifiedBody(1<<62))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, bad.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer key-p")
	var res *http.Response
	require.NotPanics(t, func() { res, err = tr.RoundTrip(req) })
	require.NoError(t, err)
	assert.Equal(t, "fb/b-model", res.Header.Get(gwtransport.HeaderTarget))
	res.Body.Close()
}
