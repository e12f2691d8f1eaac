package gwtransport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as text in configuration files
// ("500ms", "1m30s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like 500ms or 1m30s", b)
	}
	*d = Duration(v)
	return nil
}

// backoffJSON is Backoff with readable durations.
type backoffJSON struct {
	Initial    Duration `json:"initial"`
	Multiplier float64  `json:"multiplier,omitempty"`
	Max        Duration `json:"max,omitempty"`
	Jitter     float64  `json:"jitter,omitempty"`
}

// MarshalJSON writes the durations as text.
func (b Backoff) MarshalJSON() ([]byte, error) {
	return json.Marshal(backoffJSON{Duration(b.Initial), b.Multiplier, Duration(b.Max), b.Jitter})
}

// UnmarshalJSON reads the durations as text.
func (b *Backoff) UnmarshalJSON(p []byte) error {
	var j backoffJSON
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*b = Backoff{time.Duration(j.Initial), j.Multiplier, time.Duration(j.Max), j.Jitter}
	return nil
}

// Config is everything Init takes, as a file: load it with [LoadConfig] or
// [LoadConfigFile] and install it with Init(clients, nil,
// WithConfig(cfg)). Secrets never appear in it: providers name the
// environment variables that hold their keys. A Config marshals back to the
// same form (JSON, or YAML with [Config.YAML]).
type Config struct {
	// Route is the name of the default route (default "gateway").
	Route string `json:"route,omitempty"`
	// Strategy of the default route: ordered, weighted, round_robin,
	// random, always_first or lowest_latency.
	Strategy string `json:"strategy,omitempty"`
	// Models of the default route, in priority order. Give every model a
	// weight, or none.
	Models []ModelConfig `json:"models,omitempty"`
	// Routes are more named routes.
	Routes []RouteConfig `json:"routes,omitempty"`
	// Defaults apply to every route unless a route overrides them.
	Defaults Defaults `json:"defaults,omitempty"`
	// Providers add providers or override built-in ones.
	Providers []Provider `json:"providers,omitempty"`
	// ClientProvider is the provider of clients with an unknown base URL.
	ClientProvider string `json:"client_provider,omitempty"`
	// TimeZone of the time windows (IANA name, default UTC).
	TimeZone string `json:"time_zone,omitempty"`
	// CircuitBreaker configures the per-target breakers.
	CircuitBreaker *Breaker `json:"circuit_breaker,omitempty"`
}

// RouteConfig is a named route of a Config.
type RouteConfig struct {
	Name     string        `json:"name"`
	Strategy string        `json:"strategy,omitempty"`
	Models   []ModelConfig `json:"models"`
	Defaults Defaults      `json:"defaults,omitempty"`
}

// ModelConfig is one target of a route with its own settings.
type ModelConfig struct {
	// Target is "<provider>/<model>".
	Target     string    `json:"target"`
	Weight     *float64  `json:"weight,omitempty"`
	Alias      string    `json:"alias,omitempty"`
	MaxRetries *int      `json:"max_retries,omitempty"`
	Timeout    *Duration `json:"timeout,omitempty"`
	Backoff    *Backoff  `json:"backoff,omitempty"`
	Messages   []Message `json:"messages,omitempty"`
	Windows    []Window  `json:"windows,omitempty"`
}

// Defaults are the settings that apply to every model of a route unless the
// model overrides them. Absent fields keep the library defaults.
type Defaults struct {
	MaxRetries        *int      `json:"max_retries,omitempty"`
	Timeout           *Duration `json:"timeout,omitempty"`
	Backoff           *Backoff  `json:"backoff,omitempty"`
	MaxAttempts       *int      `json:"max_attempts,omitempty"`
	MaxRetryWait      *Duration `json:"max_retry_wait,omitempty"`
	StreamFirstEvent  *Duration `json:"stream_first_event,omitempty"`
	StreamIdle        *Duration `json:"stream_idle,omitempty"`
	StreamFinishGrace *Duration `json:"stream_finish_grace,omitempty"`
}

// LoadConfigFile reads a configuration file, JSON or YAML.
func LoadConfigFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gwtransport: config: %w", err)
	}
	c, err := LoadConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// LoadConfig parses a configuration, JSON or YAML, and validates it.
// Unknown fields are errors, and every error names the field at fault.
func LoadConfig(data []byte) (*Config, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("gwtransport: config: %w", err)
		}
		j, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("gwtransport: config: %w", err)
		}
		data = j
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("gwtransport: config: %w", err)
	}
	if _, err := c.options(); err != nil {
		return nil, err
	}
	return &c, nil
}

// JSON returns the configuration as indented JSON.
func (c *Config) JSON() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

// YAML returns the configuration as YAML.
func (c *Config) YAML() ([]byte, error) {
	j, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	setBlockStyle(&doc)
	return yaml.Marshal(&doc)
}

// setBlockStyle turns the flow style and the quotes that JSON parses into
// into YAML's plain block style, for a readable file; the encoder still
// quotes a string that would otherwise read as another type.
func setBlockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		setBlockStyle(c)
	}
}

// WithConfig applies a configuration: its defaults, providers, breaker and
// time zone, its default route's models (used when Init is given nil
// models) and its named routes. Options after it override it.
func WithConfig(c *Config) Option {
	return func(s *settings) error {
		if c == nil {
			return errors.New("gwtransport: config is nil")
		}
		opts, err := c.options()
		if err != nil {
			return err
		}
		return s.apply(opts)
	}
}

// options translates the configuration into options, validating each
// field and naming it in errors.
func (c *Config) options() ([]Option, error) {
	var opts []Option
	if c.Route != "" {
		opts = append(opts, WithRouteName(c.Route))
	}
	if c.ClientProvider != "" {
		opts = append(opts, WithClientProvider(c.ClientProvider))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return nil, fmt.Errorf("gwtransport: config: time_zone: %q is not an IANA time zone", c.TimeZone)
		}
		opts = append(opts, WithTimeZone(c.TimeZone))
	}
	if c.CircuitBreaker != nil {
		if err := c.CircuitBreaker.validate(); err != nil {
			return nil, fmt.Errorf("gwtransport: config: circuit_breaker: %w", unprefix(err))
		}
		opts = append(opts, WithCircuitBreaker(*c.CircuitBreaker))
	}
	for i, p := range c.Providers {
		if p.Name == "" {
			return nil, fmt.Errorf("gwtransport: config: providers[%d].name is required", i)
		}
		opts = append(opts, WithProvider(p))
	}
	d, err := c.Defaults.options("defaults")
	if err != nil {
		return nil, err
	}
	opts = append(opts, d...)
	if len(c.Models) > 0 {
		models, per, err := modelOptions("models", c.Models)
		if err != nil {
			return nil, err
		}
		st, err := strategyOption("strategy", c.Strategy)
		if err != nil {
			return nil, err
		}
		opts = append(opts, per...)
		opts = append(opts, st...)
		opts = append(opts, func(s *settings) error { s.defaultModels = models; return nil })
	} else if c.Strategy != "" {
		return nil, errors.New("gwtransport: config: strategy is set but models is empty")
	}
	for i, r := range c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			return nil, fmt.Errorf("gwtransport: config: %s.name is required", field)
		}
		models, per, err := modelOptions(field+".models", r.Models)
		if err != nil {
			return nil, err
		}
		ropts, err := r.Defaults.options(field + ".defaults")
		if err != nil {
			return nil, err
		}
		st, err := strategyOption(field+".strategy", r.Strategy)
		if err != nil {
			return nil, err
		}
		ropts = append(append(ropts, per...), st...)
		opts = append(opts, WithRoute(r.Name, models, ropts...))
	}
	return opts, nil
}

func strategyOption(field, name string) ([]Option, error) {
	if name == "" {
		return nil, nil
	}
	st, err := ParseStrategy(name)
	if err != nil {
		return nil, fmt.Errorf("gwtransport: config: %s: %w", field, unprefix(err))
	}
	return []Option{WithStrategy(st)}, nil
}

// options translates route defaults.
func (d Defaults) options(field string) ([]Option, error) {
	var opts []Option
	check := func(name string, v *Duration) error {
		if v != nil && *v < 0 {
			return fmt.Errorf("gwtransport: config: %s.%s must not be negative", field, name)
		}
		return nil
	}
	for name, v := range map[string]*Duration{"timeout": d.Timeout, "max_retry_wait": d.MaxRetryWait, "stream_first_event": d.StreamFirstEvent, "stream_idle": d.StreamIdle, "stream_finish_grace": d.StreamFinishGrace} {
		if err := check(name, v); err != nil {
			return nil, err
		}
	}
	if d.MaxRetries != nil {
		if *d.MaxRetries < 0 {
			return nil, fmt.Errorf("gwtransport: config: %s.max_retries must not be negative", field)
		}
		opts = append(opts, WithMaxRetries(*d.MaxRetries))
	}
	if d.Timeout != nil {
		opts = append(opts, WithTimeout(time.Duration(*d.Timeout)))
	}
	if d.Backoff != nil {
		if err := d.Backoff.validate(field + ".backoff"); err != nil {
			return nil, fmt.Errorf("gwtransport: config: %w", unprefix(err))
		}
		opts = append(opts, WithBackoff(*d.Backoff))
	}
	if d.MaxAttempts != nil {
		if *d.MaxAttempts < 1 {
			return nil, fmt.Errorf("gwtransport: config: %s.max_attempts must be at least 1", field)
		}
		opts = append(opts, WithMaxAttempts(*d.MaxAttempts))
	}
	if d.MaxRetryWait != nil {
		opts = append(opts, WithMaxRetryWait(time.Duration(*d.MaxRetryWait)))
	}
	if d.StreamFirstEvent != nil || d.StreamIdle != nil {
		fe, idle := Duration(0), Duration(DefaultStreamIdleTimeout)
		if d.StreamFirstEvent != nil {
			fe = *d.StreamFirstEvent
		}
		if d.StreamIdle != nil {
			idle = *d.StreamIdle
		}
		opts = append(opts, WithStreamTimeouts(time.Duration(fe), time.Duration(idle)))
	}
	if d.StreamFinishGrace != nil {
		opts = append(opts, WithStreamFinishGrace(time.Duration(*d.StreamFinishGrace)))
	}
	return opts, nil
}

// modelOptions turns a route's models into the models argument (a list, or
// a weight map when every model has a weight) and per-model options.
func modelOptions(field string, ms []ModelConfig) (any, []Option, error) {
	if len(ms) == 0 {
		return nil, nil, fmt.Errorf("gwtransport: config: %s: at least one model is required", field)
	}
	var (
		list       []string
		weights    = map[string]float64{}
		retries    = map[string]int{}
		timeouts   = map[string]time.Duration{}
		backoffs   = map[string]Backoff{}
		messages   = map[string][]Message{}
		windows    = map[string][]Window{}
		aliases    = map[string]string{}
		nWeighted  int
		firstField string
	)
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if _, _, err := splitTarget(m.Target); err != nil {
			return nil, nil, fmt.Errorf("gwtransport: config: %s.target: %w", f, unprefix(err))
		}
		list = append(list, m.Target)
		if m.Weight != nil {
			nWeighted++
			weights[m.Target] = *m.Weight
		} else if firstField == "" {
			firstField = f
		}
		if m.MaxRetries != nil {
			if *m.MaxRetries < 0 {
				return nil, nil, fmt.Errorf("gwtransport: config: %s.max_retries must not be negative", f)
			}
			retries[m.Target] = *m.MaxRetries
		}
		if m.Timeout != nil {
			if *m.Timeout < 0 {
				return nil, nil, fmt.Errorf("gwtransport: config: %s.timeout must not be negative", f)
			}
			timeouts[m.Target] = time.Duration(*m.Timeout)
		}
		if m.Backoff != nil {
			if err := m.Backoff.validate(f + ".backoff"); err != nil {
				return nil, nil, fmt.Errorf("gwtransport: config: %w", unprefix(err))
			}
			backoffs[m.Target] = *m.Backoff
		}
		if len(m.Messages) > 0 {
			if _, err := encodeMessages(m.Target, m.Messages); err != nil {
				return nil, nil, fmt.Errorf("gwtransport: config: %s.messages: %w", f, unprefix(err))
			}
			messages[m.Target] = m.Messages
		}
		if len(m.Windows) > 0 {
			if _, err := parseWindows(m.Target, m.Windows); err != nil {
				return nil, nil, fmt.Errorf("gwtransport: config: %s.windows: %w", f, unprefix(err))
			}
			windows[m.Target] = m.Windows
		}
		if m.Alias != "" {
			aliases[m.Target] = m.Alias
		}
	}
	var models any = list
	switch {
	case nWeighted == len(ms):
		models = weights
	case nWeighted > 0:
		return nil, nil, fmt.Errorf("gwtransport: config: %s.weight is missing: give every model of a route a weight, or none", firstField)
	}
	opts := []Option{WithModelMaxRetries(retries), WithModelTimeout(timeouts), WithModelBackoff(backoffs),
		WithModelMessages(messages), WithTimeWindows(windows), WithAliases(aliases)}
	return models, opts, nil
}
