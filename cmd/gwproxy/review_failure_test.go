package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewOddProviderStatuses: a provider answering only redirects (which
// the engine counts as failures: "a 3xx that reaches the gateway fails
// over") or non-JSON error pages. The client must get a final failure: an
// error status with an OpenAI-shaped error body naming the attempts. For a
// 3xx, serveAPI's `res.StatusCode >= 400` test sends the provider's 3xx and
// its body (HTML) as if it were a success, without Location, without an
// error body.
func TestReviewOddProviderStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		ctype  string
		body   string
	}{
		{302, "text/html", "<a href=\"http://elsewhere/\">Found</a>"},
		{307, "", ""},
		{304, "", ""},
		{502, "text/html", "<html><body>Bad Gateway</body></html>"},
		{404, "text/plain", "404 page not found"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				w.Header().Set("Location", "http://elsewhere/")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			srv := newHTTPServer(t, prov)
			cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\n  shutdown_timeout: 1s\nmodels:\n  - target: p/m\ndefaults:\n  max_retries: 0\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srv)
			p := startProxy(t, cfg, proxyOpts{})
			res, rb := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
			t.Logf("%d %q %s", res.StatusCode, res.Header.Get("Content-Type"), rb)
			if res.StatusCode >= 200 && res.StatusCode < 300 {
				var v map[string]any
				assert.NoError(t, json.Unmarshal(rb, &v), "a 2xx whose body is no JSON answer: %q", rb)
				assert.NotEmpty(t, v["choices"], "a 2xx that is no chat completion: %q", rb)
				return
			}
			require.GreaterOrEqual(t, res.StatusCode, 400, "neither a success nor a failure: %d %q", res.StatusCode, rb)
			e := decodeError(t, rb)
			assert.NotEmpty(t, e.Error.Attempts, "the failure names no attempt")
			assert.Empty(t, res.Header.Get("Location"), "a provider's redirect reached the client")
			if tc.status < 400 {
				assert.Equal(t, http.StatusBadGateway, res.StatusCode, "a final 3xx is the gateway's failure")
				assert.Equal(t, "upstream_bad_status", e.Error.Code)
			} else {
				assert.Equal(t, tc.status, res.StatusCode, "a final error keeps the provider's status")
			}
		})
	}
}
