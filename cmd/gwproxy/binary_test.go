package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinarySignals builds gwproxy and drives the real process: it serves
// the file, SIGHUP reloads it (a new route is served), SIGTERM drains and
// the process exits 0. Its logs are JSON, one object a line.
func TestBinarySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gwproxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	a, b, cfg, env := twoProviders(t, "")
	path := filepath.Join(dir, "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	cmd := exec.Command(bin, "-config", path, "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "A_KEY="+env["A_KEY"], "B_KEY="+env["B_KEY"], "SMALL_KEY="+env["SMALL_KEY"])
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"msg": "NOT JSON: " + sc.Text()}
			}
			lines <- m
		}
	}()
	waitFor := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				require.True(t, ok, "gwproxy exited before logging %q", msg)
				require.NotContains(t, m["msg"], "NOT JSON")
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q in the logs", msg)
			}
		}
	}
	addr := waitFor("gwproxy listening")["addr"].(string)
	p := &testProxy{t: t, URL: "http://" + addr}
	res, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	assert.Equal(t, 200, res.StatusCode)

	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(strings.Replace(cfg, "- name: small\n", "- name: renamed\n", 1), "routes: [small]", "routes: [renamed]", 1)), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitFor("gwproxy: configuration reloaded")
	res, _ = p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "renamed"))
	assert.Equal(t, 200, res.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waitFor("gwproxy stopped")
	for range lines {
	}
	require.NoError(t, cmd.Wait(), "gwproxy exited with an error")
	assert.Equal(t, 2, a.Count()+b.Count())
}
