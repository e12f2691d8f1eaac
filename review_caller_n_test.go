package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRVCallerStringNIsTwoChoicesForALaxProvider: a caller sends "n":"2"
// (a string). A provider that coerces it (pydantic's lax mode: vLLM,
// SGLang) streams two choices, where the gateway would read n as absent
// (1) and take choice 0's finish for the end. Such an "n" (any non-number
// but null) is refused before anything is sent; numeric spellings of 2
// guard both choices.
func TestRVCallerStringNIsTwoChoicesForALaxProvider(t *testing.T) {
	ev := func(i int, content, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":` + string(rune('0'+i)) + `,"delta":{"content":"` + content + `"},"finish_reason":` + f + `}]}` + "\n\n"
	}
	for _, tc := range []struct{ n, stream string }{
		{`"2"`, `true`}, {`2.0`, `true`}, {`2`, `true`}, {`true`, `true`}, {`[2]`, `true`}, {`{"n":2}`, `true`},
		{`2`, `"true"`}, {`2`, `1`}, {`2`, `"yes"`},
	} {
		s := server(t, "p", "key-p")
		s.Enqueue(gatewaytest.Fault{Script: ev(0, "a", "") + ev(1, "b", "") + ev(0, "", "stop") + ev(1, "c", "")})
		tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithClock(newFakeClock()))
		require.NoError(t, err)
		body := `{"model":"gateway","stream":` + tc.stream + `,"n":` + tc.n + `,"messages":[{"role":"user","content":"Hi"}]}`
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer key-p")
		res, err := (&http.Client{Transport: tr}).Do(req)
		numeric := tc.n[0] >= '0' && tc.n[0] <= '9'
		if !numeric || tc.stream != "true" {
			require.ErrorIs(t, err, gwtransport.ErrMalformedBody, "n=%s stream=%s", tc.n, tc.stream)
			assert.Zero(t, s.Count(), "refused before anything is sent")
			continue
		}
		require.NoError(t, err)
		_, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		assert.ErrorIs(t, rerr, gwtransport.ErrStreamTruncated, "n=%s: choice 1 never finished", tc.n)
	}
}

// TestRVCallerStringStreamForALaxProvider: "stream":"true" (a string),
// which a lax provider (pydantic: vLLM, SGLang) reads as true. The gateway
// reads the request as not streamed: the SSE answer, cut before its finish
// and [DONE] but ended cleanly, is read to its end, is not JSON-typed, and
// is handed over as a verified 200: a truncated answer as a success.
func TestRVCallerStringStreamForALaxProvider(t *testing.T) {
	lax := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.Write([]byte(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}` + "\n\n"))
		// the provider's worker dies: the response ends here, cleanly
	}))
	t.Cleanup(lax.Close)
	tr, err := gwtransport.NewTransport(nil, []string{"vllm/m"}, noEnv(), gwtransport.WithClock(newFakeClock()),
		gwtransport.WithProvider(gwtransport.Provider{Name: "vllm", BaseURL: lax.URL}))
	require.NoError(t, err)
	body := `{"model":"gateway","stream":"true","messages":[{"role":"user","content":"Hi"}]}`
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, lax.URL+"/chat/completions", strings.NewReader(body))
	res, err := tr.RoundTrip(req)
	if err == nil {
		_, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		err = rerr
	}
	assert.Error(t, err, "a stream cut before its finish must not end as a success")
}
