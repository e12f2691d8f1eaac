package gwtransport

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// effective is what a target ends up with once every level of the
// configuration is applied.
type effective struct {
	MaxRetries   int
	Timeout      time.Duration
	Backoff      Backoff
	MaxAttempts  int
	MaxRetryWait time.Duration
	FirstEvent   time.Duration
	Idle         time.Duration
	Grace        time.Duration
	MaxRest      time.Duration
	VerifyMax    int64
	BodyIdle     time.Duration
}

func effectiveOf(rt *route, t *target) effective {
	return effective{t.maxRetries, t.timeout, t.backoff, rt.s.maxAttempts, rt.s.maxRetryWait, t.firstEvent, rt.s.streamIdle, rt.s.finishGrace, rt.s.maxRest, rt.s.verifyMax, rt.s.bodyIdle}
}

func libraryDefaults() effective {
	return effective{DefaultMaxRetries, DefaultTimeout, DefaultBackoff, DefaultMaxAttempts, DefaultMaxRetryWait, DefaultStreamFirstEvent, DefaultStreamIdleTimeout, DefaultStreamFinishGrace, DefaultMaxRest, DefaultMaxVerifiedBody, DefaultBodyIdle}
}

// inheritField is one setting of the configuration file: its key (under
// defaults, or a model; "backoff.x" is a field of the backoff), a distinct
// value per level (Config defaults, route defaults, model) and how it shows
// in the effective settings.
type inheritField struct {
	key      string
	values   [3]any // defaults, route, model
	perModel bool
	set      func(e *effective, v any)
}

func dur(v any) time.Duration { d, _ := time.ParseDuration(v.(string)); return d }

var inheritFields = []inheritField{
	{"max_retries", [3]any{4, 1, 0}, true, func(e *effective, v any) { e.MaxRetries = v.(int) }},
	{"timeout", [3]any{"11s", "12s", "13s"}, true, func(e *effective, v any) { e.Timeout = dur(v) }},
	{"backoff.initial", [3]any{"1s", "2s", "3s"}, true, func(e *effective, v any) { e.Backoff.Initial = dur(v) }},
	{"backoff.multiplier", [3]any{1.5, 2.5, 3.5}, true, func(e *effective, v any) { e.Backoff.Multiplier = v.(float64) }},
	{"backoff.max", [3]any{"21s", "22s", "23s"}, true, func(e *effective, v any) { e.Backoff.Max = dur(v) }},
	{"backoff.jitter", [3]any{0.1, 0.2, 0.3}, true, func(e *effective, v any) { e.Backoff.Jitter = v.(float64) }},
	{"max_attempts", [3]any{7, 8}, false, func(e *effective, v any) { e.MaxAttempts = v.(int) }},
	{"max_retry_wait", [3]any{"31s", "32s"}, false, func(e *effective, v any) { e.MaxRetryWait = dur(v) }},
	{"stream_first_event", [3]any{"41s", "42s", "0s"}, true, func(e *effective, v any) { e.FirstEvent = dur(v) }},
	{"stream_idle", [3]any{"51s", "52s"}, false, func(e *effective, v any) { e.Idle = dur(v) }},
	{"stream_finish_grace", [3]any{"61s", "62s"}, false, func(e *effective, v any) { e.Grace = dur(v) }},
	{"max_rest", [3]any{"71s", "72s"}, false, func(e *effective, v any) { e.MaxRest = dur(v) }},
	{"max_verified_body", [3]any{81, 0}, false, func(e *effective, v any) { e.VerifyMax = int64(v.(int)) }},
	{"body_idle", [3]any{"91s", "92s"}, false, func(e *effective, v any) { e.BodyIdle = dur(v) }},
}

// put sets field f's value for level into m (a defaults or model map).
func put(m map[string]any, f inheritField, level int) {
	if sub, ok := cutBackoff(f.key); ok {
		b, _ := m["backoff"].(map[string]any)
		if b == nil {
			b = map[string]any{}
			m["backoff"] = b
		}
		b[sub] = f.values[level]
		return
	}
	m[f.key] = f.values[level]
}

func cutBackoff(key string) (string, bool) {
	const p = "backoff."
	if len(key) > len(p) && key[:len(p)] == p {
		return key[len(p):], true
	}
	return "", false
}

// TestConfigInheritsFieldByField: for every setting, set at the Config's
// defaults only, at a route's defaults only, at both, and at a model, with
// every other setting set or not around it. Each level overrides exactly
// the fields it sets; everything else is inherited from the level above.
func TestConfigInheritsFieldByField(t *testing.T) {
	type levels struct {
		global, route, modelB map[string]any
	}
	all := func(level int) map[string]any {
		m := map[string]any{}
		for _, f := range inheritFields {
			if level < 2 || f.perModel {
				put(m, f, level)
			}
		}
		return m
	}
	apply := func(e effective, level int, only *inheritField) effective {
		for _, f := range inheritFields {
			if (only == nil || f.key == only.key) && (level < 2 || f.perModel) {
				f.set(&e, f.values[level])
			}
		}
		return e
	}
	for _, f := range inheritFields {
		f := f
		one := func(level int) map[string]any { m := map[string]any{}; put(m, f, level); return m }
		type want struct{ a, b, c effective } // default route's a; route r's b (model overrides) and c
		lib := libraryDefaults()
		cases := []struct {
			name string
			lv   levels
			want want
		}{
			{"defaults only", levels{one(0), nil, nil},
				want{apply(lib, 0, &f), apply(lib, 0, &f), apply(lib, 0, &f)}},
			{"route only", levels{nil, one(1), nil},
				want{lib, apply(lib, 1, &f), apply(lib, 1, &f)}},
			{"both", levels{one(0), one(1), nil},
				want{apply(lib, 0, &f), apply(lib, 1, &f), apply(lib, 1, &f)}},
			{"route sets it alone, defaults set everything", levels{all(0), one(1), nil},
				want{apply(lib, 0, nil), apply(apply(lib, 0, nil), 1, &f), apply(apply(lib, 0, nil), 1, &f)}},
			{"defaults set it alone, route sets everything else", levels{one(0), without(all(1), f), nil},
				want{apply(lib, 0, &f), apply(apply(lib, 1, nil), 0, &f), apply(apply(lib, 1, nil), 0, &f)}},
		}
		if f.perModel {
			cases = append(cases,
				struct {
					name string
					lv   levels
					want want
				}{"model, under both", levels{all(0), all(1), one(2)},
					want{apply(lib, 0, nil), apply(apply(lib, 1, nil), 2, &f), apply(lib, 1, nil)}},
				struct {
					name string
					lv   levels
					want want
				}{"model, under defaults only", levels{all(0), nil, one(2)},
					want{apply(lib, 0, nil), apply(apply(lib, 0, nil), 2, &f), apply(lib, 0, nil)}},
				struct {
					name string
					lv   levels
					want want
				}{"model only", levels{nil, nil, one(2)},
					want{lib, apply(lib, 2, &f), lib}},
			)
		}
		for _, tc := range cases {
			t.Run(f.key+"/"+tc.name, func(t *testing.T) {
				modelB := map[string]any{"target": "openai/b"}
				for k, v := range tc.lv.modelB {
					modelB[k] = v
				}
				route := map[string]any{"name": "r", "models": []any{modelB, map[string]any{"target": "openai/c"}}}
				if tc.lv.route != nil {
					route["defaults"] = tc.lv.route
				}
				doc := map[string]any{"models": []any{map[string]any{"target": "openai/a"}}, "routes": []any{route}}
				if tc.lv.global != nil {
					doc["defaults"] = tc.lv.global
				}
				y, err := yaml.Marshal(doc)
				require.NoError(t, err)
				cfg, err := LoadConfig(y)
				require.NoError(t, err, "%s", y)
				g, err := compile(nil, []Option{WithConfig(cfg), WithEnv(func(string) (string, bool) { return "", false })})
				require.NoError(t, err)
				gw, r := g.routes["gateway"], g.routes["r"]
				assert.Equal(t, tc.want.a, effectiveOf(gw, gw.targets[0]), "default route, openai/a\n%s", y)
				assert.Equal(t, tc.want.b, effectiveOf(r, r.targets[0]), "route r, openai/b\n%s", y)
				assert.Equal(t, tc.want.c, effectiveOf(r, r.targets[1]), "route r, openai/c\n%s", y)
				// The JSON form means the same.
				j, err := cfg.JSON()
				require.NoError(t, err)
				back, err := LoadConfig(j)
				require.NoError(t, err)
				assert.Equal(t, cfg, back)
			})
		}
	}
}

func without(m map[string]any, f inheritField) map[string]any {
	if sub, ok := cutBackoff(f.key); ok {
		if b, ok := m["backoff"].(map[string]any); ok {
			delete(b, sub)
		}
		return m
	}
	delete(m, f.key)
	return m
}

// TestConfigStrategyIsPerRoute: the top-level strategy is the default
// route's; a named route without one gets the default for its models
// (ordered for a list, weighted for weights), never the default route's.
func TestConfigStrategyIsPerRoute(t *testing.T) {
	tests := []struct {
		doc       string
		gw, route string
	}{
		{"strategy: round_robin\nmodels: [{target: openai/a}]\nroutes:\n  - {name: r, models: [{target: openai/b, weight: 1}, {target: openai/c, weight: 2}]}\n", "round_robin", "weighted"},
		{"strategy: random\nmodels: [{target: openai/a}]\nroutes:\n  - {name: r, models: [{target: openai/b}]}\n", "random", "ordered"},
		{"strategy: random\nmodels: [{target: openai/a}]\nroutes:\n  - {name: r, strategy: lowest_latency, models: [{target: openai/b}]}\n", "random", "lowest_latency"},
		{"models: [{target: openai/a, weight: 1}]\nroutes:\n  - {name: r, models: [{target: openai/b}]}\n", "weighted", "ordered"},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			cfg, err := LoadConfig([]byte(tc.doc))
			require.NoError(t, err)
			g, err := compile(nil, []Option{WithConfig(cfg)})
			require.NoError(t, err)
			assert.Equal(t, tc.gw, g.routes["gateway"].strategy.String())
			assert.Equal(t, tc.route, g.routes["r"].strategy.String())
		})
	}
	// A strategy set in code before the config, and not by the config, is
	// every route's.
	cfg, err := LoadConfig([]byte("models: [{target: openai/a}]\nroutes:\n  - {name: r, models: [{target: openai/b}]}\n"))
	require.NoError(t, err)
	g, err := compile(nil, []Option{WithStrategy(StrategyRandom), WithConfig(cfg)})
	require.NoError(t, err)
	assert.Equal(t, "random", g.routes["r"].strategy.String())
}
