package gwtransport_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

const exampleConfig = "examples/config/gateway.yaml"

func TestConfigDrivesInit(t *testing.T) {
	primary := server(t, "primary", "sk-primary")
	backup := server(t, "backup", "")
	cfg, err := gwtransport.LoadConfigFile(exampleConfig)
	require.NoError(t, err)
	client := openaiClient(primary, "sk-primary")
	m := mustInit(t, client, gwtransport.FromConfig, gwtransport.WithConfig(cfg), gwtransport.WithClock(newFakeClock()), envOf(map[string]string{
		"PRIMARY_BASE_URL": primary.URL, "PRIMARY_API_KEY": "sk-primary",
		"BACKUP_BASE_URL": backup.URL, "BACKUP_KEY_1": "bk-1", "BACKUP_KEY_2": "bk-2",
	}))
	assert.Equal(t, []string{"gateway", "gateway-cheap"}, m.Routes())
	assert.Equal(t, []string{"primary/gpt-4o", "backup/llama-3.3-70b"}, m.Models("gateway"))

	primary.Enqueue(gatewaytest.Fault{Status: 503}, gatewaytest.Fault{Status: 503})
	res, raw, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "llama-3.3-70b", res.Model)
	assert.Equal(t, "3", raw.Header.Get(gwtransport.HeaderAttempts), "max_retries: 1 for the primary model")
	j := primary.Journal()
	require.Len(t, j, 2)
	assert.Contains(t, string(j[0].Body), `"messages":[{"role":"system","content":"You are concise."}`)
	jb := backup.Journal()
	require.Len(t, jb, 1)
	assert.Equal(t, gatewaytest.Mask("Bearer bk-1"), jb[0].Header.Get("Authorization"), "the pooled key from BACKUP_KEY_1")

	res, _, err = chat(t, client, "strong")
	require.NoError(t, err)
	assert.Equal(t, "gpt-4o", res.Model, "the alias addresses its target")
}

func TestConfigRoundTrip(t *testing.T) {
	cfg, err := gwtransport.LoadConfigFile(exampleConfig)
	require.NoError(t, err)
	j, err := cfg.JSON()
	require.NoError(t, err)
	fromJSON, err := gwtransport.LoadConfig(j)
	require.NoError(t, err)
	assert.Equal(t, cfg, fromJSON)
	y, err := cfg.YAML()
	require.NoError(t, err)
	fromYAML, err := gwtransport.LoadConfig(y)
	require.NoError(t, err)
	assert.Equal(t, cfg, fromYAML)
	assert.Contains(t, string(j), `"timeout": "20s"`)
	assert.Contains(t, string(y), "initial: 100ms")

	// Secrets set in code never serialize.
	withSecret := *cfg
	withSecret.Providers = []gwtransport.Provider{{Name: "x", BaseURL: "https://x.test/v1", APIKey: "sk-live-1", APIKeys: []string{"sk-live-2"}, Headers: map[string]string{"X-Secret": "s3"}, APIKeyEnv: "X_KEY"}}
	out, err := withSecret.JSON()
	require.NoError(t, err)
	for _, s := range []string{"sk-live-1", "sk-live-2", "s3"} {
		assert.NotContains(t, string(out), s)
	}
	assert.Contains(t, string(out), `"api_key_env": "X_KEY"`)
}

func TestConfigMissingFile(t *testing.T) {
	_, err := gwtransport.LoadConfigFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestConfigWeightsAndRouteDefaults(t *testing.T) {
	cfg, err := gwtransport.LoadConfig([]byte(strings.TrimSpace(`
models:
  - {target: p0/m, weight: 0}
  - {target: p1/m, weight: 1}
defaults:
  max_retries: 0
  stream_first_event: 2s
providers:
  - {name: p0, base_url: "http://127.0.0.1:1/v1", auth: none}
  - {name: p1, base_url_env: P1_URL, auth: none}
`)))
	require.NoError(t, err)
	s := server(t, "p1", "")
	tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(cfg), envOf(map[string]string{"P1_URL": s.URL}))
	require.NoError(t, err)
	f := &fleet{servers: []*gatewaytest.Server{s}, tr: tr, hc: &http.Client{Transport: tr}}
	for i := 0; i < 5; i++ {
		tgt, _ := f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, "p1/m", tgt, "weight 0 is never picked")
	}
}
