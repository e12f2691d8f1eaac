package gwtransport_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

const knownProviders = "anthropic, azure, cerebras, deepinfra, deepseek, fireworks, gemini, groq, hyperbolic, llamacpp, lmstudio, mistral, nebius, novita, ollama, openai, openrouter, perplexity, sambanova, together, vllm, xai"

// TestConfigErrorsExact: one case per validation rule, each asserting the
// whole message: the "gwtransport: config: " prefix, the field's path and
// what is wrong, in the right format.
func TestConfigErrorsExact(t *testing.T) {
	const p = "gwtransport: config: "
	tests := []struct{ name, doc, want string }{
		// Types and fields.
		{"unknown field", "models:\n  - target: openai/a\n    wieght: 2\n",
			p + "models[0].wieght: unknown field (want one of: alias, backoff, continuation, max_retries, messages, stream_first_event, target, timeout, weight, windows)"},
		{"unknown top-level field JSON", `{"modles": []}`,
			p + "modles: unknown field (want one of: circuit_breaker, client_provider, defaults, forward_headers, models, providers, route, routes, state, strategy, time_zone)"},
		{"secret field not settable", "providers:\n  - name: x\n    base_url: https://x.test/v1\n    api_key: sk-live-123\n",
			p + "providers[0].api_key: unknown field (want one of: api_key_env, api_keys_env, api_version, api_version_env, auth, base_url, base_url_env, headers_env, key_interval, key_optional, name, style)"},
		{"inline header values", "providers:\n  - name: x\n    headers: {X-Secret: s3cr3t}\n",
			p + "providers[0].headers: unknown field (want one of: api_key_env, api_keys_env, api_version, api_version_env, auth, base_url, base_url_env, headers_env, key_interval, key_optional, name, style)"},
		{"wrong type int", "models:\n  - target: openai/a\n    max_retries: many\n", p + "models[0].max_retries: want an integer, got a string"},
		{"fraction for an int", "defaults: {max_attempts: 1.5}\n", p + "defaults.max_attempts: want an integer, got a number that is not one"},
		{"wrong type int JSON", `{"models":[{"target":"openai/a","max_retries":1.5}]}`, p + "models[0].max_retries: want an integer, got a number that is not one"},
		{"string for a list", "providers:\n  - name: x\n    api_keys_env: sk-live-123\n", p + "providers[0].api_keys_env: want a list, got a string"},
		{"list for a string", "route: [a]\n", p + "route: want a string, got a list"},
		{"JSON number for a string", `{"route": 1}`, p + "route: want a string, got a number"},
		{"not a mapping", "- a\n", p + "want a mapping, got a list"},
		{"bool", "circuit_breaker: {disabled: maybe}\n", p + "circuit_breaker.disabled: want true or false, got a string"},
		// Durations.
		{"bad duration", "defaults:\n  timeout: soon\n", p + `defaults.timeout: not a duration: want a duration like 500ms or 1m30s`},
		{"duration without unit", "defaults:\n  stream_idle: 30\n", p + `defaults.stream_idle: not a duration: want a duration like 500ms or 1m30s`},
		{"duration as a list", "defaults:\n  timeout: [1s]\n", p + "defaults.timeout: want a duration like 500ms or 1m30s, got a list"},
		{"negative duration", "routes:\n  - name: r\n    models: [{target: openai/a}]\n    defaults: {max_retry_wait: -1s}\n", p + "routes[0].defaults.max_retry_wait: must not be negative"},
		{"negative max verified body", "defaults:\n  max_verified_body: -1\n", p + "defaults.max_verified_body: must not be negative"},
		{"fractional max verified body", "defaults:\n  max_verified_body: 1.5\n", p + "defaults.max_verified_body: want an integer, got a number that is not one"},
		{"negative route body idle", "routes:\n  - name: r\n    models: [{target: openai/a}]\n    defaults: {body_idle: -1s}\n", p + "routes[0].defaults.body_idle: must not be negative"},
		{"zero max rest", "defaults:\n  max_rest: 0s\n", p + "defaults.max_rest: must be positive"},
		{"negative route max rest", "routes:\n  - name: r\n    models: [{target: openai/a}]\n    defaults: {max_rest: -1s}\n", p + "routes[0].defaults.max_rest: must be positive"},
		{"credential forwarded", "forward_headers: [X-Request-Id, authorization]\n", p + `forward_headers[1]: forwarded header "authorization" covers Authorization, which never crosses to another provider`},
		{"forwarded prefix covering a credential", "forward_headers: [\"X-*\"]\n", p + `forward_headers[0]: forwarded header "X-*" covers X-Api-Key, which never crosses to another provider`},
		{"negative model timeout", "models:\n  - {target: openai/a, timeout: -5s}\n", p + "models[0].timeout: must not be negative"},
		{"bad key interval", "providers:\n  - {name: x, key_interval: 1h-}\n", p + `providers[0].key_interval: not a duration: want a duration like 500ms or 1m30s`},
		// Weights.
		{"negative weight", "routes:\n  - name: a\n    models: [{target: openai/a}]\n  - name: b\n    models:\n      - {target: openai/x, weight: -1}\n      - {target: openai/y, weight: 1}\n",
			p + "routes[1].models[0].weight: must not be negative"},
		{"NaN weight", "models:\n  - {target: openai/a, weight: .nan}\n", p + "models[0].weight: must be a number, not NaN"},
		{"infinite weight", "models:\n  - {target: openai/a, weight: .inf}\n", p + "models[0].weight: must be finite"},
		{"all-zero weights", "models:\n  - {target: openai/a, weight: 0}\n  - {target: openai/b, weight: 0}\n", p + "models: every weight is 0: at least one must be positive"},
		{"missing weight", "models:\n  - target: openai/a\n    weight: 1\n  - target: openai/b\n", p + "models[1].weight: is missing: give every model of a route a weight, or none"},
		// Targets and providers.
		{"missing target", "models:\n  - weight: 1\n", p + "models[0].target: is required, like openai/gpt-4o"},
		{"bad target", "models:\n  - target: gpt-4o\n", p + `models[0].target: "gpt-4o" must have the form <provider>/<model>`},
		{"unknown provider", "models:\n  - target: opneai/gpt-4o\n", p + `models[0].target: unknown provider "opneai" (known: ` + knownProviders + `); add it under providers`},
		{"unknown provider names the file's", "providers: [{name: local, base_url: 'http://127.0.0.1:1/v1'}]\nroutes:\n  - name: r\n    models: [{target: locl/m}]\n",
			p + `routes[0].models[0].target: unknown provider "locl" (known: anthropic, azure, cerebras, deepinfra, deepseek, fireworks, gemini, groq, hyperbolic, llamacpp, lmstudio, local, mistral, nebius, novita, ollama, openai, openrouter, perplexity, sambanova, together, vllm, xai); add it under providers`},
		{"unknown client provider", "client_provider: nope\n", p + `client_provider: unknown provider "nope" (known: ` + knownProviders + `)`},
		{"duplicate target", "models:\n  - target: openai/a\n  - target: groq/b\n  - target: openai/a\n", p + `models[2].target: "openai/a" is already models[0]`},
		{"duplicate weighted target", "models:\n  - {target: openai/a, weight: 1}\n  - {target: openai/a, weight: 2}\n", p + `models[1].target: "openai/a" is already models[0]`},
		{"alias names another target", "models:\n  - target: openai/a\n  - {target: openai/b, alias: openai/a}\n", p + `models[1].alias: "openai/a" already names models[0]`},
		{"alias is the route", "routes:\n  - name: fast\n    models: [{target: openai/a, alias: fast}]\n", p + `routes[0].models[0].alias: "fast" is the route's name`},
		{"too many models", "models:\n" + manyModels(65), p + "models: at most 64 models per route, got 65"},
		{"empty provider name", "providers:\n  - base_url: https://x.test/v1\n", p + "providers[0].name: must not be empty"},
		{"duplicate provider", "providers:\n  - {name: x}\n  - {name: x}\n", p + `providers[1].name: provider "x" is already providers[0]`},
		{"slash in provider", "providers:\n  - {name: a/b}\n", p + `providers[0].name: must not contain a slash: targets are <provider>/<model>`},
		{"bad auth", "providers:\n  - {name: x, auth: basic}\n", p + `providers[0].auth: unknown auth scheme (want bearer, api-key or none)`},
		{"bad style", "providers:\n  - {name: x, style: azure-v2}\n", p + `providers[0].style: unknown URL style (want openai, azure or azure-v1)`},
		{"relative base URL", "providers:\n  - {name: x, base_url: /v1}\n", p + "providers[0].base_url: must be an absolute URL, like https://host/v1"},
		// Routes and strategies.
		{"unknown strategy", "strategy: fastest\nmodels:\n  - target: openai/a\n", p + `strategy: unknown strategy "fastest" (want ordered, weighted, round_robin, random or lowest_latency)`},
		{"unknown route strategy", "routes:\n  - {name: r, strategy: Ordered, models: [{target: openai/a}]}\n", p + `routes[0].strategy: unknown strategy "Ordered" (want ordered, weighted, round_robin, random or lowest_latency)`},
		{"strategy without models", "strategy: ordered\n", p + "strategy: is set but models is empty"},
		{"empty route name", "routes:\n  - models: [{target: openai/a}]\n", p + "routes[0].name: must not be empty"},
		{"duplicate route name", "routes:\n  - {name: r, models: [{target: openai/a}]}\n  - {name: r, models: [{target: openai/b}]}\n", p + `routes[1].name: route "r" is already routes[0]`},
		{"route named like the default route", "models: [{target: openai/a}]\nroutes:\n  - {name: gateway, models: [{target: openai/b}]}\n", p + `routes[0].name: route "gateway" is already the default route`},
		{"route without models", "routes:\n  - {name: r}\n", p + "routes[0].models: at least one model is required"},
		// Other settings.
		{"negative retries", "routes:\n  - name: r\n    models: [{target: openai/a, max_retries: -1}]\n", p + "routes[0].models[0].max_retries: must not be negative"},
		{"negative default retries", "defaults: {max_retries: -2}\n", p + "defaults.max_retries: must not be negative"},
		{"max attempts", "defaults: {max_attempts: 0}\n", p + "defaults.max_attempts: must be at least 1"},
		{"jitter", "defaults:\n  backoff: {jitter: 1.5}\n", p + "defaults.backoff.jitter: must be between 0 and 1"},
		{"backoff initial", "models:\n  - target: openai/a\n    backoff: {initial: -1s}\n", p + "models[0].backoff.initial: must not be negative"},
		{"backoff unknown field", "defaults:\n  backoff: {inital: 1s}\n", p + "defaults.backoff.inital: unknown field (want one of: initial, jitter, max, multiplier)"},
		{"bad window", "models:\n  - target: openai/a\n    windows: [{start: '25:00', end: '01:00'}]\n", p + `models[0].windows[0].start: "25:00" is not a time of day: want HH:MM, like 23:00`},
		{"empty window", "models:\n  - target: openai/a\n    windows: [{start: '01:00', end: '02:00'}, {start: '03:00', end: '03:00'}]\n", p + "models[0].windows[1]: start and end are both 03:00: an empty or full-day window is ambiguous"},
		{"bad role", "models:\n  - target: openai/a\n    messages: [{role: assistant, content: x}]\n", p + `models[0].messages[0].role: "assistant" is not allowed: want system, developer or user`},
		{"bad breaker", "circuit_breaker:\n  failure_rate: 2\n", p + "circuit_breaker.failure_rate: must be between 0 and 1"},
		{"negative breaker count", "circuit_breaker:\n  window: -1\n", p + "circuit_breaker.window: must not be negative"},
		{"unknown time zone", "time_zone: Mars/Olympus\n", p + `time_zone: "Mars/Olympus" is not an IANA time zone, like Europe/Paris or UTC`},
		// Documents.
		{"YAML duplicate key", "models:\n  - target: openai/a\n    weight: 1\n    weight: 2\n", p + "models[0].weight: duplicate key at line 4:5 (first at line 3:5)"},
		{"YAML duplicate top-level key", "route: a\nroute: b\n", p + "route: duplicate key at line 2:1 (first at line 1:1)"},
		{"JSON duplicate key", "{\"models\": [{\"target\": \"openai/a\",\n  \"target\": \"openai/b\"}]}", p + "models[0].target: duplicate key at line 2:3 (first at line 1:14)"},
		{"YAML second document", "models: [{target: openai/a}]\n---\nmodels: [{target: openai/b}]\n", p + "line 2: a second YAML document (---): want one document"},
		{"YAML empty second document", "models: [{target: openai/a}]\n---\n", p + "line 2: a second YAML document (---): want one document"},
		{"JSON trailing document", "{\"route\": \"a\"}\n{\"route\": \"b\"}\n", p + "line 2:1: trailing data after the JSON document: want one document"},
		{"JSON trailing garbage", "{\"route\": \"a\"} x", p + "line 1:16: trailing data after the JSON document: want one document"},
		{"YAML syntax error keeps the line", "route: a\nmodels:\n\t- target: openai/a\n", p + "yaml: line 3: found character that cannot start any token"},
		{"JSON syntax error line:column", "{\n  \"route\": \"a\",\n  }\n", p + "line 3:3: JSON syntax error: invalid character '}' looking for beginning of object key string"},
		{"JSON truncated", "{\"route\": \"a\"", p + "line 1:14: JSON syntax error: unexpected end of the document"},
		{"merge key", "defaults: {<<: {max_retries: 1}}\n", p + "defaults: line 1:12: keys must be plain names (no merge keys or complex keys)"},
		{"top level not a mapping", "[]", p + "want a mapping, got a list"},
		{"YAML alias bomb", aliasBomb(), p + "l4[7][0][7][0][8]: line 1:34: more than 100000 values (aliases expanded)"},
		{"JSON nested too deeply", `{"x":` + strings.Repeat("[", 40), p + "x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: line 1:38: nested too deeply"},
		{"YAML nested too deeply", "x: " + strings.Repeat("[", 40) + strings.Repeat("]", 40), p + "x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: line 1:36: nested too deeply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gwtransport.LoadConfig([]byte(tc.doc))
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
			for _, secret := range []string{"sk-live-123", "s3cr3t"} {
				assert.NotContains(t, err.Error(), secret, "an error never echoes a value that may be a secret")
			}
		})
	}
	// A file's error also names the file.
	path := filepath.Join(t.TempDir(), "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte("defaults: {max_attempts: 0}\n"), 0o600))
	_, err := gwtransport.LoadConfigFile(path)
	require.EqualError(t, err, "gwtransport: config: defaults.max_attempts: must be at least 1 (in "+path+")")
}

func manyModels(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - target: openai/m%d\n", i)
	}
	return b.String()
}

// TestConfigRouteStreamIdleKeepsFirstEvent: over the wire, a route that
// sets only stream_idle still has the first-event limit of the defaults:
// a provider that opens its stream and stays silent is left after that
// limit (50 ms here, not the 10 s attempt timeout) and the fallback serves.
func TestConfigRouteStreamIdleKeepsFirstEvent(t *testing.T) {
	slow, fast := server(t, "slow", ""), server(t, "fast", "")
	doc := fmt.Sprintf(`
defaults:
  timeout: 10s
  stream_first_event: 50ms
  max_retries: 0
providers:
  - {name: slow, base_url: %q, auth: none}
  - {name: fast, base_url: %q, auth: none}
routes:
  - name: r
    models: [{target: slow/m}, {target: fast/m}]
    defaults:
      stream_idle: 5s
`, slow.URL, fast.URL)
	cfg, err := gwtransport.LoadConfig([]byte(doc))
	require.NoError(t, err)
	var attempts []gwtransport.Attempt
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(cfg), noEnv(),
		gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { attempts = append(attempts, a) }))
	require.NoError(t, err)
	slow.Enqueue(gatewaytest.Fault{FirstEventDelay: 5 * time.Second})
	req, err := http.NewRequest(http.MethodPost, slow.URL+"/chat/completions", strings.NewReader(`{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	start := time.Now()
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	assert.Less(t, time.Since(start), 3*time.Second, "the first-event limit, not the attempt timeout")
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, "fast/m", res.Header.Get(gwtransport.HeaderTarget))
	assert.Contains(t, string(body), "data: [DONE]")
	require.Len(t, attempts, 2)
	assert.Equal(t, "slow/m", attempts[0].Target)
	require.Error(t, attempts[0].Err)
	assert.Equal(t, "attempt timed out after 50ms", attempts[0].Err.Error())
	assert.Equal(t, 1, slow.Count())
	assert.Equal(t, 1, fast.Count())
}

// aliasBomb is a YAML document of a few hundred bytes that expands to 10^9
// values through its aliases.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("l0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "l%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	return b.String()
}

// TestConfigLoadsEveryField: a document setting every field, in YAML and
// in JSON, loads to exactly the expected Config. YAML scalars that look
// like other types (a date, a number) are read as the strings they are.
func TestConfigLoadsEveryField(t *testing.T) {
	yamlDoc := `
route: gw
strategy: weighted
models:
  - target: openai/gpt-4o
    weight: 2
    alias: strong
    max_retries: 1
    timeout: 20s
    backoff: {initial: 100ms, jitter: 0}
    messages: [{role: system, content: Be brief.}]
    windows: [{start: "23:00", end: "05:00"}]
  - {target: az/gpt-4o, weight: 0.5}
routes:
  - name: cheap
    strategy: round_robin
    models: [{target: groq/llama}]
    defaults: {stream_idle: 5s}
defaults:
  max_retries: 3
  timeout: 30s
  backoff: {initial: 1s, multiplier: 1.5, max: 4s, jitter: 0.1}
  max_attempts: 6
  max_retry_wait: 10s
  stream_first_event: 2s
  stream_finish_grace: 500ms
  max_rest: 2m
  max_verified_body: 1048576
  body_idle: 15s
forward_headers: [X-Request-Id, "X-Acme-Trace-*"]
providers:
  - name: az
    base_url_env: AZ_ENDPOINT
    api_key_env: AZ_KEY
    auth: api-key
    style: azure
    api_version: 2024-10-21
    api_keys_env: [AZ_KEY_2]
    key_interval: 1s
    headers_env: {X-Tenant: AZ_TENANT}
client_provider: az
time_zone: Europe/Paris
circuit_breaker: {disabled: false, consecutive_failures: 3, failure_rate: 0.5, window: 10, min_attempts: 4, cooldown: 30s}
`
	d := func(s string) *gwtransport.Duration {
		v, err := time.ParseDuration(s)
		require.NoError(t, err)
		x := gwtransport.Duration(v)
		return &x
	}
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	want := &gwtransport.Config{
		Route: "gw", Strategy: "weighted",
		Models: []gwtransport.ModelConfig{
			{Target: "openai/gpt-4o", Weight: f(2), Alias: "strong", MaxRetries: i(1), Timeout: d("20s"),
				Backoff:  &gwtransport.BackoffConfig{Initial: d("100ms"), Jitter: f(0)},
				Messages: []gwtransport.Message{{Role: "system", Content: "Be brief."}},
				Windows:  []gwtransport.Window{{Start: "23:00", End: "05:00"}}},
			{Target: "az/gpt-4o", Weight: f(0.5)},
		},
		Routes: []gwtransport.RouteConfig{{Name: "cheap", Strategy: "round_robin",
			Models: []gwtransport.ModelConfig{{Target: "groq/llama"}}, Defaults: gwtransport.Defaults{StreamIdle: d("5s")}}},
		Defaults: gwtransport.Defaults{MaxRetries: i(3), Timeout: d("30s"),
			Backoff:     &gwtransport.BackoffConfig{Initial: d("1s"), Multiplier: f(1.5), Max: d("4s"), Jitter: f(0.1)},
			MaxAttempts: i(6), MaxRetryWait: d("10s"), StreamFirstEvent: d("2s"), StreamFinishGrace: d("500ms"), MaxRest: d("2m"),
			MaxVerifiedBody: i(1 << 20), BodyIdle: d("15s")},
		ForwardHeaders: []string{"X-Request-Id", "X-Acme-Trace-*"},
		Providers: []gwtransport.Provider{{Name: "az", BaseURLEnv: "AZ_ENDPOINT", APIKeyEnv: "AZ_KEY", Auth: gwtransport.AuthAPIKey,
			Style: gwtransport.StyleAzure, APIVersion: "2024-10-21", APIKeysEnv: []string{"AZ_KEY_2"},
			KeyInterval: gwtransport.Duration(time.Second), HeadersEnv: map[string]string{"X-Tenant": "AZ_TENANT"}}},
		ClientProvider: "az", TimeZone: "Europe/Paris",
		CircuitBreaker: &gwtransport.Breaker{ConsecutiveFailures: 3, FailureRate: 0.5, Window: 10, MinAttempts: 4, Cooldown: gwtransport.Duration(30 * time.Second)},
	}
	got, err := gwtransport.LoadConfig([]byte(yamlDoc))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	j, err := got.JSON()
	require.NoError(t, err)
	fromJSON, err := gwtransport.LoadConfig(j)
	require.NoError(t, err)
	assert.Equal(t, want, fromJSON)
	assert.Contains(t, string(j), `"jitter": 0`, "an explicit zero is kept: it overrides the inherited jitter")
}

// TestBreakerConfigErrorsNameTheField: every breaker setting a file gets
// wrong is named by its path, in the file's own words.
func TestBreakerConfigErrorsNameTheField(t *testing.T) {
	for doc, want := range map[string]string{
		"circuit_breaker: {cooldown: 48h}\n":                                 "gwtransport: config: circuit_breaker.cooldown: must be between 0s and 24h0m0s: a breaker must recover",
		"circuit_breaker: {window: 20000}\n":                                 "gwtransport: config: circuit_breaker.window: must be at most 10000",
		"circuit_breaker: {failure_rate: 0.5, window: 5, min_attempts: 6}\n": "gwtransport: config: circuit_breaker.min_attempts: 6 is larger than window 5: failure_rate could never open the breaker",
		"circuit_breaker: {failure_rate: 1.5}\n":                             "gwtransport: config: circuit_breaker.failure_rate: must be between 0 and 1",
	} {
		_, err := gwtransport.LoadConfig([]byte(doc))
		require.Error(t, err, doc)
		assert.Equal(t, want, err.Error(), doc)
	}
}
