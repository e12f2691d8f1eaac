package gwtransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewConfigFirstEventLevels: stream_first_event from the config file
// at each level: defaults 100ms; a route's defaults 500ms; a model's 0s
// lifts it. A first event at 300 ms fails over under defaults, is served
// under the route's 500 ms and under the model's 0s.
func TestReviewConfigFirstEventLevels(t *testing.T) {
	cases := []struct {
		name     string
		yaml     string
		wantPrim bool
	}{
		{"defaults", `
route: gateway
models: [{target: openai/gpt-4o}, {target: mistral/m}]
defaults: {stream_first_event: 100ms, timeout: 2s}
`, false},
		{"model-zero", `
route: gateway
models: [{target: openai/gpt-4o, stream_first_event: 0s}, {target: mistral/m}]
defaults: {stream_first_event: 100ms, timeout: 2s}
`, true},
		{"route-defaults", `
route: gateway
models: []
defaults: {stream_first_event: 100ms, timeout: 2s}
routes:
  - name: gateway
    models: [{target: openai/gpt-4o}, {target: mistral/m}]
    defaults: {stream_first_event: 500ms}
`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := gwtransport.LoadConfig([]byte(tc.yaml))
			if err != nil {
				t.Skipf("config form not accepted: %v", err)
			}
			p := server(t, "primary", "key-p")
			f := server(t, "fallback", "key-f")
			c := openaiClient(p, "key-p")
			mustInit(t, c, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg),
				gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: f.URL, APIKey: "key-f"}))
			p.Enqueue(gatewaytest.Fault{FirstEventDelay: 300 * time.Millisecond})
			_, raw, err := streamChat(t, context.Background(), c, "gateway")
			require.NoError(t, err)
			want := "mistral/m"
			if tc.wantPrim {
				want = "openai/gpt-4o"
			}
			assert.Equal(t, want, raw.Header.Get("X-Gwtransport-Target"))
		})
	}
}
