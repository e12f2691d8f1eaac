package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestMetrics: /metrics, read with the Prometheus text parser, counts the
// requests, attempts and fallbacks exactly, reports the breakers, and
// observes total, upstream and overhead latencies once per request.
func TestMetrics(t *testing.T) {
	a, _, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	a.Enqueue(gatewaytest.Fault{Status: 503})
	res, rb := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
	require.Equal(t, 200, res.StatusCode, "%s", rb)
	res, _ = p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(streamBody, "gateway"))
	require.Equal(t, 200, res.StatusCode)
	res, _ = p.do("POST", "/v1/embeddings", keyAll, fmt.Sprintf(`{"model":%q,"input":"x"}`, "nope"))
	require.Equal(t, 404, res.StatusCode)

	fams := p.metrics()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gwproxy_requests_total", map[string]string{"endpoint": "/v1/chat/completions", "route": "gateway", "code": "200"}, 2},
		{"gwproxy_requests_total", map[string]string{"endpoint": "/v1/embeddings", "route": "", "code": "404"}, 1},
		{"gwproxy_attempts_total", map[string]string{"route": "gateway", "target": "a/m1", "outcome": "503"}, 1},
		{"gwproxy_attempts_total", map[string]string{"route": "gateway", "target": "a/m1", "outcome": "200"}, 1},
		{"gwproxy_attempts_total", map[string]string{"route": "gateway", "target": "b/m2", "outcome": "200"}, 1},
		{"gwproxy_fallbacks_total", map[string]string{"route": "gateway", "from": "a/m1", "to": "b/m2"}, 1},
		{"gwproxy_breaker_state", map[string]string{"route": "gateway", "target": "a/m1", "state": "closed"}, 1},
		{"gwproxy_breaker_state", map[string]string{"route": "gateway", "target": "a/m1", "state": "open"}, 0},
		{"gwproxy_breaker_state", map[string]string{"route": "small", "target": "b/m2", "state": "closed"}, 1},
		{"gwproxy_request_duration_seconds", map[string]string{"endpoint": "/v1/chat/completions", "route": "gateway"}, 2},
		{"gwproxy_upstream_duration_seconds", map[string]string{"endpoint": "/v1/chat/completions", "route": "gateway"}, 2},
		{"gwproxy_overhead_seconds", map[string]string{"endpoint": "/v1/chat/completions", "route": "gateway"}, 2},
		{"gwproxy_attempt_duration_seconds", map[string]string{"route": "gateway", "target": "a/m1"}, 2},
		{"gwproxy_requests_in_flight", nil, 0},
	} {
		got, ok := metricValue(fams, c.name, c.labels)
		if assert.True(t, ok, "%s%v missing", c.name, c.labels) {
			assert.Equal(t, c.want, got, "%s%v", c.name, c.labels)
		}
	}
	// Overhead is total minus upstream: never more than the total.
	h := func(name string) float64 {
		for _, m := range fams[name].Metric {
			return m.Histogram.GetSampleSum()
		}
		return -1
	}
	total, up, over := h("gwproxy_request_duration_seconds"), h("gwproxy_upstream_duration_seconds"), h("gwproxy_overhead_seconds")
	assert.Greater(t, up, 0.0)
	assert.LessOrEqual(t, up, total)
	assert.InDelta(t, total-up, over, 1e-6+total*1e-6)
}

// TestReload: SIGHUP applies a valid new file to the requests that start
// after it, lets a stream in flight finish on the old one, and refuses an
// invalid file, keeping the current configuration.
func TestReload(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	p := startProxy(t, "", proxyOpts{env: env, path: path})
	hup := func() {
		before := reloads(t, p)
		p.sigs <- syscall.SIGHUP
		require.Eventually(t, func() bool { return reloads(t, p) > before }, 10*time.Second, 5*time.Millisecond)
	}

	// A stream in flight across the reload.
	a.Enqueue(gatewaytest.Fault{Script: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", ScriptPause: 300 * time.Millisecond})
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()

	// New file: the route "small" is gone, "fast" serves a/m1.
	newCfg := strings.Replace(cfg, "  - name: small\n    models:\n      - target: b/m2\n", "  - name: fast\n    models:\n      - target: a/m1\n", 1)
	newCfg = strings.Replace(newCfg, "routes: [small]", "routes: [fast]", 1)
	require.NoError(t, os.WriteFile(path, []byte(newCfg), 0o600))
	hup()
	rest, err := io.ReadAll(res.Body)
	require.NoError(t, err, "the stream in flight was dropped")
	assert.Contains(t, string(rest), "[DONE]")

	r1, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "fast"))
	assert.Equal(t, 200, r1.StatusCode)
	r2, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "small"))
	assert.Equal(t, 404, r2.StatusCode)

	// Invalid files are refused; the configuration stays the last good one.
	for _, bad := range []string{
		newCfg + "strategy: sideways\n",
		strings.Replace(newCfg, "hash: sha256:", "hash: md5:", 1),
		strings.Replace(newCfg, "proxy:\n", "proxy:\n  colour: blue\n", 1),
		"{not yaml",
	} {
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o600))
		hup()
		r, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "fast"))
		assert.Equal(t, 200, r.StatusCode)
	}
	v, _ := metricValue(p.metrics(), "gwproxy_config_reloads_total", map[string]string{"result": "refused"})
	assert.Equal(t, 4.0, v)
	assert.Contains(t, p.logs.String(), "new configuration refused")

	// A key taken out of the file is refused from the reload on.
	revoked := strings.Replace(newCfg, fmt.Sprintf("hash: sha256:%x", hashKey(keyAll)), fmt.Sprintf("hash: sha256:%x", hashKey("pk-new-key")), 1)
	require.NotEqual(t, newCfg, revoked)
	require.NoError(t, os.WriteFile(path, []byte(revoked), 0o600))
	hup()
	a.Reset()
	b.Reset()
	r, _ := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "fast"))
	assert.Equal(t, 401, r.StatusCode)
	r, _ = p.do("POST", "/v1/chat/completions", "pk-new-key", fmt.Sprintf(chatBody, "fast"))
	assert.Equal(t, 200, r.StatusCode)
	r, _ = p.do("POST", "/v1/chat/completions", keySmall, fmt.Sprintf(chatBody, "fast"))
	assert.Equal(t, 200, r.StatusCode)
	assert.Equal(t, 2, a.Count()+b.Count())
}

func reloads(t *testing.T, p *testProxy) float64 {
	fams := p.metrics()
	ok, _ := metricValue(fams, "gwproxy_config_reloads_total", map[string]string{"result": "ok"})
	bad, _ := metricValue(fams, "gwproxy_config_reloads_total", map[string]string{"result": "refused"})
	return ok + bad
}

// TestShutdownDrains: SIGTERM lets a stream in flight finish, and serve
// returns once it has; a stream longer than the drain deadline is cut.
func TestShutdownDrains(t *testing.T) {
	script := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	for _, tc := range []struct {
		name     string
		pause    time.Duration
		deadline string
		clean    bool
	}{
		{"drained", 150 * time.Millisecond, "10s", true},
		{"cut at the deadline", 2 * time.Second, "300ms", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, cfg, env := twoProviders(t, "  shutdown_timeout: "+tc.deadline+"\n")
			p := startProxy(t, cfg, proxyOpts{env: env})
			a.Enqueue(gatewaytest.Fault{Script: script, ScriptPause: tc.pause})
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
			req.Header.Set("Authorization", "Bearer "+keyAll)
			req.Header.Set("Content-Type", "application/json")
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			res, err := c.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			first, err := br.ReadString('\n')
			require.NoError(t, err)
			require.Contains(t, first, "data: ")

			stopped := make(chan error, 1)
			start := time.Now()
			go func() { stopped <- p.stop() }()
			require.Eventually(t, func() bool { return p.s.draining.Load() }, 5*time.Second, time.Millisecond)
			rec := httptestRecorder(p.s, "/readyz")
			assert.Equal(t, 503, rec, "/readyz while draining")

			rest, err := io.ReadAll(br)
			if tc.clean {
				require.NoError(t, err)
				assert.Contains(t, string(rest), "[DONE]")
			} else {
				assert.Error(t, err, "the stream past the deadline ended cleanly")
				assert.NotContains(t, string(rest), "[DONE]")
			}
			select {
			case err := <-stopped:
				assert.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not return")
			}
			if !tc.clean {
				assert.Less(t, time.Since(start), 1500*time.Millisecond)
			}
			_, err = http.Get(p.URL + "/healthz")
			assert.Error(t, err, "still accepting after shutdown")
		})
	}
}

// httptestRecorder serves one GET through the handler and returns the
// status.
func httptestRecorder(s *Server, path string) int {
	rec := &statusRecorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", path, nil)
	s.Handler().ServeHTTP(rec, req)
	return rec.status
}

type statusRecorder struct {
	h      http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.h }
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(p), nil
}
func (r *statusRecorder) WriteHeader(s int) { r.status = s }

// TestHealth: /healthz and /readyz answer without a key, and reach no
// provider.
func TestHealth(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, path := range []string{"/healthz", "/readyz"} {
		res, body := p.do("GET", path, "", "")
		assert.Equal(t, 200, res.StatusCode, path)
		assert.NotEmpty(t, body)
	}
	assert.Equal(t, 0, a.Count()+b.Count())
}

// TestLogsCarryNoSecret: the JSON logs of requests with proxy keys,
// provider keys and query strings name none of them.
func TestLogsCarryNoSecret(t *testing.T) {
	a, _, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	a.Enqueue(gatewaytest.Fault{Status: 401, Message: "Incorrect API key provided: key-a"})
	p.do("POST", "/v1/chat/completions?api_key=query-secret", keyAll, fmt.Sprintf(chatBody, "gateway"))
	p.do("POST", "/v1/chat/completions?token=query-secret", "wrong-key", fmt.Sprintf(chatBody, "gateway"))
	p.do("POST", "/v1/chat/completions", keySmall, fmt.Sprintf(chatBody, "gateway"))
	p.do("POST", "/v1/embeddings", keyAll, fmt.Sprintf(`{"model":%q,"input":"x"}`, "nope"))
	p.do("GET", "/v1/models", keyAll, "")
	logs := p.logs.String()
	require.Contains(t, logs, `"msg":"gwproxy request"`)
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	assert.GreaterOrEqual(t, len(lines), 5)
	for _, secret := range []string{keyAll, keySmall, "wrong-key", "key-a", "key-b", "query-secret", "api_key=", "token="} {
		assert.NotContains(t, logs, secret)
	}
	assert.Contains(t, logs, `"key":"all"`, "the key's name is logged")
}

// TestConfigErrors: every bad proxy section is refused at start with the
// field named; the core's errors keep the file's line numbers.
func TestConfigErrors(t *testing.T) {
	good := fmt.Sprintf("proxy:\n  keys:\n    - name: k\n      hash: sha256:%x\nmodels:\n  - target: openai/gpt-4o\n", hashKey(keyAll))
	for _, tc := range []struct {
		name, cfg, want string
		env             map[string]string
	}{
		{"no key at all", "models:\n  - target: openai/gpt-4o\n", "no proxy key", nil},
		{"unknown proxy field", strings.Replace(good, "proxy:\n", "proxy:\n  listn: x\n", 1), "listn", nil},
		{"bad hash", strings.Replace(good, "sha256:", "sha256:zz", 1), "proxy.keys[0].hash", nil},
		{"plain key in the file", strings.Replace(good, "hash: sha256:", "hash: ", 1), "proxy.keys[0].hash", nil},
		{"no name", strings.Replace(good, "name: k", "name: \"\"", 1), "proxy.keys[0].name", nil},
		{"key env unset", strings.Replace(good, fmt.Sprintf("hash: sha256:%x", hashKey(keyAll)), "key_env: NOT_SET", 1), "NOT_SET is not set", nil},
		{"unknown route", strings.Replace(good, "name: k\n", "name: k\n      routes: [nope]\n", 1), `proxy.keys[0].routes[0]: "nope"`, nil},
		{"bad listen", strings.Replace(good, "proxy:\n", "proxy:\n  listen: nowhere\n", 1), "listen address", nil},
		{"reserved provider", good + "providers:\n  - name: gwproxy-origin\n    base_url: http://x/v1\n", "reserved", nil},
		{"core error after the section", good + "strategy: sideways\n", "strategy", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			_, err := newServer(serverConfig{data: []byte(tc.cfg), env: env, log: newLogger(100)})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), keyAll)
		})
	}
	// The env keys work alone, and the core sees the file's lines.
	_, err := newServer(serverConfig{data: []byte("models:\n  - target: openai/gpt-4o\n"), env: func(k string) (string, bool) {
		return map[string]string{envKeys: "k1, k2"}[k], k == envKeys
	}, log: newLogger(100)})
	require.NoError(t, err)
	_, err = gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\nstrategy: sideways\n"))
	require.Error(t, err)
	_, rest, err := splitConfig([]byte(good + "strategy: sideways\n"))
	require.NoError(t, err)
	assert.Equal(t, strings.Count(good, "\n")+1, strings.Count(string(rest), "\n"), "the section's lines are blanked, not removed")
	assert.NotContains(t, string(rest), "sha256")
}
