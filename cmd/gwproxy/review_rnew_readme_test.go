package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/redisstore"
)

// rnewReadmeBlock returns the first fenced block of lang after heading in
// README.md.
func rnewReadmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	s := string(text)
	i := strings.Index(s, "\n"+heading+"\n")
	require.GreaterOrEqual(t, i, 0, "README has no %q", heading)
	s = s[i:]
	j := strings.Index(s, "```"+lang+"\n")
	require.GreaterOrEqual(t, j, 0)
	s = s[j+len("```"+lang+"\n"):]
	k := strings.Index(s, "```")
	require.GreaterOrEqual(t, k, 0)
	return s[:k]
}

// TestReviewReadmeConfigureBlockLoads: the README's "### Configure"
// example file, as a new user copies it, with every variable it names
// set, is accepted by gwproxy.
func TestReviewReadmeConfigureBlockLoads(t *testing.T) {
	block := rnewReadmeBlock(t, "### Configure", "yaml")
	env := map[string]string{
		"OPENAI_API_KEY":        "sk-openai-xxxxxxxx",
		"AZURE_OPENAI_API_KEY":  "azure-xxxxxxxxxxxx",
		"AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
		"GROQ_API_KEY":          "gsk-xxxxxxxxxxxxxx",
		"GWPROXY_BATCH_KEY":     "batch-key-123456",
	}
	var logs bytes.Buffer
	_, err := newServer(serverConfig{data: []byte(block), env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		log: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err, "README ### Configure block:\n%s", block)
	t.Logf("logs: %s", logs.String())
}

// TestReviewReadmeRedisStateBlockParses: the README's "Many replicas"
// state section parses (its keys and the 2ms timeout).
func TestReviewReadmeRedisStateBlockParses(t *testing.T) {
	block := rnewReadmeBlock(t, "## Many replicas", "yaml")
	_ = io.Discard
	t.Cleanup(func() { _ = redisstore.CloseConfigured() })
	t.Setenv("REDIS_PASSWORD", "pw") // redisstore reads os.LookupEnv, not the env gwproxy is given
	data := "models:\n  - target: openai/gpt-4o\n" + block
	_, err := newServer(serverConfig{data: []byte("proxy:\n  keys:\n    - name: a\n      hash: sha256:c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c\n" + data),
		env: func(k string) (string, bool) {
			if k == "REDIS_PASSWORD" {
				return "pw", true
			}
			if k == "OPENAI_API_KEY" {
				return "sk-xxxxxxxxxxxx", true
			}
			return "", false
		}, log: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	require.NoError(t, err, "%s", data)
}

// TestReviewTracesEndpointOnlyExportsTracesOnly: README "Observe": traces
// go to OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// metrics to OTEL_EXPORTER_OTLP_ENDPOINT or ..._METRICS_ENDPOINT; with only
// a traces endpoint, the traces arrive there and no metric is sent to it.
func TestReviewTracesEndpointOnlyExportsTracesOnly(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] += len(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	})
	url, stopCollector := serveFor(t, collector)
	a, _, cfg, env := twoProviders(t, "")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url+"/v1/traces")
	env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = url + "/v1/traces"
	addr, sigs, done, stderr := startRun(t, []string{"-config", path, "-listen", "127.0.0.1:0"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	p := &testProxy{t: t, URL: "http://" + addr}
	res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		t.Logf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
	stopCollector()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("collector got %v; stderr: %s", got, stderr.String())
	assert.Positive(t, got["/v1/traces"], "no trace exported: %v", got)
	// README: metrics go to OTEL_EXPORTER_OTLP_ENDPOINT or ..._METRICS_ENDPOINT
	// only; a traces endpoint receives traces alone.
	assert.Zero(t, got["/v1/metrics"], "metrics sent to a traces endpoint: %v", got)
	assert.Equal(t, 1, a.Count())
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// TestReviewHeadersCappedAt64KiB: README "Secure": "headers are capped at
// 64 KiB (431)"; "Bounded clients": "headers over 64 KiB get 431". A
// request whose headers total 67 KiB.
func TestReviewHeadersCappedAt64KiB(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	addr, sigs, done, _ := startRun(t, []string{"-config", "example.yaml", "-demo", "-listen", "127.0.0.1:0"}, env)
	defer func() { sigs <- syscall.SIGTERM; <-done }()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer demo-key")
	req.Header.Set("X-Big", strings.Repeat("x", 67<<10))
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "67 KiB of headers")
}
