package gwtransport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestInitReportsTargetsThatCannotAuthenticate attacks the Init-time
// credential check: exactly the targets that could never be sent are
// reported (a warning through the logger by default, an error wrapping
// ErrMissingCredentials with WithRequireCredentials), each naming the route,
// the target and the variable to set, never a value. Targets of the client
// provider (served by the installing client's own credentials), keyless
// local providers and providers with a key are never reported.
func TestInitReportsTargetsThatCannotAuthenticate(t *testing.T) {
	const secret = "sk-secret-value-123456"
	cases := []struct {
		name   string
		models []string
		env    map[string]string
		opts   []gwtransport.Option
		want   []string // one line per reported target, in route order
		// warn is what the logger gets: target -> "missing" attribute.
		warn map[string]string
	}{
		{
			name:   "groq without its key",
			models: []string{"openai/gpt-4o", "groq/llama"},
			want:   []string{`gwtransport: missing credentials: route "gateway", target "groq/llama": provider "groq" has no API key (set GROQ_API_KEY)`},
			warn:   map[string]string{"groq/llama": "has no API key (set GROQ_API_KEY)"},
		},
		{
			name:   "several, in route order, each target once",
			models: []string{"xai/grok", "anthropic/claude", "xai/grok-mini"},
			opts:   []gwtransport.Option{gwtransport.WithRoute("gateway-2", []string{"anthropic/claude", "cerebras/llama"})},
			want: []string{
				`gwtransport: missing credentials: route "gateway", target "xai/grok": provider "xai" has no API key (set XAI_API_KEY)`,
				`gwtransport: missing credentials: route "gateway", target "anthropic/claude": provider "anthropic" has no API key (set ANTHROPIC_API_KEY)`,
				`gwtransport: missing credentials: route "gateway", target "xai/grok-mini": provider "xai" has no API key (set XAI_API_KEY)`,
				`gwtransport: missing credentials: route "gateway-2", target "cerebras/llama": provider "cerebras" has no API key (set CEREBRAS_API_KEY)`,
			},
			warn: map[string]string{
				"xai/grok":         "has no API key (set XAI_API_KEY)",
				"anthropic/claude": "has no API key (set ANTHROPIC_API_KEY)",
				"xai/grok-mini":    "has no API key (set XAI_API_KEY)",
				"cerebras/llama":   "has no API key (set CEREBRAS_API_KEY)",
			},
		},
		{
			name:   "azure without endpoint or key",
			models: []string{"azure/gpt-4o"},
			want:   []string{`gwtransport: missing credentials: route "gateway", target "azure/gpt-4o": provider "azure" has no base URL (set AZURE_OPENAI_ENDPOINT) and has no API key (set AZURE_OPENAI_API_KEY)`},
			warn:   map[string]string{"azure/gpt-4o": "has no base URL (set AZURE_OPENAI_ENDPOINT) and has no API key (set AZURE_OPENAI_API_KEY)"},
		},
		{
			name:   "a key pool names every variable",
			models: []string{"pooled/m"},
			opts:   []gwtransport.Option{gwtransport.WithProvider(gwtransport.Provider{Name: "pooled", BaseURL: "https://pooled.example/v1", APIKeyEnv: "POOL_KEY", APIKeysEnv: []string{"POOL_KEY_2", "POOL_KEY_3"}})},
			want:   []string{`gwtransport: missing credentials: route "gateway", target "pooled/m": provider "pooled" has no API key (set one of POOL_KEY, POOL_KEY_2, POOL_KEY_3)`},
			warn:   map[string]string{"pooled/m": "has no API key (set one of POOL_KEY, POOL_KEY_2, POOL_KEY_3)"},
		},
		{
			name:   "a provider with no key source at all",
			models: []string{"bare/m"},
			opts:   []gwtransport.Option{gwtransport.WithProvider(gwtransport.Provider{Name: "bare", BaseURL: "https://bare.example/v1"})},
			want:   []string{`gwtransport: missing credentials: route "gateway", target "bare/m": provider "bare" has no API key (configure APIKey, APIKeys or APIKeyEnv)`},
			warn:   map[string]string{"bare/m": "has no API key (configure APIKey, APIKeys or APIKeyEnv)"},
		},
		{
			name:   "the client provider is served by the client",
			models: []string{"openai/gpt-4o"},
		},
		{
			name:   "a client of another provider says so",
			models: []string{"groq/llama", "openai/gpt-4o"},
			env:    map[string]string{"OPENAI_API_KEY": secret},
			opts:   []gwtransport.Option{gwtransport.WithClientProvider("groq")},
		},
		{
			name:   "keyless local providers",
			models: []string{"ollama/llama3", "vllm/qwen", "lmstudio/qwen", "llamacpp/any"},
		},
		{
			name:   "keys set",
			models: []string{"groq/llama", "deepinfra/m", "azure/gpt-4o"},
			env: map[string]string{"GROQ_API_KEY": secret, "DEEPINFRA_TOKEN": secret,
				"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": secret},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			// Warning by default, through the logger.
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			opts := append([]gwtransport.Option{envOf(env), gwtransport.WithLogger(logger)}, tc.opts...)
			_, err := gwtransport.Init(&http.Client{}, tc.models, opts...)
			require.NoError(t, err)
			got := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if line == "" {
					continue
				}
				var rec map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &rec))
				assert.Equal(t, "WARN", rec["level"])
				assert.Equal(t, "gwtransport: target cannot authenticate; it will be skipped unsent", rec["msg"])
				got[rec["target"].(string)] = rec["missing"].(string)
			}
			want := tc.warn
			if want == nil {
				want = map[string]string{}
			}
			assert.Equal(t, want, got)
			assert.NotContains(t, buf.String(), secret)

			// An error with WithRequireCredentials, from Init,
			// NewTransport and Reconfigure alike.
			strict := append([]gwtransport.Option{envOf(env), gwtransport.WithRequireCredentials()}, tc.opts...)
			_, errInit := gwtransport.Init(&http.Client{}, tc.models, strict...)
			_, errNew := gwtransport.NewTransport(nil, tc.models, strict...)
			tr, err := gwtransport.NewTransport(nil, []string{"ollama/x"}, envOf(nil))
			require.NoError(t, err)
			errRe := gwtransport.Reconfigure(tr, tc.models, strict...)
			for _, err := range []error{errInit, errNew, errRe} {
				if len(tc.want) == 0 {
					require.NoError(t, err)
					continue
				}
				require.Error(t, err)
				assert.True(t, errors.Is(err, gwtransport.ErrMissingCredentials))
				assert.Equal(t, strings.Join(tc.want, "\n"), err.Error())
				assert.NotContains(t, err.Error(), secret)
			}
			if len(tc.want) > 0 {
				// A failed Reconfigure keeps the configuration it had.
				assert.Equal(t, "ollama/x", tr.Stats()[0].Target)
			}
		})
	}
}

// TestKeylessLocalProviderUsesAKeyWhenSet checks both sides of a keyless
// local provider through a real client and server: without the variable the
// attempt carries no Authorization; with it, the key as a Bearer token.
func TestKeylessLocalProviderUsesAKeyWhenSet(t *testing.T) {
	for _, key := range []string{"", "vllm-key-123456"} {
		s := server(t, "vllm", key)
		env := map[string]string{}
		if key != "" {
			env["VLLM_API_KEY"] = key
		}
		caller := server(t, "caller", "")
		tr, err := gwtransport.NewTransport(nil, []string{"vllm/qwen"}, envOf(env), gwtransport.WithRequireCredentials(),
			gwtransport.WithProvider(gwtransport.Provider{Name: "vllm", BaseURL: s.URL}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "caller", BaseURL: caller.URL, Auth: gwtransport.AuthNone}),
			gwtransport.WithClientProvider("caller"))
		require.NoError(t, err)
		hc := &http.Client{Transport: tr}
		res, err := hc.Post(caller.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res.Body.Close()
		hc.CloseIdleConnections()
		require.Equal(t, http.StatusOK, res.StatusCode)
		j := s.Journal()
		require.Len(t, j, 1)
		if key == "" {
			assert.Empty(t, j[0].Header.Get("Authorization"))
		} else {
			// The journal masks secrets; the server accepted the key
			// (it answers 401 to any other).
			assert.NotEmpty(t, j[0].Header.Get("Authorization"))
		}
		assert.Empty(t, caller.Journal())
	}
}

// TestKeyOptionalFromConfig: a configured provider marked key_optional is
// not reported at Init and is sent without credentials; the same provider
// without it is reported, naming its variable.
func TestKeyOptionalFromConfig(t *testing.T) {
	s := server(t, "local", "")
	caller := server(t, "caller", "")
	doc := func(optional bool) []byte {
		y := "providers:\n  - name: local\n    base_url: " + s.URL + "\n    api_key_env: LOCAL_KEY\n"
		if optional {
			y += "    key_optional: true\n"
		}
		y += "  - name: caller\n    base_url: " + caller.URL + "\n    auth: none\nclient_provider: caller\nmodels:\n  - target: local/m\n"
		return []byte(y)
	}
	cfg, err := gwtransport.LoadConfig(doc(false))
	require.NoError(t, err)
	_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg), gwtransport.WithRequireCredentials())
	require.EqualError(t, err, `gwtransport: missing credentials: route "gateway", target "local/m": provider "local" has no API key (set LOCAL_KEY)`)

	cfg, err = gwtransport.LoadConfig(doc(true))
	require.NoError(t, err)
	out, err := cfg.YAML()
	require.NoError(t, err)
	assert.Contains(t, string(out), "key_optional: true")
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg), gwtransport.WithRequireCredentials())
	require.NoError(t, err)
	hc := &http.Client{Transport: tr}
	defer hc.CloseIdleConnections()
	res, err := hc.Post(caller.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, s.Journal(), 1)
	assert.Empty(t, s.Journal()[0].Header.Get("Authorization"))
}
