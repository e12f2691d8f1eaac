package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// nodeMissing is the hint of a machine without Node or the openai package.
const nodeMissing = "the openai npm client is not installed: run ./test.sh (it runs `npm ci` from package-lock.json), or `npm ci` in the repository root; it needs Node.js 20.15 or later"

// needTool returns the path of a tool the test drives gwproxy with: under
// CI=true its absence fails the test, elsewhere it skips with a hint.
func needTool(t *testing.T, name, hint string, files ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	missing := err != nil
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			missing = true
		}
	}
	if missing {
		if os.Getenv("CI") == "true" {
			t.Fatal(hint)
		}
		t.Skip(hint)
	}
	return path
}

// nodeResult is what openai_client.mjs prints.
type nodeResult struct {
	Text    string `json:"text"`
	Target  string `json:"target"`
	Chunks  int    `json:"chunks"`
	Dims    int    `json:"dims"`
	Error   string `json:"error"`
	Status  int    `json:"status"`
	Auth    bool   `json:"auth"`
	Message string `json:"message"`
}

// TestOpenAINodeClient drives gwproxy with the official openai npm
// client: chat, streaming, Responses, embeddings, a fallback, a wrong
// proxy key (AuthenticationError) and a broken stream (an error, never a
// clean end).
func TestOpenAINodeClient(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	node := needTool(t, "node", nodeMissing, filepath.Join(root, "node_modules", "openai", "package.json"))
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		scenario, key, model string
		faultA               *gatewaytest.Fault
		check                func(t *testing.T, r nodeResult)
		wantA, wantB         int
	}{
		{"chat", keyAll, "gateway", nil, func(t *testing.T, r nodeResult) {
			assert.Equal(t, "Hello from a", r.Text)
			assert.Equal(t, "a/m1", r.Target)
		}, 1, 0},
		{"stream", keyAll, "gateway", nil, func(t *testing.T, r nodeResult) {
			assert.Equal(t, "Hello from a tok2 tok3 tok4 tok5 ", r.Text)
			assert.Equal(t, 6, r.Chunks)
		}, 1, 0},
		{"responses", keyAll, "gateway", nil, func(t *testing.T, r nodeResult) {
			assert.NotEmpty(t, r.Text)
			assert.Equal(t, "a/m1", r.Target)
		}, 1, 0},
		{"embeddings", keyAll, "gateway", nil, func(t *testing.T, r nodeResult) {
			assert.Positive(t, r.Dims)
			assert.Equal(t, "a/m1", r.Target)
		}, 1, 0},
		{"chat", keyAll, "gateway", &gatewaytest.Fault{Status: 503}, func(t *testing.T, r nodeResult) {
			assert.Equal(t, "Hello from b", r.Text, "the fallback answered")
			assert.Equal(t, "b/m2", r.Target)
		}, 1, 1},
		{"chat", "wrong-key", "gateway", nil, func(t *testing.T, r nodeResult) {
			assert.Equal(t, "AuthenticationError", r.Error)
			assert.True(t, r.Auth)
			assert.Equal(t, 401, r.Status)
		}, 0, 0},
		{"stream", keyAll, "gateway", &gatewaytest.Fault{CutAfter: 2}, func(t *testing.T, r nodeResult) {
			assert.NotEmpty(t, r.Error, "the client saw a clean end of a broken stream: %+v", r)
		}, 1, 0},
		{"chat", keyAll, "nope", nil, func(t *testing.T, r nodeResult) {
			assert.Equal(t, "NotFoundError", r.Error)
			assert.Equal(t, 404, r.Status)
		}, 0, 0},
	} {
		name := tc.scenario + "/" + tc.model
		if tc.faultA != nil {
			name += "/fault"
		}
		if tc.key != keyAll {
			name += "/wrong-key"
		}
		t.Run(name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			if tc.faultA != nil {
				a.Enqueue(*tc.faultA)
			}
			cmd := exec.Command(node, filepath.Join("testdata", "openai_client.mjs"), tc.scenario)
			cmd.Env = append(os.Environ(), "GWPROXY_BASE_URL="+p.URL+"/v1", "GWPROXY_API_KEY="+tc.key, "GWPROXY_MODEL="+tc.model)
			out, err := cmd.Output()
			require.NoError(t, err, "%s", exitStderr(err))
			var r nodeResult
			require.NoError(t, json.Unmarshal(out, &r), "%s", out)
			tc.check(t, r)
			assert.Equal(t, tc.wantA, a.Count())
			assert.Equal(t, tc.wantB, b.Count())
			noProxyKeyAt(t, a, b)
		})
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return fmt.Sprint(err)
}

// TestCurl: curl gets a plain and a streamed answer, and a 401 for a wrong
// key.
func TestCurl(t *testing.T) {
	curl := needTool(t, "curl", "curl is not installed: apt-get install curl")
	a, _, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	run := func(key, body string) (string, string) {
		out, err := exec.Command(curl, "-sS", "-N", "-o", "-", "-w", "\n%{http_code}", p.URL+"/v1/chat/completions",
			"-H", "Authorization: Bearer "+key, "-H", "Content-Type: application/json", "-d", body).Output()
		require.NoError(t, err, "%s", exitStderr(err))
		s := string(out)
		i := len(s) - 4
		return s[:i], s[i+1:]
	}
	body, code := run(keyAll, fmt.Sprintf(chatBody, "gateway"))
	assert.Equal(t, "200", code)
	assert.Contains(t, body, `"content":"Hello from a"`)
	body, code = run(keyAll, fmt.Sprintf(streamBody, "gateway"))
	assert.Equal(t, "200", code)
	assert.Contains(t, body, "data: [DONE]")
	assert.Equal(t, 7, countPrefix(body, "data: "))
	// Without -H Content-Type, curl -d says the body is a form: still
	// served, the body is JSON.
	out, err := exec.Command(curl, "-sS", "-o", "-", "-w", "\n%{http_code}", p.URL+"/v1/chat/completions",
		"-H", "Authorization: Bearer "+keyAll, "-d", fmt.Sprintf(chatBody, "gateway")).Output()
	require.NoError(t, err, "%s", exitStderr(err))
	assert.True(t, strings.HasSuffix(string(out), "\n200"), "%s", out)
	body, code = run("wrong-key", fmt.Sprintf(chatBody, "gateway"))
	assert.Equal(t, "401", code)
	assert.Contains(t, body, `"code":"invalid_api_key"`)
	assert.Equal(t, 3, a.Count())
}

func countPrefix(s, prefix string) int {
	n := 0
	for _, l := range splitLines(s) {
		if len(l) >= len(prefix) && l[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
