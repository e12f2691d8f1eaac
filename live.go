package gwtransport

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Live state: the one room where a gateway keeps what it learns while it
// runs. Each compiled configuration (NewTransport, Init, Reconfigure) has
// its own, in memory, read and written only here:
//
//	live_breaker.go  circuit breakers: state, failure window, open-until, probe lease, probe watchers
//	live_keys.go     key pools: rests, disablements, last use, rotation
//	live_stats.go    attempt counters and the latency moving average
//	live.go          round-robin positions, and the Store that shares all of it between replicas
//
// The memory state always answers: a request never waits for anything but
// this process's mutexes to learn whether a target is open or a key rests.
// A [Store] (see [WithStore]) adds sharing: the transitions that must be
// atomic across replicas ask it first (under its own time bound), and
// every other change is handed to it to publish; the changes other
// replicas publish come back into this memory state through [Mirror].
// Without a Store nothing is shared and nothing extra runs.

// Store shares a gateway's live state between the replicas of a program,
// such as github.com/gwtransport/gwtransport/redisstore. The gateway binds
// each compiled configuration to it (NewTransport, Init, Reconfigure) and
// keeps its own state in memory (the mirror), which answers every read: a
// Store only decides the transitions that must be atomic across replicas
// and carries the other changes between them.
//
// A Store may have several configurations bound at once (several
// Transports, or a Reconfigure's new configuration before the old one is
// unbound). Reconfigure tells a session whose configuration it replaced,
// when the session implements [StoreUnbinder]; the requests still in
// flight on it keep their mirror.
type Store interface {
	// Bind attaches a compiled configuration. The session's methods are
	// called on the request path and must return within the Store's own
	// bound, answering from the local state (ok false) when it cannot
	// decide in time.
	Bind(l *Layout) (StoreSession, error)
}

// StoreSession is a Store bound to one compiled configuration. Indexes are
// those of its [Layout]. Its methods are safe for concurrent use and never
// block beyond the Store's bound.
type StoreSession interface {
	// NextRoundRobin returns the next position of route's shared
	// round-robin counter; ok false means the gateway uses its own.
	NextRoundRobin(route int) (n uint64, ok bool)
	// AcquireProbe asks for the half-open probe lease of target until the
	// given time, across replicas. granted false with heldUntil set means
	// another replica probes until then; granted true means this replica
	// probes (also when the Store could not decide in time).
	AcquireProbe(target int, until time.Time) (granted bool, heldUntil time.Time)
	// ReleaseProbe frees this replica's probe lease of target without a
	// verdict (the probe was never sent or its caller gave up).
	ReleaseProbe(target int)
	// Publish hands over a change of this replica's state for the other
	// replicas, without waiting (a Store queues it, and may coalesce or
	// drop it).
	Publish(f Fact)
}

// StoreUnbinder is a [StoreSession] that can be told its configuration was
// replaced (Reconfigure): the Store stops applying the other replicas'
// facts to it and may release what only it used. The requests still in
// flight on that configuration may go on calling its methods.
type StoreUnbinder interface {
	// Unbind says the session's configuration is no longer the
	// Transport's.
	Unbind()
}

// FactKind says what a [Fact] reports.
type FactKind uint8

// The kinds of facts.
const (
	// FactBreakerOpen: Target's breaker opened (or its cooldown was
	// extended) until Until.
	FactBreakerOpen FactKind = iota + 1
	// FactBreakerClosed: Target's breaker closed (its probe succeeded).
	FactBreakerClosed
	// FactKeyResting: key Key of Provider rests until Until (429).
	FactKeyResting
	// FactKeyDisabled: key Key of Provider is disabled until Until (401,
	// 403).
	FactKeyDisabled
	// FactLatency: a successful attempt at Target took Latency.
	FactLatency
)

// Fact is one change of live state, as replicas exchange it. Times are
// absolute instants of the gateway's clock ([WithClock]): the clocks of
// two replicas differ, so a Store carries them between replicas as
// durations (how long ago, how long from then) and the receiver adds its
// own now.
type Fact struct {
	// Kind says what changed.
	Kind FactKind
	// Target is the target's index in the Layout (breaker, latency).
	Target int
	// Provider and Key locate an API key (key facts).
	Provider, Key int
	// At is when the change happened.
	At time.Time
	// Until is when an open breaker may probe, or a key comes back.
	Until time.Time
	// Latency is a latency sample (FactLatency).
	Latency time.Duration
}

// Layout describes a compiled configuration to a Store. It never contains
// a credential: keys are named by salted fingerprints.
type Layout struct {
	// Fingerprint identifies the configuration's live-state shape:
	// replicas with the same routes, targets, breakers and keys share
	// state, others do not.
	Fingerprint string
	// Routes are the route names; a route's index names its round-robin
	// counter.
	Routes []string
	// Targets are "<route>/<provider>/<model>" (a target of two routes has
	// two breakers).
	Targets []string
	// Providers are the providers with API key pools.
	Providers []LayoutProvider
	// Mirror applies the other replicas' facts to this configuration's
	// memory state.
	Mirror *Mirror
	// Clock is the gateway's clock ([WithClock]).
	Clock Clock
	// Logger is the gateway's logger ([WithLogger]), nil for none.
	Logger *slog.Logger
}

// LayoutProvider is a provider with an API key pool, as a Layout shows it.
type LayoutProvider struct {
	// Name is the provider's name.
	Name string
	// Keys are the fingerprints of its keys, in pool order: the first 16
	// bytes, in hex, of SHA-256 over the layout's fingerprint and the key.
	Keys []string
}

// WithStore shares the gateway's live state (breakers, key rests,
// round-robin positions, latency) through s, such as a
// github.com/gwtransport/gwtransport/redisstore store. Without it the
// state lives in this process's memory only.
func WithStore(s Store) Option {
	return func(st *settings) error {
		if s == nil {
			return errors.New("gwtransport: WithStore: nil store")
		}
		st.store = s
		return nil
	}
}

// StoreFactory makes a Store from a configuration file's state section.
type StoreFactory func(c *StateConfig) (Store, error)

var (
	storeMu        sync.RWMutex
	storeFactories = map[string]StoreFactory{}
)

// storeImports names the package that registers each known kind.
var storeImports = map[string]string{"redis": "github.com/gwtransport/gwtransport/redisstore"}

// RegisterStore makes a kind of Store available to configuration files, as
// database/sql drivers register: redisstore registers "redis" in its init.
// It panics when kind is registered twice or f is nil, as
// database/sql.Register does (a program's wiring error).
func RegisterStore(kind string, f StoreFactory) {
	storeMu.Lock()
	defer storeMu.Unlock()
	if f == nil {
		panic("gwtransport: RegisterStore: nil factory for " + kind)
	}
	if _, dup := storeFactories[kind]; dup {
		panic("gwtransport: RegisterStore called twice for " + kind)
	}
	storeFactories[kind] = f
}

// StateConfig is the "state" section of a configuration file: where live
// state is shared. Empty, it stays in memory.
type StateConfig struct {
	// Redis shares it through Redis or Valkey (import
	// github.com/gwtransport/gwtransport/redisstore).
	Redis *RedisConfig `json:"redis,omitempty"`
}

// RedisConfig is the Redis section of a [StateConfig]. The password never
// appears in it: PasswordEnv names the variable that holds it.
type RedisConfig struct {
	// Addr is host:port (default "127.0.0.1:6379"); a port is required.
	Addr string `json:"addr,omitempty"`
	// DB is the database number, 0 to 15.
	DB int `json:"db,omitempty"`
	// Prefix starts every key (default "gwtransport").
	Prefix string `json:"prefix,omitempty"`
	// Username for Redis ACLs, if any.
	Username string `json:"username,omitempty"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `json:"password_env,omitempty"`
	// Timeout bounds every Redis call on the request path (default 10ms).
	Timeout Duration `json:"timeout,omitempty"`
}

// maxRedisDB is the largest database number a configuration file may
// name: Redis has 16 databases unless its "databases" setting says more
// (redisstore.WithDB takes any).
const maxRedisDB = 15

// kind names the configured store, "" for memory.
func (c *StateConfig) kind() string {
	if c != nil && c.Redis != nil {
		return "redis"
	}
	return ""
}

// validate checks the section, naming the field.
func (c *StateConfig) validate() error {
	if c == nil || c.Redis == nil {
		return nil
	}
	r := c.Redis
	if r.DB < 0 || r.DB > maxRedisDB {
		return errConfig("state.redis.db", "must be 0 to %d (Redis's default 16 databases), got %d", maxRedisDB, r.DB)
	}
	if r.Addr != "" {
		host, port, err := net.SplitHostPort(r.Addr)
		if err != nil {
			return errConfig("state.redis.addr", "must be host:port, got %q", r.Addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return errConfig("state.redis.addr", "must be host:port with a port from 1 to 65535, got %q", r.Addr)
		}
	}
	if r.Timeout < 0 {
		return errConfig("state.redis.timeout", "must not be negative, got %s", time.Duration(r.Timeout))
	}
	return nil
}

// storeOption makes the Store a configuration file names.
func (c *StateConfig) storeOption() Option {
	return func(s *settings) error {
		kind := c.kind()
		if kind == "" {
			return nil
		}
		storeMu.RLock()
		f := storeFactories[kind]
		storeMu.RUnlock()
		if f == nil {
			return fmt.Errorf("gwtransport: state.%s: no %s store is registered: import _ %q", kind, kind, storeImports[kind])
		}
		st, err := f(c)
		if err != nil {
			return fmt.Errorf("gwtransport: state.%s: %w", kind, err)
		}
		s.store = st
		return nil
	}
}

// Mirror is a configuration's memory state as a Store sees it: the facts
// other replicas publish are applied to it. Its methods ignore indexes out
// of range.
type Mirror struct {
	g *gateway
}

// Apply applies another replica's fact. A breaker fact older than the
// local breaker's last change is ignored; rests only ever extend. Its
// times must be instants of this gateway's clock (a Store converts what
// another replica sent, whose clock is not this one's). An end no local
// transition could set is cut to the longest this configuration allows:
// a breaker's max(Cooldown, WithMaxRest), a key's rest WithMaxRest, a
// key's disablement 10 minutes, from now; junk from the Store never keeps
// a target or a key out longer.
func (m *Mirror) Apply(f Fact) {
	g := m.g
	now := g.s.clock.Now()
	switch f.Kind {
	case FactBreakerOpen, FactBreakerClosed, FactLatency:
		if f.Target < 0 || f.Target >= len(g.live) {
			return
		}
		t := g.live[f.Target]
		switch f.Kind {
		case FactBreakerOpen:
			until := capUntil(now, f.Until, max(time.Duration(t.breaker.cfg.Cooldown), m.maxRest()))
			t.breaker.remoteOpen(now, capAt(now, f.At), until)
		case FactBreakerClosed:
			t.breaker.remoteClose(capAt(now, f.At))
		case FactLatency:
			// A sample beyond the attempt timeout is no sample of this
			// configuration's: cut to it.
			if f.Latency > 0 {
				t.stats.sample(min(f.Latency, t.probeLease()))
			}
		}
	case FactKeyResting, FactKeyDisabled:
		if f.Provider < 0 || f.Provider >= len(g.pools) {
			return
		}
		limit := m.maxRest()
		if f.Kind == FactKeyDisabled {
			limit = keyDisabledFor
		}
		g.pools[f.Provider].remoteRest(f.Key, f.Kind == FactKeyDisabled, capUntil(now, f.Until, limit))
	}
}

// maxRest is the longest rest a Retry-After gives here (WithMaxRest).
func (m *Mirror) maxRest() time.Duration {
	if r := m.g.s.maxRest; r > 0 {
		return r
	}
	return DefaultMaxRest
}

// capUntil bounds an end another replica sent to now+limit.
func capUntil(now, until time.Time, limit time.Duration) time.Time {
	if lim := now.Add(limit); until.After(lim) {
		return lim
	}
	return until
}

// capAt keeps another replica's instant of a change from being in this
// replica's future (which would make every later local change look older).
func capAt(now, at time.Time) time.Time {
	if at.After(now) {
		return now
	}
	return at
}

// ProbeFreed says another replica's probe of target ended without a
// verdict: this replica may probe at once.
func (m *Mirror) ProbeFreed(target int) {
	if target >= 0 && target < len(m.g.live) {
		m.g.live[target].breaker.remoteFreed()
	}
}

// ProbeTaken says another replica took target's probe lease for d (its
// attempt timeout): until then (at most this replica's own lease length
// from now) this replica waits for that probe's verdict rather than asking
// the Store, so that one probe stays out even if the Store lost the lease.
func (m *Mirror) ProbeTaken(target int, d time.Duration) {
	if target < 0 || target >= len(m.g.live) || d <= 0 {
		return
	}
	t := m.g.live[target]
	d = min(d, t.probeLease())
	now := m.g.s.clock.Now()
	t.breaker.remoteTaken(now, now.Add(d))
}

// ProbeHeld says another replica holds target's probe lease for d (at
// most this replica's own lease length from now), the breaker having
// opened at `at`: a replica that joins (or resynchronises) while that probe
// is out learns that the breaker is half-open and waits for the probe's
// verdict, unless its breaker changed after `at`.
func (m *Mirror) ProbeHeld(target int, at time.Time, d time.Duration) {
	if target < 0 || target >= len(m.g.live) || d <= 0 {
		return
	}
	t := m.g.live[target]
	d = min(d, t.probeLease())
	now := m.g.s.clock.Now()
	t.breaker.remoteHeld(now, capAt(now, at), now.Add(d))
}

// Facts returns this replica's standing facts: open breakers, stamped
// with when they opened (so that an old opening never counts as newer than
// another replica's later closing), and the keys resting or disabled. A
// Store writes them back after a reconnection.
func (m *Mirror) Facts() []Fact {
	g := m.g
	now := g.s.clock.Now()
	var out []Fact
	for i, t := range g.live {
		if at, until, ok := t.breaker.openFact(now); ok {
			out = append(out, Fact{Kind: FactBreakerOpen, Target: i, At: at, Until: until})
		}
	}
	for pi, p := range g.pools {
		for _, ks := range p.stats(now) {
			switch ks.State {
			case "resting":
				out = append(out, Fact{Kind: FactKeyResting, Provider: pi, Key: ks.Index, At: now, Until: ks.Until})
			case "disabled":
				out = append(out, Fact{Kind: FactKeyDisabled, Provider: pi, Key: ks.Index, At: now, Until: ks.Until})
			}
		}
	}
	return out
}

// bindStore binds the configuration to its Store, if any, and gives each
// piece of live state its share of the session.
func (g *gateway) bindStore() error {
	st := g.s.store
	if st == nil {
		return nil
	}
	l := &Layout{Mirror: &Mirror{g: g}, Clock: g.s.clock, Logger: g.s.logger}
	h := sha256.New()
	for _, rt := range g.order {
		l.Routes = append(l.Routes, rt.name)
		fmt.Fprintf(h, "route %q %s\n", rt.name, rt.strategy.name)
		for _, t := range rt.targets {
			l.Targets = append(l.Targets, rt.name+"/"+t.name)
			g.live = append(g.live, t)
			c := t.breaker.cfg
			fmt.Fprintf(h, "target %q %v %d %v %d %d %d %d\n", t.name, c.Disabled, c.ConsecutiveFailures, c.FailureRate, c.Window, c.MinAttempts, c.Cooldown, t.probeLease())
		}
	}
	names := keysOf(g.providers)
	sort.Strings(names)
	var pools []*provider
	for _, n := range names {
		if p := g.providers[n]; p.pool != nil && g.used(p) {
			pools = append(pools, p)
			fmt.Fprintf(h, "provider %q %d %d\n", n, p.pool.size(), p.pool.interval)
		}
	}
	l.Fingerprint = hex.EncodeToString(h.Sum(nil))[:16]
	for _, p := range pools {
		lp := LayoutProvider{Name: p.name}
		for _, k := range p.pool.keys {
			sum := sha256.Sum256([]byte(l.Fingerprint + "\x00" + k.secret))
			lp.Keys = append(lp.Keys, hex.EncodeToString(sum[:16]))
		}
		l.Providers = append(l.Providers, lp)
		g.pools = append(g.pools, p.pool)
	}
	sess, err := st.Bind(l)
	if err != nil {
		return fmt.Errorf("gwtransport: binding the live state store: %w", err)
	}
	if sess == nil {
		return nil
	}
	g.session = sess
	// The Store may apply facts already (its resynchronisation runs in the
	// background): the shares are set under the locks its facts take.
	for i, rt := range g.order {
		rt.rr.share = sess
		rt.rr.index = i
	}
	for i, t := range g.live {
		t.breaker.mu.Lock()
		t.breaker.share, t.breaker.index = sess, i
		t.breaker.mu.Unlock()
		t.stats.share, t.stats.index = sess, i
	}
	for i, p := range g.pools {
		p.mu.Lock()
		p.share, p.index = sess, i
		p.mu.Unlock()
	}
	return nil
}

// unbindStore tells the Store, if it wants to know, that this
// configuration was replaced.
func (g *gateway) unbindStore() {
	if u, ok := g.session.(StoreUnbinder); ok {
		u.Unbind()
	}
}

// used reports whether some route targets p.
func (g *gateway) used(p *provider) bool {
	for _, rt := range g.order {
		for _, t := range rt.targets {
			if t.prov == p {
				return true
			}
		}
	}
	return false
}

// atomicCounter is a round-robin position, shared through the Store when
// there is one.
type atomicCounter struct {
	n     atomic.Uint64
	share StoreSession
	index int
}

func (c *atomicCounter) next() uint64 {
	if c.share != nil {
		if n, ok := c.share.NextRoundRobin(c.index); ok {
			return n
		}
	}
	return c.n.Add(1) - 1
}

// String describes a fact for logs and tests.
func (f Fact) String() string {
	kinds := map[FactKind]string{FactBreakerOpen: "breaker-open", FactBreakerClosed: "breaker-closed", FactKeyResting: "key-resting", FactKeyDisabled: "key-disabled", FactLatency: "latency"}
	k, ok := kinds[f.Kind]
	if !ok {
		k = "kind" + strconv.Itoa(int(f.Kind))
	}
	return fmt.Sprintf("%s target=%d provider=%d key=%d until=%s latency=%s", k, f.Target, f.Provider, f.Key, f.Until.UTC().Format(time.RFC3339Nano), f.Latency)
}
