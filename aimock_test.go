package gwtransport_test

// Integration tests against @copilotkit/aimock, an OpenAI-compatible mock
// provider no one here wrote. Each test starts one aimock process per
// provider on 127.0.0.1, each requiring its own API key (a request carrying
// any other key is answered 401), and stops them when it ends. ./test.sh
// installs it (`npm ci` in the repository root, Node.js 20.15 or later);
// without it these tests fail with the command to run. Only an explicit
// GWTRANSPORT_SKIP_AIMOCK=1 skips them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// aimockMissing is the failure of an aimock test on a machine without
// aimock: the exact command to run.
const aimockMissing = "aimock is not installed: run ./test.sh (it runs `npm ci --no-audit --no-fund` when node_modules is missing or differs from package-lock.json), or `npm ci` in the repository root yourself; both need Node.js 20.15 or later. (GWTRANSPORT_SKIP_AIMOCK=1 skips these tests.)"

// aimock is one running aimock process.
type aimock struct {
	endpoint string // http://127.0.0.1:PORT
	key      string
}

// startAimock runs aimock with the fixtures of testdata/aimock/<name>,
// accepting only key.
func startAimock(t *testing.T, name, key string) *aimock {
	t.Helper()
	cli := filepath.Join("node_modules", "@copilotkit", "aimock", "dist", "cli.js")
	node, err := exec.LookPath("node")
	if os.Getenv("GWTRANSPORT_SKIP_AIMOCK") == "1" {
		t.Skip("GWTRANSPORT_SKIP_AIMOCK=1: the aimock integration tests are skipped")
	}
	if _, statErr := os.Stat(cli); err != nil || statErr != nil {
		t.Fatal(aimockMissing)
	}
	// A free port may be taken by another process before aimock binds it:
	// a start that exits is retried on a new port.
	for try := 1; ; try++ {
		if m, exited := launchAimock(t, node, cli, name, key); !exited {
			return m
		} else if try == 5 {
			t.Fatalf("aimock %s exited at start 5 times", name)
		}
	}
}

// launchAimock starts aimock on a free port and waits for it to answer; it
// reports exited when the process ended before answering.
func launchAimock(t *testing.T, node, cli, name, key string) (*aimock, bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	logs := &lockedBuffer{}
	cmd := exec.Command(node, cli, "-p", fmt.Sprint(port), "-h", "127.0.0.1",
		"-f", filepath.Join("testdata", "aimock", name), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "AIMOCK_API_KEYS="+key)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("aimock %s output:\n%s", name, logs.String())
		}
	})
	m := &aimock{endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), key: key}
	deadline := time.Now().Add(60 * time.Second) // node starts slowly on a loaded machine
	for {
		select {
		case <-done:
			t.Logf("aimock %s exited at start (port %d), retrying: %s", name, port, logs.String())
			return nil, true
		default:
		}
		res, err := http.Get(m.endpoint + "/health") // public even when keys are required
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return m, false
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("aimock %s did not start: %v\n%s", name, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer collects a process's output, written by its copying
// goroutines and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (m *aimock) url() string { return m.endpoint + "/v1" }

// journalEntry is the part of aimock's journal the tests read.
type journalEntry struct {
	Path     string            `json:"path"`
	Headers  map[string]string `json:"headers"`
	Body     map[string]any    `json:"body"`
	Response struct {
		Status int `json:"status"`
	} `json:"response"`
}

func (m *aimock) journal(t *testing.T) []journalEntry {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, m.endpoint+"/__aimock/journal", nil)
	req.Header.Set("Authorization", "Bearer "+m.key)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out []journalEntry
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return out
}

// injectError queues a one-shot error for the next request (aimock adds
// Retry-After to a 429).
func (m *aimock) injectError(t *testing.T, status int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.endpoint+"/__aimock/error", strings.NewReader(fmt.Sprintf(`{"status":%d,"body":{"message":"injected","type":"rate_limit_error"}}`, status)))
	req.Header.Set("Authorization", "Bearer "+m.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
}

// statuses lists the status aimock answered to each journal entry whose
// path contains part.
func statuses(j []journalEntry, part string) []int {
	var out []int
	for _, e := range j {
		if strings.Contains(e.Path, part) {
			out = append(out, e.Response.Status)
		}
	}
	return out
}

// twoAimocks starts providers A and B and an openai-go client addressed at
// A with A's key.
func twoAimocks(t *testing.T) (a, b *aimock, client *openai.Client) {
	a = startAimock(t, "a", "key-a")
	b = startAimock(t, "b", "key-b")
	c := openai.NewClient(option.WithBaseURL(a.url()), option.WithAPIKey("key-a"), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{}))
	return a, b, &c
}

func aimockB(b *aimock) gwtransport.Option {
	return gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: b.url(), APIKey: "key-b"})
}

func TestAimockOrderedFallback(t *testing.T) {
	a, b, client := twoAimocks(t)
	mustInit(t, client, []string{"openai/broken", "bprov/model-b"}, noEnv(), aimockB(b), gwtransport.WithMaxRetries(1),
		gwtransport.WithClock(newFakeClock()))

	res, raw, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hello from B", res.Choices[0].Message.Content)
	assert.Equal(t, "model-b", res.Model)
	assert.Equal(t, "bprov/model-b", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "3", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, []int{503, 503}, statuses(a.journal(t), "/chat/completions"))
	assert.Equal(t, []int{200}, statuses(b.journal(t), "/chat/completions"), "B accepted its own key (a foreign key would be 401)")
}

func TestAimockWeightedFallback(t *testing.T) {
	a, b, client := twoAimocks(t)
	mustInit(t, client, map[string]float64{"openai/broken": 3, "openai/model-a": 0, "bprov/model-b": 1}, noEnv(), aimockB(b),
		gwtransport.WithMaxRetries(0), seeded(5))
	const n = 20
	for i := 0; i < n; i++ {
		res, _, err := chat(t, client, "gateway")
		require.NoError(t, err)
		assert.Equal(t, "Hello from B", res.Choices[0].Message.Content, "weight 0 is never a fallback")
	}
	aStatuses := statuses(a.journal(t), "/chat/completions")
	assert.NotEmpty(t, aStatuses)
	for _, s := range aStatuses {
		assert.Equal(t, 503, s, "only the broken model was tried on A")
	}
	assert.Len(t, statuses(b.journal(t), "/chat/completions"), n)
}

func TestAimockAzureDeployment(t *testing.T) {
	a, b, client := twoAimocks(t)
	mustInit(t, client, []string{"openai/broken", "azure/dep-1"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "azure", BaseURL: b.endpoint, APIKey: "key-b", APIVersion: "2024-10-21"}))
	res, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hello from B's Azure deployment", res.Choices[0].Message.Content)
	jb := b.journal(t)
	require.Len(t, jb, 1)
	assert.Equal(t, "/openai/deployments/dep-1/chat/completions?api-version=2024-10-21", jb[0].Path)
	assert.Equal(t, 200, jb[0].Response.Status)
	assert.Contains(t, jb[0].Headers, "api-key")
	assert.NotContains(t, jb[0].Headers, "authorization", "A's bearer key never reaches Azure")
	assert.Equal(t, []int{503}, statuses(a.journal(t), "/chat/completions"))
}

func TestAimockStreamingFallbackBeforeFirstEvent(t *testing.T) {
	for _, broken := range []string{"broken", "drops"} {
		t.Run(broken, func(t *testing.T) {
			a, b, client := twoAimocks(t)
			mustInit(t, client, []string{"openai/" + broken, "bprov/model-b"}, noEnv(), aimockB(b), gwtransport.WithMaxRetries(0))
			text, raw, err := streamChat(t, context.Background(), client, "gateway")
			require.NoError(t, err)
			assert.Equal(t, "Hello from B", text)
			assert.Equal(t, "bprov/model-b", raw.Header.Get(gwtransport.HeaderTarget))
			assert.Len(t, a.journal(t), 1)
			assert.Equal(t, []int{200}, statuses(b.journal(t), "/chat/completions"))
		})
	}
}

func TestAimockRateLimitRetryAfter(t *testing.T) {
	a, _, client := twoAimocks(t)
	clock := newFakeClock()
	mustInit(t, client, []string{"openai/model-a"}, noEnv(), gwtransport.WithClock(clock),
		gwtransport.WithBackoff(gwtransport.Backoff{Initial: 10 * time.Millisecond, Multiplier: 2}))
	a.injectError(t, 429)
	res, raw, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hello from A", res.Choices[0].Message.Content)
	assert.Equal(t, []time.Duration{time.Second}, clock.Sleeps(), "aimock's Retry-After: 1 beats the 10 ms backoff")
	assert.Equal(t, "2", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, []int{429, 200}, statuses(a.journal(t), "/chat/completions"))
}

func TestAimockDroppedConnection(t *testing.T) {
	a, b, client := twoAimocks(t)
	mustInit(t, client, []string{"openai/drops", "bprov/model-b"}, noEnv(), aimockB(b), gwtransport.WithMaxRetries(1),
		gwtransport.WithClock(newFakeClock()))
	res, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hello from B", res.Choices[0].Message.Content)
	assert.Len(t, a.journal(t), 2, "the dropped target was retried once")
}

// TestAimockCredentialIsolation checks isolation in aimock's own journal:
// every request each instance received carried only credentials it
// accepts (any foreign key is a 401 there), and only its auth header.
func TestAimockCredentialIsolation(t *testing.T) {
	a, b, client := twoAimocks(t)
	az := startAimock(t, "b", "key-azure")
	mustInit(t, client, []string{"openai/broken", "bprov/model-b"}, noEnv(), aimockB(b), gwtransport.WithMaxRetries(0))
	for i := 0; i < 3; i++ {
		_, _, err := chat(t, client, "gateway", option.WithHeader("OpenAI-Organization", "org-a"))
		require.NoError(t, err)
	}
	// The same from a go-openai client, falling back to Azure.
	tr, err := gwtransport.NewTransport(nil, []string{"openai/broken", "azure/dep-1"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "azure", BaseURL: az.endpoint, APIKey: "key-azure"}))
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("key-a")
	cfg.BaseURL = a.url()
	cfg.HTTPClient = &http.Client{Transport: tr}
	gc := goopenai.NewClientWithConfig(cfg)
	_, err = gc.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		m          *aimock
		authHeader string
		foreign    []string
	}{
		"A":     {a, "authorization", []string{"api-key"}},
		"B":     {b, "authorization", []string{"api-key", "openai-organization"}},
		"azure": {az, "api-key", []string{"authorization", "openai-organization"}},
	} {
		j := tc.m.journal(t)
		require.NotEmpty(t, j, name)
		for _, e := range j {
			assert.NotEqual(t, 401, e.Response.Status, "%s rejected a key on %s", name, e.Path)
			assert.Contains(t, e.Headers, tc.authHeader, name)
			for _, h := range tc.foreign {
				assert.NotContains(t, e.Headers, h, "%s received %s", name, h)
			}
		}
	}
}

func TestAimockGoOpenAI(t *testing.T) {
	a, b, _ := twoAimocks(t)
	tr, err := gwtransport.NewTransport(nil, []string{"openai/broken", "bprov/model-b"}, noEnv(), aimockB(b), gwtransport.WithMaxRetries(0))
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("key-a")
	cfg.BaseURL = a.url()
	cfg.HTTPClient = &http.Client{Transport: tr}
	c := goopenai.NewClientWithConfig(cfg)
	req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	res, err := c.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "Hello from B", res.Choices[0].Message.Content)

	assert.Equal(t, "Hello from B", goOpenAIStream(t, c, req))
	assert.Equal(t, []int{200, 200}, statuses(b.journal(t), "/chat/completions"))
}
