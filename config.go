package gwtransport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
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
		return fmt.Errorf("%q is not a duration: want a duration like 500ms or 1m30s", b)
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

// Config is what of Init's configuration a file can carry (everything but
// the options that take Go values: the clock, random source, hooks,
// logger, policy, backoff factory, base transport, environment, and
// WithMaxBodyBytes): load it with [LoadConfig] or
// [LoadConfigFile] and install it with Init(clients, [FromConfig],
// WithConfig(cfg)). Secrets never appear in it: providers name the
// environment variables that hold their keys. A Config marshals back to the
// same form (JSON, or YAML with [Config.YAML]).
//
// Settings are inherited field by field: the library defaults, then
// Defaults, then a route's own Defaults, then a model's own settings; each
// level overrides only the fields it sets (a backoff's fields one by one).
type Config struct {
	// Route is the name of the default route (default "gateway").
	Route string `json:"route,omitempty"`
	// Strategy of the default route: ordered, weighted, round_robin,
	// random or lowest_latency (always_first, deprecated, means ordered).
	// Named routes have their own.
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
	// ForwardHeaders are more caller headers that attempts at another
	// provider may carry, as WithForwardHeaders (exact names, or prefixes
	// ending in "*"; credential headers are refused).
	ForwardHeaders []string `json:"forward_headers,omitempty"`
	// State shares live state between replicas (see [StateConfig]);
	// absent, it stays in memory.
	State *StateConfig `json:"state,omitempty"`
}

// RouteConfig is a named route of a Config.
type RouteConfig struct {
	// Name is the model name that selects the route ("gateway-cheap").
	Name string `json:"name"`
	// Strategy of the route (default: ordered, or weighted when the
	// models have weights).
	Strategy string `json:"strategy,omitempty"`
	// Models of the route, in priority order.
	Models []ModelConfig `json:"models"`
	// Defaults override the Config's Defaults for this route, field by
	// field.
	Defaults Defaults `json:"defaults,omitempty"`
}

// ModelConfig is one target of a route with its own settings.
type ModelConfig struct {
	// Target is "<provider>/<model>".
	Target string `json:"target"`
	// Weight for weighted strategies: finite, not negative; give every
	// model of a route a weight, or none.
	Weight *float64 `json:"weight,omitempty"`
	// Alias is another name of the target (see WithAliases).
	Alias string `json:"alias,omitempty"`
	// MaxRetries overrides the route's max retries for this target.
	MaxRetries *int `json:"max_retries,omitempty"`
	// Timeout overrides the route's attempt timeout for this target.
	Timeout *Duration `json:"timeout,omitempty"`
	// StreamFirstEvent overrides the route's stream first-event limit for
	// this target, as WithModelFirstEvent: 0s means no first-event limit
	// (a reasoning model's opt-out), its attempt timeout alone applies.
	StreamFirstEvent *Duration `json:"stream_first_event,omitempty"`
	// Backoff overrides the fields it sets of the route's backoff.
	Backoff *BackoffConfig `json:"backoff,omitempty"`
	// Messages are prepended to the request's messages for this target.
	Messages []Message `json:"messages,omitempty"`
	// Windows are the daily time windows when the target is not used.
	Windows []Window `json:"windows,omitempty"`
	// Continuation is how the target continues an assistant prefill
	// (prefill, prefix, continue_final_message, or "" for none), as
	// WithModelContinuation; absent, the route's default.
	Continuation *Continuation `json:"continuation,omitempty"`
}

// Defaults are the settings that apply to every model of a route unless the
// model overrides them. Absent fields are inherited (from the Config's
// Defaults for a route's, from the library defaults for the Config's).
type Defaults struct {
	// MaxRetries is as WithMaxRetries.
	MaxRetries *int `json:"max_retries,omitempty"`
	// Timeout is as WithTimeout.
	Timeout *Duration `json:"timeout,omitempty"`
	// Backoff overrides the fields it sets of the inherited backoff.
	Backoff *BackoffConfig `json:"backoff,omitempty"`
	// MaxAttempts is as WithMaxAttempts.
	MaxAttempts *int `json:"max_attempts,omitempty"`
	// MaxRetryWait is as WithMaxRetryWait: the longest single wait before a
	// retry; 0s sets no cap of its own, and max_rest then bounds the wait.
	MaxRetryWait *Duration `json:"max_retry_wait,omitempty"`
	// StreamFirstEvent is as WithStreamFirstEvent (default 15s; 0s: no
	// first-event limit, the attempt timeout alone applies).
	StreamFirstEvent *Duration `json:"stream_first_event,omitempty"`
	// StreamIdle is as WithStreamIdle.
	StreamIdle *Duration `json:"stream_idle,omitempty"`
	// StreamFinishGrace is as WithStreamFinishGrace.
	StreamFinishGrace *Duration `json:"stream_finish_grace,omitempty"`
	// MaxRest is as WithMaxRest: the longest rest a Retry-After can give a
	// key or add to a breaker's cooldown.
	MaxRest *Duration `json:"max_rest,omitempty"`
	// Continuation is the continuation capability of every model that
	// does not set its own (see WithModelContinuation).
	Continuation *Continuation `json:"continuation,omitempty"`
	// StreamMalformedLimit is as WithStreamMalformedLimit.
	StreamMalformedLimit *int `json:"stream_malformed_limit,omitempty"`
	// MaxVerifiedBody is as WithMaxVerifiedBody: the largest non-streamed
	// 2xx body, in bytes, read to its end before it is handed over; 0
	// turns verification off.
	MaxVerifiedBody *int `json:"max_verified_body,omitempty"`
	// BodyIdle is as WithBodyIdle.
	BodyIdle *Duration `json:"body_idle,omitempty"`
}

// BackoffConfig is a [Backoff] in a configuration file. Each field it sets
// overrides that field of the inherited backoff; absent fields are
// inherited ([DefaultBackoff] at the top).
type BackoffConfig struct {
	// Initial is the first wait.
	Initial *Duration `json:"initial,omitempty"`
	// Multiplier scales each wait from the previous one.
	Multiplier *float64 `json:"multiplier,omitempty"`
	// Max caps a wait before jitter; 0 means no cap.
	Max *Duration `json:"max,omitempty"`
	// Jitter randomises each wait by ±Jitter, in [0, 1].
	Jitter *float64 `json:"jitter,omitempty"`
}

// over returns b with the fields c sets.
func (c *BackoffConfig) over(b Backoff) Backoff {
	if c == nil {
		return b
	}
	if c.Initial != nil {
		b.Initial = time.Duration(*c.Initial)
	}
	if c.Multiplier != nil {
		b.Multiplier = *c.Multiplier
	}
	if c.Max != nil {
		b.Max = time.Duration(*c.Max)
	}
	if c.Jitter != nil {
		b.Jitter = *c.Jitter
	}
	return b
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

// LoadConfig parses a configuration, JSON (when it starts with "{") or
// YAML, and validates it. It accepts one document, with no duplicate keys
// and no unknown fields. Every error names the field at fault by its path,
// as in "gwtransport: config: routes[1].models[0].weight: must not be
// negative"; syntax errors give the line (and the column, for JSON).
func LoadConfig(data []byte) (*Config, error) {
	n, err := parseConfigDoc(data)
	if err != nil {
		return nil, err
	}
	var c Config
	if n != nil {
		if err := decodeConf(n, reflect.ValueOf(&c).Elem(), ""); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
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
		if err := c.Validate(); err != nil {
			return err
		}
		return s.apply(c.options())
	}
}

// Validate checks every field of the configuration, as LoadConfig does,
// and names the first field at fault by its path:
// "gwtransport: config: routes[1].models[0].weight: must not be negative".
func (c *Config) Validate() error {
	known := map[string]bool{}
	for name := range BuiltinProviders() {
		known[name] = true
	}
	firstProv := map[string]string{}
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		if err := validateProvider(f, p); err != nil {
			return err
		}
		if at, dup := firstProv[p.Name]; dup {
			return errConfig(f+".name", "provider %q is already %s", p.Name, at)
		}
		firstProv[p.Name] = f
		known[p.Name] = true
	}
	v := configValidator{known: known}
	if err := c.State.validate(); err != nil {
		return err
	}
	if c.ClientProvider != "" && !known[c.ClientProvider] {
		return errConfig("client_provider", "unknown provider %q (known: %s)", c.ClientProvider, v.knownList())
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return errConfig("time_zone", "%q is not an IANA time zone, like Europe/Paris or UTC", c.TimeZone)
		}
	}
	if b := c.CircuitBreaker; b != nil {
		if err := validateBreaker("circuit_breaker", *b); err != nil {
			return err
		}
	}
	for i, h := range c.ForwardHeaders {
		if err := checkForwardName(h); err != nil {
			return errConfig(fmt.Sprintf("forward_headers[%d]", i), "%s", strings.TrimPrefix(err.Error(), "gwtransport: "))
		}
	}
	if err := validateDefaults("defaults", c.Defaults); err != nil {
		return err
	}
	routeName := c.Route
	if routeName == "" {
		routeName = DefaultRouteName
	}
	firstRoute := map[string]string{}
	if len(c.Models) > 0 {
		if err := v.models("models", routeName, c.Models); err != nil {
			return err
		}
		firstRoute[routeName] = "the default route"
	}
	if err := validateStrategy("strategy", c.Strategy); err != nil {
		return err
	}
	if c.Strategy != "" && len(c.Models) == 0 {
		return errConfig("strategy", "is set but models is empty")
	}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			return errConfig(f+".name", "must not be empty")
		}
		if at, dup := firstRoute[r.Name]; dup {
			return errConfig(f+".name", "route %q is already %s", r.Name, at)
		}
		firstRoute[r.Name] = f
		if err := validateStrategy(f+".strategy", r.Strategy); err != nil {
			return err
		}
		if err := validateDefaults(f+".defaults", r.Defaults); err != nil {
			return err
		}
		if err := v.models(f+".models", r.Name, r.Models); err != nil {
			return err
		}
	}
	return nil
}

// configValidator checks the models of routes against the known providers.
type configValidator struct{ known map[string]bool }

func (v configValidator) knownList() string {
	names := keysOf(v.known)
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// models checks the models of the route named route.
func (v configValidator) models(field, route string, ms []ModelConfig) error {
	if len(ms) == 0 {
		return errConfig(field, "at least one model is required")
	}
	if len(ms) > maxTargets {
		return errConfig(field, "at most %d models per route, got %d", maxTargets, len(ms))
	}
	names := map[string]string{} // target or alias -> its field
	weighted, positive := 0, false
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m.Target == "" {
			return errConfig(f+".target", "is required, like openai/gpt-4o")
		}
		prov, _, err := splitTarget(m.Target)
		if err != nil {
			return errConfig(f+".target", "%q must have the form <provider>/<model>", m.Target)
		}
		if !v.known[prov] {
			return errConfig(f+".target", "unknown provider %q (known: %s); add it under providers", prov, v.knownList())
		}
		if at, dup := names[m.Target]; dup {
			return errConfig(f+".target", "%q is already %s", m.Target, at)
		}
		names[m.Target] = f
		if m.Weight != nil {
			w := *m.Weight
			switch {
			case math.IsNaN(w):
				return errConfig(f+".weight", "must be a number, not NaN")
			case math.IsInf(w, 0):
				return errConfig(f+".weight", "must be finite")
			case w < 0:
				return errConfig(f+".weight", "must not be negative")
			}
			weighted++
			positive = positive || w > 0
		}
		if m.MaxRetries != nil && *m.MaxRetries < 0 {
			return errConfig(f+".max_retries", "must not be negative")
		}
		if m.Timeout != nil && *m.Timeout < 0 {
			return errConfig(f+".timeout", "must not be negative")
		}
		if m.StreamFirstEvent != nil && *m.StreamFirstEvent < 0 {
			return errConfig(f+".stream_first_event", "must not be negative")
		}
		if err := validateBackoff(f+".backoff", m.Backoff); err != nil {
			return err
		}
		if m.Continuation != nil && !m.Continuation.valid() {
			return errConfig(f+".continuation", "%s", errContinuationValue)
		}
		for k, msg := range m.Messages {
			switch msg.Role {
			case "system", "developer", "user":
			default:
				return errConfig(fmt.Sprintf("%s.messages[%d].role", f, k), "%q is not allowed: want system, developer or user", msg.Role)
			}
		}
		for k, w := range m.Windows {
			wf := fmt.Sprintf("%s.windows[%d]", f, k)
			s, err := parseHHMM(w.Start)
			if err != nil {
				return errConfig(wf+".start", "%q is not a time of day: want HH:MM, like 23:00", w.Start)
			}
			e, err := parseHHMM(w.End)
			if err != nil {
				return errConfig(wf+".end", "%q is not a time of day: want HH:MM, like 05:00", w.End)
			}
			if s == e {
				return errConfig(wf, "start and end are both %s: an empty or full-day window is ambiguous", w.Start)
			}
		}
	}
	for i, m := range ms {
		if m.Alias == "" {
			continue
		}
		f := fmt.Sprintf("%s[%d].alias", field, i)
		if m.Alias == route {
			return errConfig(f, "%q is the route's name", m.Alias)
		}
		if at, dup := names[m.Alias]; dup {
			return errConfig(f, "%q already names %s", m.Alias, at)
		}
		names[m.Alias] = fmt.Sprintf("%s[%d]", field, i)
	}
	for i, m := range ms {
		if m.Target == route {
			return errConfig(fmt.Sprintf("%s[%d].target", field, i), "%q is the route's name", m.Target)
		}
	}
	switch {
	case weighted > 0 && weighted < len(ms):
		for i, m := range ms {
			if m.Weight == nil {
				return errConfig(fmt.Sprintf("%s[%d].weight", field, i), "is missing: give every model of a route a weight, or none")
			}
		}
	case weighted > 0 && !positive:
		return errConfig(field, "every weight is 0: at least one must be positive")
	}
	return nil
}

func validateStrategy(field, name string) error {
	if name == "" {
		return nil
	}
	if _, err := ParseStrategy(name); err != nil {
		return errConfig(field, "%s", strings.TrimPrefix(err.Error(), "gwtransport: "))
	}
	return nil
}

func validateDefaults(field string, d Defaults) error {
	if d.MaxRetries != nil && *d.MaxRetries < 0 {
		return errConfig(field+".max_retries", "must not be negative")
	}
	if d.MaxAttempts != nil && *d.MaxAttempts < 1 {
		return errConfig(field+".max_attempts", "must be at least 1")
	}
	for _, dur := range []struct {
		name string
		v    *Duration
	}{
		{"timeout", d.Timeout}, {"max_retry_wait", d.MaxRetryWait}, {"stream_first_event", d.StreamFirstEvent},
		{"stream_idle", d.StreamIdle}, {"stream_finish_grace", d.StreamFinishGrace}, {"body_idle", d.BodyIdle},
	} {
		if dur.v != nil && *dur.v < 0 {
			return errConfig(field+"."+dur.name, "must not be negative")
		}
	}
	if d.MaxRest != nil && *d.MaxRest <= 0 {
		return errConfig(field+".max_rest", "must be positive")
	}
	if d.Continuation != nil && !d.Continuation.valid() {
		return errConfig(field+".continuation", "%s", errContinuationValue)
	}
	if d.StreamMalformedLimit != nil && *d.StreamMalformedLimit < 1 {
		return errConfig(field+".stream_malformed_limit", "must be at least 1")
	}
	if d.MaxVerifiedBody != nil && *d.MaxVerifiedBody < 0 {
		return errConfig(field+".max_verified_body", "must not be negative")
	}
	return validateBackoff(field+".backoff", d.Backoff)
}

func validateBackoff(field string, b *BackoffConfig) error {
	if b == nil {
		return nil
	}
	if b.Initial != nil && *b.Initial < 0 {
		return errConfig(field+".initial", "must not be negative")
	}
	if b.Max != nil && *b.Max < 0 {
		return errConfig(field+".max", "must not be negative")
	}
	if b.Multiplier != nil && !(*b.Multiplier >= 0 && !math.IsInf(*b.Multiplier, 0)) {
		return errConfig(field+".multiplier", "must be a finite number, not negative")
	}
	if b.Jitter != nil && !(*b.Jitter >= 0 && *b.Jitter <= 1) {
		return errConfig(field+".jitter", "must be between 0 and 1")
	}
	return nil
}

func validateBreaker(field string, b Breaker) error {
	for _, c := range []struct {
		name string
		v    int
	}{{"consecutive_failures", b.ConsecutiveFailures}, {"window", b.Window}, {"min_attempts", b.MinAttempts}} {
		if c.v < 0 {
			return errConfig(field+"."+c.name, "must not be negative")
		}
	}
	if b.Window > maxBreakerWindow {
		return errConfig(field+".window", "must be at most %d", maxBreakerWindow)
	}
	if b.Cooldown < 0 || time.Duration(b.Cooldown) > maxBreakerCooldown {
		return errConfig(field+".cooldown", "must be between 0s and %s: a breaker must recover", maxBreakerCooldown)
	}
	if !(b.FailureRate >= 0 && b.FailureRate <= 1) {
		return errConfig(field+".failure_rate", "must be between 0 and 1")
	}
	if d := b.withDefaults(); b.FailureRate > 0 && !b.Disabled && d.MinAttempts > d.Window {
		return errConfig(field+".min_attempts", "%d is larger than window %d: failure_rate could never open the breaker", d.MinAttempts, d.Window)
	}
	// Anything else the breaker itself refuses, in its own words.
	if err := b.validate(); err != nil {
		return errConfig(field, "%s", strings.TrimPrefix(err.Error(), "gwtransport: circuit breaker: "))
	}
	return nil
}

func validateProvider(field string, p Provider) error {
	if p.Name == "" {
		return errConfig(field+".name", "must not be empty")
	}
	if f := badEnvName(p); f != "" {
		return errConfig(field+"."+f, "is not an environment variable name (want letters, digits and _, not starting with a digit)")
	}
	if strings.Contains(p.Name, "/") {
		return errConfig(field+".name", "must not contain a slash: targets are <provider>/<model>")
	}
	switch p.Auth {
	case "", AuthBearer, AuthAPIKey, AuthNone:
	default:
		return errConfig(field+".auth", "unknown auth scheme (want bearer, api-key or none)")
	}
	switch p.Style {
	case "", StyleOpenAI, StyleAzure, StyleAzureV1:
	default:
		return errConfig(field+".style", "unknown URL style (want openai, azure or azure-v1)")
	}
	if p.BaseURL != "" {
		if u, err := url.Parse(p.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
			return errConfig(field+".base_url", "must be an absolute URL, like https://host/v1")
		}
	}
	if p.KeyInterval < 0 {
		return errConfig(field+".key_interval", "must not be negative")
	}
	for k, env := range p.HeadersEnv {
		if k == "" || env == "" {
			return errConfig(field+".headers_env", "header and variable names must not be empty")
		}
	}
	return nil
}

// options translates a validated configuration into options.
func (c *Config) options() []Option {
	var opts []Option
	if c.Route != "" {
		opts = append(opts, WithRouteName(c.Route))
	}
	if c.ClientProvider != "" {
		opts = append(opts, WithClientProvider(c.ClientProvider))
	}
	if c.TimeZone != "" {
		opts = append(opts, WithTimeZone(c.TimeZone))
	}
	if c.CircuitBreaker != nil {
		opts = append(opts, WithCircuitBreaker(*c.CircuitBreaker))
	}
	if len(c.ForwardHeaders) > 0 {
		opts = append(opts, WithForwardHeaders(c.ForwardHeaders...))
	}
	if c.State.kind() != "" {
		opts = append(opts, c.State.storeOption())
	}
	for _, p := range c.Providers {
		opts = append(opts, WithProvider(p))
	}
	opts = append(opts, c.Defaults.options()...)
	// The top-level strategy is the default route's: named routes do not
	// inherit it. inherited is the strategy before it, restored for them.
	var inherited Strategy
	var own string
	if len(c.Models) > 0 {
		models, per := modelOptions(c.Models)
		opts = append(opts, per...)
		if c.Strategy != "" {
			own = c.Strategy
			st, _ := ParseStrategy(c.Strategy)
			opts = append(opts, func(s *settings) error { inherited = s.strategy; return nil }, WithStrategy(st))
		}
		opts = append(opts, func(s *settings) error { s.defaultModels = models; return nil })
	}
	for _, r := range c.Routes {
		models, per := modelOptions(r.Models)
		var ropts []Option
		if own != "" {
			ropts = append(ropts, func(s *settings) error {
				if s.strategy.name == own && s.strategy.custom == nil {
					s.strategy = inherited
				}
				return nil
			})
		}
		ropts = append(ropts, r.Defaults.options()...)
		ropts = append(ropts, per...)
		if r.Strategy != "" {
			st, _ := ParseStrategy(r.Strategy)
			ropts = append(ropts, WithStrategy(st))
		}
		opts = append(opts, withRoute(r.Name, models, ropts))
	}
	return opts
}

// options translates defaults: one option per field set, so that every
// field not set stays inherited.
func (d Defaults) options() []Option {
	var opts []Option
	dur := func(v *Duration, with func(time.Duration) Option) {
		if v != nil {
			opts = append(opts, with(time.Duration(*v)))
		}
	}
	if d.MaxRetries != nil {
		opts = append(opts, WithMaxRetries(*d.MaxRetries))
	}
	dur(d.Timeout, WithTimeout)
	if d.Backoff != nil {
		b := d.Backoff
		opts = append(opts, func(s *settings) error {
			s.backoff = b.over(s.backoff)
			return nil
		})
	}
	if d.MaxAttempts != nil {
		opts = append(opts, WithMaxAttempts(*d.MaxAttempts))
	}
	dur(d.MaxRetryWait, WithMaxRetryWait)
	dur(d.StreamFirstEvent, WithStreamFirstEvent)
	dur(d.StreamIdle, WithStreamIdle)
	dur(d.StreamFinishGrace, WithStreamFinishGrace)
	dur(d.MaxRest, WithMaxRest)
	if d.Continuation != nil {
		opts = append(opts, withDefaultContinuation(*d.Continuation))
	}
	if d.StreamMalformedLimit != nil {
		opts = append(opts, WithStreamMalformedLimit(*d.StreamMalformedLimit))
	}
	if d.MaxVerifiedBody != nil {
		opts = append(opts, WithMaxVerifiedBody(int64(*d.MaxVerifiedBody)))
	}
	dur(d.BodyIdle, WithBodyIdle)
	return opts
}

// modelOptions turns a route's validated models into the models argument
// (a list, or a weight map when every model has a weight) and per-model
// options. Every per-model map is set, empty or not, so that a named route
// never inherits the default route's per-model settings.
func modelOptions(ms []ModelConfig) (any, []Option) {
	var (
		list     []string
		weights  = map[string]float64{}
		retries  = map[string]int{}
		timeouts = map[string]time.Duration{}
		firsts   = map[string]time.Duration{}
		backoffs = map[string]*BackoffConfig{}
		messages = map[string][]Message{}
		windows  = map[string][]Window{}
		aliases  = map[string]string{}
		conts    = map[string]Continuation{}
	)
	for _, m := range ms {
		list = append(list, m.Target)
		if m.Weight != nil {
			weights[m.Target] = *m.Weight
		}
		if m.MaxRetries != nil {
			retries[m.Target] = *m.MaxRetries
		}
		if m.Timeout != nil {
			timeouts[m.Target] = time.Duration(*m.Timeout)
		}
		if m.StreamFirstEvent != nil {
			firsts[m.Target] = time.Duration(*m.StreamFirstEvent)
		}
		if m.Backoff != nil {
			backoffs[m.Target] = m.Backoff
		}
		if len(m.Messages) > 0 {
			messages[m.Target] = m.Messages
		}
		if len(m.Windows) > 0 {
			windows[m.Target] = m.Windows
		}
		if m.Alias != "" {
			aliases[m.Target] = m.Alias
		}
		if m.Continuation != nil {
			conts[m.Target] = *m.Continuation
		}
	}
	var models any = list
	if len(weights) == len(ms) {
		models = weights
	}
	// A model's backoff overrides the fields it sets of its route's, as
	// the route's stands when this option runs (after the route's
	// defaults).
	modelBackoff := func(s *settings) error {
		m := make(map[string]Backoff, len(backoffs))
		for k, b := range backoffs {
			m[k] = b.over(s.backoff)
		}
		s.modelBackoff = m
		return nil
	}
	return models, []Option{WithModelMaxRetries(retries), WithModelTimeout(timeouts), WithModelFirstEvent(firsts), modelBackoff,
		WithModelMessages(messages), WithTimeWindows(windows), WithAliases(aliases), WithModelContinuation(conts)}
}
