package gwtransport_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestRVCallerConfigNewKeys: the new keys at every level round-trip
// through JSON and YAML, and wrong values are refused naming the path.
func TestRVCallerConfigNewKeys(t *testing.T) {
	doc := `
models:
  - target: openai/gpt-4o
    stream_first_event: 0s
    continuation: ""
  - target: mistral/m
    continuation: prefix
    stream_first_event: 3s
routes:
  - name: cheap
    models:
      - target: openai/gpt-4o-mini
        stream_first_event: 0s
        continuation: continue_final_message
    defaults:
      continuation: prefill
      stream_malformed_limit: 2
      max_verified_body: 0
      body_idle: 0s
      stream_first_event: 0s
defaults:
  continuation: prefill
  stream_malformed_limit: 3
  max_verified_body: 1
  body_idle: 5s
  stream_first_event: 2s
`
	cfg, err := gwtransport.LoadConfig([]byte(doc))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	js, err := cfg.JSON()
	require.NoError(t, err)
	back, err := gwtransport.LoadConfig(js)
	require.NoError(t, err)
	assert.Equal(t, cfg, back)
	ym, err := cfg.YAML()
	require.NoError(t, err)
	back2, err := gwtransport.LoadConfig(ym)
	require.NoError(t, err, string(ym))
	assert.Equal(t, cfg, back2)

	for _, bad := range []struct{ doc, want string }{
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  stream_malformed_limit: \"2\"\n", "defaults.stream_malformed_limit"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  stream_malformed_limit: -1\n", "defaults.stream_malformed_limit"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  stream_malformed_limit: 2.5\n", "defaults.stream_malformed_limit"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  max_verified_body: -1\n", "defaults.max_verified_body"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  max_verified_body: 1.5\n", "defaults.max_verified_body"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  max_verified_body: 99999999999999999999999\n", "defaults.max_verified_body"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  body_idle: -5s\n", "defaults.body_idle"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  body_idle: soon\n", "defaults.body_idle"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  continuation: 1\n", "defaults.continuation"},
		{"models:\n  - target: openai/gpt-4o\ndefaults:\n  continuation: PREFILL\n", "defaults.continuation"},
		{"models:\n  - target: openai/gpt-4o\n    stream_first_event: -1s\n", "models[0].stream_first_event"},
		{"models:\n  - target: openai/gpt-4o\n    continuation: [prefill]\n", "models[0].continuation"},
		{"models:\n  - target: openai/gpt-4o\nroutes:\n  - name: r\n    models:\n      - target: openai/gpt-4o\n        continuation: nope\n", "routes[0].models[0].continuation"},
		{"models:\n  - target: openai/gpt-4o\nroutes:\n  - name: r\n    models:\n      - target: openai/gpt-4o\n    defaults:\n      stream_malformed_limit: 0\n", "routes[0].defaults.stream_malformed_limit"},
	} {
		cfg, err := gwtransport.LoadConfig([]byte(bad.doc))
		if err == nil {
			err = cfg.Validate()
		}
		if assert.Error(t, err, bad.doc) {
			assert.Contains(t, err.Error(), bad.want, bad.doc)
		}
	}
}
