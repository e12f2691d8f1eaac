package gwtransport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFirstEventResolved: the limit each target ends up with, and how it
// combines with the attempt timeout until a stream's first content event
// (the smaller non-zero one; 0 is no limit), for every way to set it.
func TestFirstEventResolved(t *testing.T) {
	env := WithEnv(func(string) (string, bool) { return "", false })
	models := []string{"ollama/a", "ollama/b"}
	tests := []struct {
		name         string
		opts         []Option
		first        [2]time.Duration // resolved first-event limit of a, b
		stream, flat [2]time.Duration // attempt limit of a, b, streamed and not
	}{
		{"defaults: 15 s until the first event", nil,
			[2]time.Duration{15 * time.Second, 15 * time.Second}, [2]time.Duration{15 * time.Second, 15 * time.Second}, [2]time.Duration{time.Minute, time.Minute}},
		{"global 0: the attempt timeout alone", []Option{WithStreamFirstEvent(0)},
			[2]time.Duration{0, 0}, [2]time.Duration{time.Minute, time.Minute}, [2]time.Duration{time.Minute, time.Minute}},
		{"WithStreamTimeouts(0, idle) keeps meaning no first-event limit", []Option{WithStreamTimeouts(0, time.Second)},
			[2]time.Duration{0, 0}, [2]time.Duration{time.Minute, time.Minute}, [2]time.Duration{time.Minute, time.Minute}},
		{"per target 0 opts out, the other keeps the default", []Option{WithModelFirstEvent(map[string]time.Duration{"ollama/a": 0})},
			[2]time.Duration{0, 15 * time.Second}, [2]time.Duration{time.Minute, 15 * time.Second}, [2]time.Duration{time.Minute, time.Minute}},
		{"per target longer than the timeout: the timeout applies", []Option{WithModelFirstEvent(map[string]time.Duration{"ollama/a": 90 * time.Second})},
			[2]time.Duration{90 * time.Second, 15 * time.Second}, [2]time.Duration{time.Minute, 15 * time.Second}, [2]time.Duration{time.Minute, time.Minute}},
		{"per target longer, with a longer timeout", []Option{WithModelFirstEvent(map[string]time.Duration{"ollama/a": 90 * time.Second}), WithModelTimeout(map[string]time.Duration{"ollama/a": 3 * time.Minute})},
			[2]time.Duration{90 * time.Second, 15 * time.Second}, [2]time.Duration{90 * time.Second, 15 * time.Second}, [2]time.Duration{3 * time.Minute, time.Minute}},
		{"a shorter timeout wins", []Option{WithTimeout(5 * time.Second)},
			[2]time.Duration{15 * time.Second, 15 * time.Second}, [2]time.Duration{5 * time.Second, 5 * time.Second}, [2]time.Duration{5 * time.Second, 5 * time.Second}},
		{"no timeout: the first-event limit alone", []Option{WithTimeout(0)},
			[2]time.Duration{15 * time.Second, 15 * time.Second}, [2]time.Duration{15 * time.Second, 15 * time.Second}, [2]time.Duration{0, 0}},
		{"no timeout and per target 0: nothing but the caller's context", []Option{WithTimeout(0), WithModelFirstEvent(map[string]time.Duration{"ollama/b": 0})},
			[2]time.Duration{15 * time.Second, 0}, [2]time.Duration{15 * time.Second, 0}, [2]time.Duration{0, 0}},
		{"per target wins over a later global", []Option{WithModelFirstEvent(map[string]time.Duration{"ollama/a": 2 * time.Second}), WithStreamFirstEvent(4 * time.Second)},
			[2]time.Duration{2 * time.Second, 4 * time.Second}, [2]time.Duration{2 * time.Second, 4 * time.Second}, [2]time.Duration{time.Minute, time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := compile(models, append([]Option{env}, tc.opts...))
			require.NoError(t, err)
			for i, tg := range g.routes["gateway"].targets {
				assert.Equal(t, tc.first[i], tg.firstEvent, "%s first event", tg.name)
				assert.Equal(t, tc.stream[i], tg.attemptLimit(true), "%s streamed", tg.name)
				assert.Equal(t, tc.flat[i], tg.attemptLimit(false), "%s not streamed", tg.name)
			}
		})
	}
	assert.Equal(t, 15*time.Second, DefaultStreamFirstEvent)
}

// TestFirstEventRefused: negative limits and unknown targets are refused,
// naming them.
func TestFirstEventRefused(t *testing.T) {
	env := WithEnv(func(string) (string, bool) { return "", false })
	_, err := compile([]string{"ollama/a"}, []Option{env, WithModelFirstEvent(map[string]time.Duration{"ollama/a": -time.Second})})
	require.EqualError(t, err, `gwtransport: stream first-event limit for "ollama/a" must not be negative, got -1s`)
	_, err = compile([]string{"ollama/a"}, []Option{env, WithModelFirstEvent(map[string]time.Duration{"ollama/b": time.Second})})
	require.EqualError(t, err, `gwtransport: stream first-event limit given for "ollama/b", which is not one of the models`)
	_, err = compile([]string{"ollama/a"}, []Option{env, WithStreamFirstEvent(-time.Second)})
	require.Error(t, err)
}

// TestFirstEventConfig: stream_first_event on a model loads, validates
// with its path, survives a JSON and a YAML round trip, and resolves per
// target, 0s included (no limit for that target).
func TestFirstEventConfig(t *testing.T) {
	doc := `
defaults:
  stream_first_event: 20s
models:
  - target: ollama/reasoner
    stream_first_event: 0s
  - target: ollama/slow
    stream_first_event: 45s
  - target: ollama/plain
routes:
  - name: r
    models:
      - target: ollama/reasoner
`
	cfg, err := LoadConfig([]byte(doc))
	require.NoError(t, err)
	for _, enc := range []func() ([]byte, error){cfg.JSON, cfg.YAML} {
		b, err := enc()
		require.NoError(t, err)
		back, err := LoadConfig(b)
		require.NoError(t, err, "%s", b)
		assert.Equal(t, cfg, back, "%s", b)
	}
	g, err := compile(nil, []Option{WithConfig(cfg), WithEnv(func(string) (string, bool) { return "", false })})
	require.NoError(t, err)
	got := map[string]time.Duration{}
	for _, tg := range g.routes["gateway"].targets {
		got[tg.name] = tg.firstEvent
	}
	assert.Equal(t, map[string]time.Duration{"ollama/reasoner": 0, "ollama/slow": 45 * time.Second, "ollama/plain": 20 * time.Second}, got)
	assert.Equal(t, 20*time.Second, g.routes["r"].targets[0].firstEvent, "a named route does not inherit the default route's per-model limit")

	_, err = LoadConfig([]byte("models:\n  - target: ollama/a\n    stream_first_event: -1s\n"))
	require.EqualError(t, err, "gwtransport: config: models[0].stream_first_event: must not be negative")
	_, err = LoadConfig([]byte("models:\n  - target: ollama/a\n    first_event: 1s\n"))
	require.ErrorContains(t, err, "models[0].first_event: unknown field")
}
