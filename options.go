package gwtransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults of the options. Each can be changed globally and, where the option
// has a per-model form, for one model.
const (
	// DefaultRouteName is the model name that routes a request through the
	// gateway.
	DefaultRouteName = "gateway"
	// DefaultMaxRetries is how many times a target is retried after its
	// first attempt, as in the Go SDKs: 2 means up to 3 attempts.
	DefaultMaxRetries = 2
	// DefaultTimeout bounds one attempt, up to its response headers (and its
	// first content event for a stream: keep-alives do not count; the end
	// of a verified non-streamed body).
	DefaultTimeout = 60 * time.Second
	// DefaultMaxAttempts caps the attempts of one request across retries and
	// fallbacks.
	DefaultMaxAttempts = 10
	// DefaultStreamIdleTimeout is the longest the gateway waits on a
	// committed stream's provider for its next bytes (the caller's pauses
	// between reads do not count).
	DefaultStreamIdleTimeout = 30 * time.Second
	// DefaultStreamFinishGrace is how long the gateway waits on a complete
	// stream's provider (it sent [DONE], every choice's finish reason or a
	// Responses terminal event) for more (the usage chunk, [DONE]) or its
	// end, before it ends the stream cleanly.
	DefaultStreamFinishGrace = time.Second
	// DefaultMaxRetryWait is the longest single wait (backoff or Retry-After)
	// the gateway accepts before it fails over instead.
	DefaultMaxRetryWait = 60 * time.Second
	// DefaultMaxBodyBytes is the largest request body the gateway buffers to
	// read its model; larger bodies pass through untouched.
	DefaultMaxBodyBytes = 64 << 20
)

// DefaultBackoff is the backoff used when none is configured: 0.5 s, 1 s,
// 2 s, ... capped at 8 s, each randomised by ±25 %.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Multiplier: 2, Max: 8 * time.Second, Jitter: 0.25}

// Backoff describes the exponential wait between two attempts at the same
// target. The zero value means no wait.
type Backoff struct {
	// Initial is the first wait.
	Initial time.Duration `json:"initial"`
	// Multiplier scales each wait from the previous one; values below 1 are
	// treated as 1.
	Multiplier float64 `json:"multiplier"`
	// Max caps a wait before jitter; zero means no cap.
	Max time.Duration `json:"max"`
	// Jitter randomises each wait by ±Jitter (0.25 = ±25 %); 0 is exact.
	Jitter float64 `json:"jitter"`
}

func (b Backoff) validate(name string) error {
	if b.Initial < 0 || b.Max < 0 || b.Multiplier < 0 || b.Jitter < 0 || b.Jitter > 1 {
		return fmt.Errorf("gwtransport: backoff for %s: durations and multiplier must not be negative and jitter must be in [0, 1]", name)
	}
	return nil
}

// Clock is the source of time for backoff waits, Retry-After dates and the
// live state (breaker cooldowns and probe leases, key rests). Tests inject a
// fake one so no retry waits for real.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

// Now returns the wall-clock time.
func (systemClock) Now() time.Time { return time.Now() }

// Sleep waits on a timer that is stopped when ctx ends first.
func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RandSource supplies the randomness of weighted sampling and jitter.
// Float64 returns a number in [0, 1). It is called concurrently; the values
// [WithRand] receives are wrapped in a mutex, so they need not be safe.
type RandSource interface {
	// Float64 returns a number in [0, 1).
	Float64() float64
}

type globalRand struct{}

// Float64 draws from math/rand/v2's global source.
func (globalRand) Float64() float64 { return rand.Float64() }

type lockedRand struct {
	mu sync.Mutex
	r  RandSource
}

// Float64 draws from the wrapped source under the mutex.
func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// Option configures [Init] and [NewTransport].
type Option func(*settings) error

// settings is the full configuration before compilation into a gateway.
type settings struct {
	routeName       string
	maxRetries      int
	modelMaxRetries map[string]int
	timeout         time.Duration
	modelTimeout    map[string]time.Duration
	backoff         Backoff
	modelBackoff    map[string]Backoff
	newBackOff      func(target string) backoff.BackOff
	modelMessages   map[string][]Message
	maxAttempts     int
	maxRetryWait    time.Duration
	firstEvent      time.Duration
	modelFirstEvent map[string]time.Duration
	streamIdle      time.Duration
	finishGrace     time.Duration
	maxBodyBytes    int64
	providers       []Provider
	clientProvider  string
	baseTransport   http.RoundTripper
	policy          Policy
	clock           Clock
	rand            RandSource
	env             func(string) (string, bool)
	onAttempt       func(Attempt)
	onEvent         func(Event)
	observer        Observer // observer.go
	logger          *slog.Logger
	strategy        Strategy
	aliases         map[string]string
	windows         map[string][]Window
	loc             *time.Location
	breaker         Breaker
	maxRest         time.Duration
	routes          []routeSpec
	defaultModels   any // the default route's models from a Config
	forwardHeaders  []string
	requireCreds    bool // WithRequireCredentials
	// continuation.go: the rescue of broken chat streams.
	noContinuation    bool
	continuation      Continuation
	modelContinuation map[string]Continuation
	malformedLimit    int
	verifyMax         int64         // see WithMaxVerifiedBody
	bodyIdle          time.Duration // see WithBodyIdle
}

// routeSpec is a named route added with WithRoute.
type routeSpec struct {
	name   string
	models any
	opts   []Option
}

// apply runs options in order.
func (s *settings) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// clone copies the settings for a named route; the routes themselves are
// not inherited.
func (s *settings) clone() *settings {
	c := *s
	c.routes = nil
	return &c
}

func defaultSettings() *settings {
	return &settings{
		routeName:      DefaultRouteName,
		maxRetries:     DefaultMaxRetries,
		timeout:        DefaultTimeout,
		backoff:        DefaultBackoff,
		maxAttempts:    DefaultMaxAttempts,
		maxRetryWait:   DefaultMaxRetryWait,
		firstEvent:     DefaultStreamFirstEvent,
		streamIdle:     DefaultStreamIdleTimeout,
		finishGrace:    DefaultStreamFinishGrace,
		malformedLimit: DefaultStreamMalformedLimit,
		maxBodyBytes:   DefaultMaxBodyBytes,
		clientProvider: "openai",
		policy:         DefaultPolicy,
		clock:          SystemClock,
		rand:           globalRand{},
		env:            os.LookupEnv,
		loc:            time.UTC,
		breaker:        DefaultBreaker,
		maxRest:        DefaultMaxRest,
		verifyMax:      DefaultMaxVerifiedBody,
		bodyIdle:       DefaultBodyIdle,
	}
}

// WithRouteName sets the model name that is routed through the gateway
// (default "gateway"). Requests naming any other model that is not a
// configured target pass through untouched.
func WithRouteName(name string) Option {
	return func(s *settings) error {
		if name == "" {
			return errors.New("gwtransport: route name must not be empty")
		}
		s.routeName = name
		return nil
	}
}

// WithMaxRetries sets how many times a target is retried after its first
// attempt (default 2). Zero means a single attempt per target.
func WithMaxRetries(n int) Option {
	return func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("gwtransport: max retries must not be negative, got %d", n)
		}
		s.maxRetries = n
		return nil
	}
}

// WithModelMaxRetries overrides the max retries of some targets, keyed by
// "<provider>/<model>". Targets not in the map keep the global value.
func WithModelMaxRetries(m map[string]int) Option {
	return func(s *settings) error {
		for k, n := range m {
			if n < 0 {
				return fmt.Errorf("gwtransport: max retries for %q must not be negative, got %d", k, n)
			}
		}
		s.modelMaxRetries = m
		return nil
	}
}

// WithTimeout sets the timeout of one attempt (default 60 s): the time to the
// response headers, and for a stream to its first content event
// (keep-alives and lifecycle events do not count), for a verified
// non-streamed answer to the end of its body (see WithMaxVerifiedBody). It never cuts a
// response the caller is already reading. Zero means no per-attempt timeout;
// the caller's context still applies.
func WithTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: timeout must not be negative, got %s", d)
		}
		s.timeout = d
		return nil
	}
}

// WithModelTimeout overrides the attempt timeout of some targets.
func WithModelTimeout(m map[string]time.Duration) Option {
	return func(s *settings) error {
		for k, d := range m {
			if d < 0 {
				return fmt.Errorf("gwtransport: timeout for %q must not be negative, got %s", k, d)
			}
		}
		s.modelTimeout = m
		return nil
	}
}

// WithBackoff sets the wait between attempts at the same target (default
// [DefaultBackoff]).
func WithBackoff(b Backoff) Option {
	return func(s *settings) error {
		if err := b.validate("all models"); err != nil {
			return err
		}
		s.backoff = b
		return nil
	}
}

// WithModelBackoff overrides the backoff of some targets.
func WithModelBackoff(m map[string]Backoff) Option {
	return func(s *settings) error {
		for k, b := range m {
			if err := b.validate(k); err != nil {
				return err
			}
		}
		s.modelBackoff = m
		return nil
	}
}

// WithBackoffPolicy replaces the [Backoff] settings with any
// github.com/cenkalti/backoff/v4 policy. newBackOff is called once per
// request and target; its NextBackOff returning backoff.Stop moves on to the
// next target.
func WithBackoffPolicy(newBackOff func(target string) backoff.BackOff) Option {
	return func(s *settings) error {
		s.newBackOff = newBackOff
		return nil
	}
}

// WithModelMessages sets messages prepended to a request's messages (or to
// the Responses API input) when it is sent to a target, keyed by
// "<provider>/<model>". They are recomputed for every target and never
// accumulate across fallbacks. Roles must be system, developer or user.
func WithModelMessages(m map[string][]Message) Option {
	return func(s *settings) error {
		s.modelMessages = m
		return nil
	}
}

// WithMaxAttempts caps the attempts one request sends across all retries
// and fallbacks (default 10). A target skipped without being sent (no key,
// every key resting) does not count.
func WithMaxAttempts(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("gwtransport: max attempts must be at least 1, got %d", n)
		}
		s.maxAttempts = n
		return nil
	}
}

// WithMaxRetryWait sets the longest single wait before a retry (default
// 60 s). A longer backoff or Retry-After fails over at once instead. A
// single wait is always bounded: d == 0 sets no cap of its own, and the
// wait is then bounded by [WithMaxRest] (default 5 min), so a provider's
// "Retry-After: 31536000" never holds a request for a year. The same cap
// bounds, in total, a request's waits for cooling targets: when every
// target left is excluded (breaker open or probing, keys resting or within
// their KeyInterval, a time window) and the earliest comes back within the
// cap and before the caller's deadline, the request waits for it rather
// than failing with [ErrNoTarget]. d must not be negative.
func WithMaxRetryWait(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: max retry wait must not be negative, got %s", d)
		}
		s.maxRetryWait = d
		return nil
	}
}

// WithStreamTimeouts sets the streaming limits. firstEvent bounds the time
// from sending a streamed request to its first content event (default 15 s;
// 0: the attempt timeout alone applies; see [WithStreamFirstEvent]); a
// target that misses it fails over. idle bounds how
// long a read of a committed stream waits on the provider for its next bytes
// (default 30 s, 0: no limit); a stall ends the stream with [ErrStreamIdle].
// Only time blocked on the provider counts: a caller that pauses between
// reads is never cut off while the provider is prompt. It sets both; to set
// one and keep the other, use [WithStreamFirstEvent] or [WithStreamIdle].
func WithStreamTimeouts(firstEvent, idle time.Duration) Option {
	return func(s *settings) error {
		if firstEvent < 0 || idle < 0 {
			return errors.New("gwtransport: stream timeouts must not be negative")
		}
		s.firstEvent, s.streamIdle = firstEvent, idle
		return nil
	}
}

// WithStreamFinishGrace sets how long a complete stream (it sent [DONE],
// every choice's finish reason, or a Responses terminal event) may keep
// reads waiting on the provider before the gateway ends it cleanly for the
// caller (default 1 s). As for idle, only time blocked on the provider
// counts. The grace runs from completion, and restarts only at an event
// with data other than a keep-alive (the usage chunk, [DONE]): comments,
// empty data, "ping" events and data of a quiet "type" do not extend it,
// so a provider that pings forever still ends within the grace. Zero
// waits for the provider to close, bounded by the idle limit counted the
// same way.
func WithStreamFinishGrace(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: stream finish grace must not be negative, got %s", d)
		}
		s.finishGrace = d
		return nil
	}
}

// WithMaxBodyBytes sets the largest request body buffered to read its model
// (default 64 MiB). A larger body passes through untouched.
func WithMaxBodyBytes(n int64) Option {
	return func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("gwtransport: max body bytes must be positive, got %d", n)
		}
		s.maxBodyBytes = n
		return nil
	}
}

// WithProvider adds a provider or overrides the non-empty fields of a
// built-in one (see [BuiltinProviders]).
func WithProvider(p Provider) Option {
	return func(s *settings) error {
		if p.Name == "" {
			return errors.New("gwtransport: provider name must not be empty")
		}
		s.providers = append(s.providers, p)
		return nil
	}
}

// WithClientProvider names the provider served by clients whose base URL
// matches no configured provider (default "openai"). A request from such a
// client to a target of that provider keeps the client's base URL and
// credentials. The client provider also wins between providers that share
// one base URL; Init refuses two such providers of the same URL style
// (Azure deployments, Azure v1, OpenAI) when it is neither.
func WithClientProvider(name string) Option {
	return func(s *settings) error {
		s.clientProvider = name
		return nil
	}
}

// WithBaseTransport sets the transport that sends an openai-go client's
// attempts at providers other than its own (on another host or the same
// one: the client's own HTTP client, its cookie jar and middleware serve
// only its own provider). The default is http.DefaultTransport; the latest
// Init's wins. For an *http.Client or [NewTransport] the wrapped transport
// is used instead.
func WithBaseTransport(rt http.RoundTripper) Option {
	return func(s *settings) error {
		s.baseTransport = rt
		return nil
	}
}

// WithPolicy replaces [DefaultPolicy], which decides after each attempt
// whether to retry, fail over or stop.
func WithPolicy(p Policy) Option {
	return func(s *settings) error {
		if p == nil {
			return errors.New("gwtransport: policy must not be nil")
		}
		s.policy = p
		return nil
	}
}

// WithClock injects the clock used for backoff waits and Retry-After dates.
func WithClock(c Clock) Option {
	return func(s *settings) error {
		if c == nil {
			return errors.New("gwtransport: clock must not be nil")
		}
		s.clock = c
		return nil
	}
}

// WithRand injects the random source of weighted sampling and jitter. It is
// guarded by a mutex, so a *rand.Rand may be passed as is.
func WithRand(r RandSource) Option {
	return func(s *settings) error {
		if r == nil {
			return errors.New("gwtransport: random source must not be nil")
		}
		s.rand = &lockedRand{r: r}
		return nil
	}
}

// WithEnv replaces os.LookupEnv for reading provider keys and endpoints.
func WithEnv(lookup func(string) (string, bool)) Option {
	return func(s *settings) error {
		if lookup == nil {
			return errors.New("gwtransport: env lookup must not be nil")
		}
		s.env = lookup
		return nil
	}
}

// WithOnAttempt registers a hook called after every attempt, successful or
// not, from the goroutine running the request. It must not block.
func WithOnAttempt(f func(Attempt)) Option {
	return func(s *settings) error {
		s.onAttempt = f
		return nil
	}
}

// WithStrategy sets how the first target and each fallback are chosen
// (default: StrategyOrdered for a list of models, StrategyWeighted for a map
// of weights).
func WithStrategy(st Strategy) Option {
	return func(s *settings) error {
		if !st.set() || (st.name == "custom" && st.custom == nil) {
			return errors.New("gwtransport: strategy must be one of the Strategy variables or a CustomStrategy with a function")
		}
		s.strategy = st
		return nil
	}
}

// WithRoute adds a named route: requests whose model is name are routed
// over models with the options given, applied on top of the gateway's
// (providers, the clock and hooks are shared). Several names can be
// intercepted this way, "gateway" and "gateway-cheap" say, each with its
// own models, strategy, retries and timeouts. models is a []string or a
// map[string]float64 (see [Models]; FromConfig is Init's, not a route's).
func WithRoute[M Models](name string, models M, opts ...Option) Option {
	m := modelsArg(models)
	if m == nil {
		return func(*settings) error {
			return fmt.Errorf("gwtransport: route %q: FromConfig stands for Init's models, not a route's; give the route its own", name)
		}
	}
	return withRoute(name, m, opts)
}

// withRoute adds a named route whose models are a []string, a
// map[string]float64 or nil.
func withRoute(name string, models any, opts []Option) Option {
	return func(s *settings) error {
		if name == "" {
			return errors.New("gwtransport: route name must not be empty")
		}
		s.routes = append(s.routes, routeSpec{name: name, models: models, opts: opts})
		return nil
	}
}

// WithAliases gives targets aliases (msgflux's model_name), keyed by
// "<provider>/<model>": a preference or a request's model may name a target
// by its alias.
func WithAliases(m map[string]string) Option {
	return func(s *settings) error {
		for k, a := range m {
			if a == "" {
				return fmt.Errorf("gwtransport: alias of %q must not be empty", k)
			}
		}
		s.aliases = m
		return nil
	}
}

// WithTimeWindows excludes targets during daily windows, keyed by
// "<provider>/<model>". Windows are checked with the injected clock in the
// time zone of WithTimeZone.
func WithTimeWindows(m map[string][]Window) Option {
	return func(s *settings) error {
		for k, ws := range m {
			if _, err := parseWindows(k, ws); err != nil {
				return err
			}
		}
		s.windows = m
		return nil
	}
}

// WithTimeZone sets the IANA time zone of the time windows ("Europe/Paris";
// default "UTC").
func WithTimeZone(name string) Option {
	return func(s *settings) error {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return fmt.Errorf("gwtransport: time zone %q: %w", name, err)
		}
		s.loc = loc
		return nil
	}
}

// WithCircuitBreaker configures the per-target circuit breaker (default
// [DefaultBreaker]; Breaker{Disabled: true} turns it off).
func WithCircuitBreaker(b Breaker) Option {
	return func(s *settings) error {
		if err := b.validate(); err != nil {
			return err
		}
		s.breaker = b
		return nil
	}
}

// WithOnEvent registers a hook that receives every attempt, fallback,
// breaker change and key state change. It is called from the request's
// goroutine and must not block.
func WithOnEvent(f func(Event)) Option {
	return func(s *settings) error {
		s.onEvent = f
		return nil
	}
}

// WithLogger logs the events with log/slog: attempts at Debug, fallbacks
// at Info, breaker and key changes at Warn. Nothing logged contains a
// credential.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		s.logger = l
		return nil
	}
}
