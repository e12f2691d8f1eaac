package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gwtransport/gwtransport"
)

// Defaults of a Store.
const (
	// DefaultAddr is the Redis address when none is given.
	DefaultAddr = "127.0.0.1:6379"
	// DefaultPrefix starts every key and the channel.
	DefaultPrefix = "gwtransport"
	// DefaultTimeout bounds every Redis call on the request path.
	DefaultTimeout = 10 * time.Millisecond
	// DefaultRetry is how often an unreachable Redis is tried again.
	DefaultRetry = time.Second
	// DefaultQueue bounds the changes waiting to be written.
	DefaultQueue = 4096
	// DefaultLatencyEvery is the least time between two latency samples
	// a replica publishes for one target.
	DefaultLatencyEvery = time.Second
)

// Lifetimes of the keys: every key expires.
const (
	// rrTTL is how long an unused round-robin counter lives.
	rrTTL = 24 * time.Hour
	// factMargin is how long a fact's key outlives its end.
	factMargin = time.Minute
	// maxFactSpan is the longest span a fact may have: one read from Redis
	// or the channel beyond it is junk and ignored (within it, the mirror
	// bounds it further by the local configuration).
	maxFactSpan = 24 * time.Hour
	// errLogEvery is the least time between two logs of the same kind of
	// error Redis replies (WRONGTYPE, OOM...).
	errLogEvery = time.Minute
)

func init() {
	gwtransport.RegisterStore("redis", configuredStore)
}

// configuredStore is the Store of a configuration file's state section:
// one per distinct section, made at its first use and kept while a
// configuration uses it, so that compiling the same file again
// (Reconfigure, a gwproxy reload) binds the new configuration to the same
// Store rather than opening one more connection pool each time, and two
// files naming one section share it (each configuration its own session).
// When the last configuration using it is replaced (unbound), it is
// closed.
func configuredStore(c *gwtransport.StateConfig) (gwtransport.Store, error) {
	if c == nil || c.Redis == nil {
		return nil, errors.New("redisstore: the state section has no redis")
	}
	key := fmt.Sprintf("%+v", *c.Redis)
	configured.Lock()
	defer configured.Unlock()
	if s, ok := configured.stores[key]; ok {
		s.handed++
		return s, nil
	}
	s, err := FromConfig(c)
	if err != nil {
		return nil, err
	}
	if configured.stores == nil {
		configured.stores = map[string]*Store{}
	}
	s.cfgKey, s.handed = key, 1
	configured.stores[key] = s
	return s, nil
}

// configured are the Stores made for configuration files, by their state
// section.
var configured struct {
	sync.Mutex
	stores map[string]*Store
}

// CloseConfigured closes the Stores made for configuration files (a
// configuration's "state: {redis: ...}"), which otherwise live as long as
// a configuration uses them (one replaced by Reconfigure no longer does;
// a Transport merely dropped still does). A configuration compiled after
// it makes a new one.
func CloseConfigured() error {
	configured.Lock()
	stores := configured.stores
	configured.stores = nil
	configured.Unlock()
	var errs []error
	for _, s := range stores {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// FromConfig makes a Store from a configuration file's state section; the
// password comes from the variable state.redis.password_env names.
func FromConfig(c *gwtransport.StateConfig) (*Store, error) {
	if c == nil || c.Redis == nil {
		return nil, errors.New("redisstore: the state section has no redis")
	}
	r := c.Redis
	opts := []Option{WithAddr(r.Addr), WithDB(r.DB), WithPrefix(r.Prefix), WithUsername(r.Username)}
	if r.PasswordEnv != "" {
		opts = append(opts, WithPasswordEnv(r.PasswordEnv))
	}
	if r.Timeout > 0 {
		opts = append(opts, WithTimeout(time.Duration(r.Timeout)))
	}
	return New(opts...)
}

// Option configures a Store.
type Option func(*config) error

type config struct {
	addr, username, prefix       string
	password                     secret
	db                           int
	timeout, retry, latencyEvery time.Duration
	queue                        int
	logger                       *slog.Logger
	hooks                        []redis.Hook
}

// secret is a password: however it is printed (%v, %+v, %#v, %s), it
// shows as [redacted].
type secret string

// String implements fmt.Stringer.
func (secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (secret) GoString() string { return `"[redacted]"` }

// Format implements fmt.Formatter.
func (secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// WithAddr sets the Redis address, host:port (default 127.0.0.1:6379).
func WithAddr(addr string) Option {
	return func(c *config) error {
		if addr == "" {
			return nil
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return fmt.Errorf("redisstore: address must be host:port, got %q", addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("redisstore: address %q: port must be 1 to 65535", addr)
		}
		c.addr = addr
		return nil
	}
}

// WithDB selects the Redis database.
func WithDB(db int) Option {
	return func(c *config) error {
		if db < 0 {
			return fmt.Errorf("redisstore: db must not be negative, got %d", db)
		}
		c.db = db
		return nil
	}
}

// WithPrefix starts every key and the channel with prefix (default
// "gwtransport").
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix != "" {
			c.prefix = prefix
		}
		return nil
	}
}

// WithUsername sets the Redis ACL user.
func WithUsername(u string) Option {
	return func(c *config) error { c.username = u; return nil }
}

// WithPasswordEnv reads the Redis password from the environment variable
// name; an unset variable is an error. The password is never logged.
func WithPasswordEnv(name string) Option {
	return func(c *config) error {
		v, ok := os.LookupEnv(name)
		if !ok {
			return fmt.Errorf("redisstore: password variable %s is not set", name)
		}
		c.password = secret(v)
		return nil
	}
}

// WithPassword sets the Redis password (prefer [WithPasswordEnv]).
func WithPassword(p string) Option {
	return func(c *config) error { c.password = secret(p); return nil }
}

// WithTimeout bounds every Redis call on the request path (default 10 ms):
// past it the request goes on with this replica's own state.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("redisstore: timeout must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRetry sets how often an unreachable Redis is tried again (default
// 1 s).
func WithRetry(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("redisstore: retry interval must be positive, got %s", d)
		}
		c.retry = d
		return nil
	}
}

// WithQueue bounds the changes waiting to be written (default 4096);
// changes past it are dropped and counted (see [Store.Stats]).
func WithQueue(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("redisstore: queue must be positive, got %d", n)
		}
		c.queue = n
		return nil
	}
}

// WithLatencyEvery sets the least time between two latency samples a
// replica publishes for one target (default 1 s; the samples between are
// its own): every sample published reaches every replica.
func WithLatencyEvery(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("redisstore: latency interval must not be negative, got %s", d)
		}
		c.latencyEvery = d
		return nil
	}
}

// WithLogger sets the logger of outages (default: the gateway's, see
// gwtransport.WithLogger).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithHook adds a go-redis hook to the client (to count or trace the
// commands).
func WithHook(h redis.Hook) Option {
	return func(c *config) error { c.hooks = append(c.hooks, h); return nil }
}

// Store shares a gateway's live state through Redis. Make it with [New],
// give it to one Transport with gwtransport.WithStore, and Close it when
// done.
//
// The gateway's own memory state (the mirror) answers every read. Two
// transitions ask Redis first, each within the timeout ([WithTimeout]): the
// half-open probe lease of a target (one replica probes at a time; a lease
// with an expiry) and round-robin positions (shared counters). When Redis
// does not answer in time, or is down, the replica's own answer stands.
// The other changes (a breaker opened until T or closed, a key resting or
// disabled until T, latency samples) are queued, coalesced, written and
// published without waiting; the other replicas apply them to their
// mirrors as they arrive. Failure counting (consecutive failures, the
// failure-rate window) stays per replica: counting every attempt in
// Redis would cost a round trip per attempt, and the first replica to trip
// opens the breaker for all.
//
// Redis unreachable (at the start or later): requests go on with the local
// state, the outage is logged once, Redis is tried again in the
// background, and when it answers the replica resynchronises (reads the
// shared breakers and rests into its mirror, writes its own). A wrong
// password is such an outage too, logged with Redis's error; call
// [Store.Ping] to fail fast at startup instead.
//
// Several configurations may be bound to one Store (several Transports
// given it): each has its own session, namespace (its fingerprint) and
// facts. A configuration replaced by Reconfigure is unbound: the other
// replicas' facts are no longer applied to it.
type Store struct {
	cfg    config
	client *redis.Client
	token  string // this replica's id
	rr     *redis.Script
	probe  *redis.Script
	free   *redis.Script
	setMax *redis.Script
	closeB *redis.Script

	sessMu   sync.RWMutex
	sessions []*session // the bound configurations, in binding order
	// cfgKey is the state section a configuration file's Store was made
	// for ("" for a Store made with New); handed counts the compilations
	// it was handed to that have not bound yet (see configuredStore).
	cfgKey string
	handed int
	down   atomic.Bool   // the last command (or ping) failed: the request path stays local
	outage atomic.Bool   // an outage was logged and its end was not
	leaseN atomic.Uint64 // probe leases taken, for their ids
	// The request path's overruns (real clock, ns): the first of the
	// current run of overruns (none answering between), 0 for none; the
	// latest; and until when the request path stays local without asking
	// (one overrun makes the calls just after it local too, so that the
	// overruns of one request never add up).
	firstOverrun, lastOverrun, slowUntil atomic.Int64
	upAt                                 atomic.Int64 // when (real clock, ns) Redis last answered after an outage

	subscribed   atomic.Bool  // the subscription is up
	wanted, done atomic.Int64 // resynchronisations asked for, and the latest done

	mu      sync.Mutex
	pending map[slot]pendingFact
	order   []slot
	latest  map[slot]time.Time // when each target's latest latency sample was queued
	wake    chan struct{}
	resync  chan struct{}

	errMu     sync.Mutex
	errLogged map[string]time.Time // when each kind of error reply was last logged

	drops, errs, slow, published, received, resyncs atomic.Int64

	ps     *redis.PubSub // the other replicas' changes
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stats are a Store's counters.
type Stats struct {
	// Dropped counts changes dropped because the queue was full.
	Dropped int64
	// Errors counts failed Redis calls.
	Errors int64
	// Slow counts request-path calls that overran the timeout (each went
	// on with the replica's own state; Redis was not marked down).
	Slow int64
	// Published and Received count the changes sent to and applied from
	// the other replicas.
	Published, Received int64
	// Resyncs counts the resynchronisations (at Bind, after a
	// reconnection or a dropped subscription).
	Resyncs int64
}

// options are the go-redis options of the Store's client.
func (c *config) options() *redis.Options {
	return &redis.Options{
		Addr: c.addr, Username: c.username, Password: string(c.password), DB: c.db,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // the request path never retries; the background does
		DialTimeout:           time.Second,
		DialerRetries:         1,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		DisableIdentity:       true,
	}
}

// New returns a Store. It does not wait for Redis: it connects in the
// background (see [Store.Ping]).
func New(opts ...Option) (*Store, error) {
	c := config{addr: DefaultAddr, prefix: DefaultPrefix, timeout: DefaultTimeout, retry: DefaultRetry, queue: DefaultQueue, latencyEvery: DefaultLatencyEvery}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	client := redis.NewClient(c.options())
	for _, h := range c.hooks {
		client.AddHook(h)
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	s := &Store{
		cfg: c, client: client, token: hex.EncodeToString(tok[:]),
		rr:        redis.NewScript(luaRoundRobin),
		probe:     redis.NewScript(luaProbe),
		free:      redis.NewScript(luaFree),
		setMax:    redis.NewScript(luaSetMax),
		closeB:    redis.NewScript(luaClose),
		pending:   map[slot]pendingFact{},
		latest:    map[slot]time.Time{},
		wake:      make(chan struct{}, 1),
		resync:    make(chan struct{}, 1),
		errLogged: map[string]time.Time{},
	}
	// Redis is taken to answer until a call or the subscription says
	// otherwise: the first requests ask it (under the bound) rather than
	// each new replica starting its round-robin at the first target.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ps = client.Subscribe(s.ctx, s.channel())
	s.wg.Add(3)
	go s.writer()
	go s.maintainer()
	go s.subscriber()
	return s, nil
}

// Ping checks that Redis answers (with the given credentials) and, when
// it does, resynchronises at once. Call it at startup to fail fast on a
// wrong address or password.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: %s: %w", s.cfg.addr, err)
	}
	s.up()
	return nil
}

// Close stops the Store's background work and closes its connections.
// Changes still queued are dropped.
func (s *Store) Close() error {
	s.cancel()
	_ = s.ps.Close() // ends a Receive blocked reading
	s.wg.Wait()
	return s.client.Close()
}

// Format prints the Store's address, database and prefix, never its
// password (whatever the verb: %v, %+v, %#v, %s).
func (s *Store) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "redisstore.Store{addr: %q, db: %d, prefix: %q, password: %s}", s.cfg.addr, s.cfg.db, s.cfg.prefix, s.cfg.password)
}

// String describes the Store without its password.
func (s *Store) String() string { return fmt.Sprint(s) }

// GoString describes the Store without its password.
func (s *Store) GoString() string { return fmt.Sprint(s) }

// Client returns the go-redis client (to add hooks, or inspect keys).
func (s *Store) Client() *redis.Client { return s.client }

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	return Stats{Dropped: s.drops.Load(), Errors: s.errs.Load(), Slow: s.slow.Load(), Published: s.published.Load(), Received: s.received.Load(), Resyncs: s.resyncs.Load()}
}

// Connected reports whether Redis answers, the replica is subscribed to
// the other replicas' changes, and no resynchronisation is due.
func (s *Store) Connected() bool {
	return !s.down.Load() && s.subscribed.Load() && s.done.Load() == s.wanted.Load()
}

// askResync asks the maintainer for a resynchronisation.
func (s *Store) askResync() {
	s.wanted.Add(1)
	signal(s.resync)
}

// session is the Store bound to one configuration.
type session struct {
	s      *Store
	l      *gwtransport.Layout
	ns     string   // <prefix>:<fingerprint>
	rrKeys []string // per route
	bKeys  []string // per target: breaker open-until
	cKeys  []string // per target: breaker closed at (a closing is recoverable at a resynchronisation)
	pKeys  []string // per target: probe lease
	kKeys  [][2][]string
	keyIdx []map[string]int // per provider: a key's index by its fingerprint

	mu     sync.Mutex
	leases []string // per target: the id of this replica's probe lease in Redis, "" for none
}

// Bind implements gwtransport.Store.
func (s *Store) Bind(l *gwtransport.Layout) (gwtransport.StoreSession, error) {
	ns := s.cfg.prefix + ":" + l.Fingerprint
	ss := &session{s: s, l: l, ns: ns, leases: make([]string, len(l.Targets))}
	for i := range l.Routes {
		ss.rrKeys = append(ss.rrKeys, ns+":rr:"+strconv.Itoa(i))
	}
	for i := range l.Targets {
		ss.bKeys = append(ss.bKeys, ns+":b:"+strconv.Itoa(i))
		ss.pKeys = append(ss.pKeys, ns+":p:"+strconv.Itoa(i))
		ss.cKeys = append(ss.cKeys, ns+":c:"+strconv.Itoa(i))
	}
	for pi, p := range l.Providers {
		var ks [2][]string
		idx := map[string]int{}
		for i, fp := range p.Keys {
			ks[0] = append(ks[0], ns+":kr:"+strconv.Itoa(pi)+":"+fp)
			ks[1] = append(ks[1], ns+":kd:"+strconv.Itoa(pi)+":"+fp)
			idx[fp] = i
		}
		ss.kKeys = append(ss.kKeys, ks)
		ss.keyIdx = append(ss.keyIdx, idx)
	}
	// Several configurations may be bound at once (two configuration
	// files naming one state section; a reload, until the replaced
	// configuration is unbound): each has its session, its namespace and
	// its facts.
	if s.cfgKey != "" {
		configured.Lock()
		s.handed = max(s.handed-1, 0)
		configured.Unlock()
	}
	s.sessMu.Lock()
	s.sessions = append(s.sessions, ss)
	s.sessMu.Unlock()
	s.askResync()
	return ss, nil
}

// Unbind implements gwtransport.StoreUnbinder: the configuration was
// replaced. Its facts are no longer applied; the changes its requests in
// flight still make are written while a configuration with the same
// fingerprint is bound (a reload of the same file). A configuration
// file's Store that no configuration uses any more is closed.
func (ss *session) Unbind() {
	s := ss.s
	s.sessMu.Lock()
	for i, o := range s.sessions {
		if o == ss {
			s.sessions = append(s.sessions[:i:i], s.sessions[i+1:]...)
			break
		}
	}
	unused := len(s.sessions) == 0
	s.sessMu.Unlock()
	if unused && s.cfgKey != "" {
		configured.Lock()
		if configured.stores[s.cfgKey] != s || s.handed > 0 || len(s.bound()) > 0 {
			configured.Unlock()
			return
		}
		delete(configured.stores, s.cfgKey)
		configured.Unlock()
		_ = s.Close()
	}
}

// bound returns the bound sessions.
func (s *Store) bound() []*session {
	s.sessMu.RLock()
	defer s.sessMu.RUnlock()
	return append([]*session(nil), s.sessions...)
}

// isBound reports whether ss, or a session with its fingerprint, is bound.
func (s *Store) isBound(ss *session) bool {
	s.sessMu.RLock()
	defer s.sessMu.RUnlock()
	for _, o := range s.sessions {
		if o == ss || o.l.Fingerprint == ss.l.Fingerprint {
			return true
		}
	}
	return false
}

func (s *Store) logger() *slog.Logger {
	if s.cfg.logger != nil {
		return s.cfg.logger
	}
	for _, ss := range s.bound() {
		if ss.l.Logger != nil {
			return ss.l.Logger
		}
	}
	return nil
}

// fail records that Redis is unreachable; an outage is logged once, as
// soon as there is a logger (a Store made before its Transport logs the
// outage at the first failure after Bind).
func (s *Store) fail(err error) {
	s.errs.Add(1)
	s.down.Store(true)
	l := s.logger()
	if l != nil && s.outage.CompareAndSwap(false, true) {
		l.Warn("redisstore: Redis unreachable; live state stays local until it answers", "addr", s.cfg.addr, "error", err.Error())
	}
}

// failed sorts a failed call's error: Redis's reply refusing a command
// (WRONGTYPE, OOM...) is logged once per kind per errLogEvery, and Redis
// stays reachable; the request-path bound overrun (requestPath) makes only
// that call local; anything else is an outage.
func (s *Store) failed(err error, requestPath bool) {
	if s.ctx.Err() != nil {
		return
	}
	var re redis.Error
	var ne net.Error
	switch {
	case errors.As(err, &re) && !errors.Is(err, redis.ErrClosed):
		s.errs.Add(1)
		kind, _, _ := strings.Cut(err.Error(), " ")
		now := time.Now()
		s.errMu.Lock()
		last, seen := s.errLogged[kind]
		logIt := !seen || now.Sub(last) >= errLogEvery
		if logIt {
			s.errLogged[kind] = now
		}
		s.errMu.Unlock()
		if l := s.logger(); logIt && l != nil {
			l.Warn("redisstore: Redis refused a command; live state stays local for it", "addr", s.cfg.addr, "error", err.Error())
		}
	case requestPath && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()):
		s.slow.Add(1)
		now := time.Now().UnixNano()
		s.slowUntil.Store(now + int64(s.cfg.timeout))
		first, last := s.firstOverrun.Load(), s.lastOverrun.Swap(now)
		if first == 0 || now-last > int64(s.overrunOutage()) {
			s.firstOverrun.Store(now) // a new run of overruns
			return
		}
		if now-first >= int64(s.overrunOutage()) {
			s.fail(err) // calls overran for a while, none answering: Redis is stuck
		}
	default:
		s.fail(err)
	}
}

// overrunOutage is how long request-path calls may overrun their bound
// with none answering in time before Redis is declared down (a stopped
// or stuck Redis); a shorter overrun only makes its own calls local.
func (s *Store) overrunOutage() time.Duration { return max(10*s.cfg.timeout, 100*time.Millisecond) }

// up says Redis answers: it logs the end of an outage and asks for a
// resynchronisation, whose success marks Redis reachable for the request
// path.
func (s *Store) up() {
	s.upAt.Store(time.Now().UnixNano())
	if s.outage.CompareAndSwap(true, false) {
		if l := s.logger(); l != nil {
			l.Info("redisstore: Redis reachable again; resynchronising", "addr", s.cfg.addr)
		}
	}
	s.askResync()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// call runs f under the request-path bound; false when Redis is down, did
// not answer in time, or refused.
func (s *Store) call(f func(ctx context.Context) error) bool {
	if s.down.Load() || time.Now().UnixNano() < s.slowUntil.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.failed(err, true)
		return false
	}
	s.firstOverrun.Store(0)
	return true
}

// NextRoundRobin implements gwtransport.StoreSession.
func (ss *session) NextRoundRobin(route int) (uint64, bool) {
	var n int64
	ok := ss.s.call(func(ctx context.Context) error {
		var err error
		n, err = ss.s.rr.Run(ctx, ss.s.client, []string{ss.rrKeys[route]}, rrTTL.Milliseconds()).Int64()
		return err
	})
	return uint64(n), ok
}

// AcquireProbe implements gwtransport.StoreSession. The lease in Redis is
// "<lease id>:<until>" with an expiry of twice the lease: a lease without
// an expiry, or of another shape, is junk and replaced. A lease granted is
// announced to the other replicas (in the same script), which then wait
// for its verdict without asking Redis.
func (ss *session) AcquireProbe(target int, until time.Time) (bool, time.Time) {
	s := ss.s
	now := ss.l.Clock.Now()
	d := max(until.Sub(now), time.Millisecond)
	id := s.token + "." + strconv.FormatUint(s.leaseN.Add(1), 10)
	msg := ss.encodeRaw(factTaken, target, 0, "", 0, d, 0)
	var res []int64
	ok := s.call(func(ctx context.Context) error {
		var err error
		res, err = s.probe.Run(ctx, s.client, []string{ss.pKeys[target]},
			s.token, id, until.UnixNano(), now.UnixNano(), (2 * d).Milliseconds(), s.channel(), msg).Int64Slice()
		return err
	})
	if !ok || len(res) != 2 || res[0] == 1 {
		ss.mu.Lock()
		ss.leases[target] = id // granted, or perhaps: a release frees it only if it is there
		ss.mu.Unlock()
		return true, time.Time{}
	}
	held := time.Unix(0, res[1])
	if held.After(until) {
		held = until // another replica's lease is never longer than ours
	}
	return false, held
}

// takeLease returns, and forgets, this replica's lease id of target.
func (ss *session) takeLease(target int) string {
	if target < 0 || target >= len(ss.leases) {
		return ""
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	id := ss.leases[target]
	ss.leases[target] = ""
	return id
}

// ReleaseProbe implements gwtransport.StoreSession. The release names the
// lease it frees: queued, it never frees a newer lease of this replica.
func (ss *session) ReleaseProbe(target int) {
	if id := ss.takeLease(target); id != "" {
		ss.s.enqueue(ss, gwtransport.Fact{Kind: factFreed, Target: target}, id)
	}
}

// Publish implements gwtransport.StoreSession. A breaker's opening or
// closing ends this replica's probe, if it had one: its lease is freed
// with the write.
func (ss *session) Publish(f gwtransport.Fact) {
	lease := ""
	if f.Kind == gwtransport.FactBreakerOpen || f.Kind == gwtransport.FactBreakerClosed {
		lease = ss.takeLease(f.Target)
	}
	ss.s.enqueue(ss, f, lease)
}

// The kinds only the channel carries.
const (
	// factFreed is a probe released without a verdict.
	factFreed gwtransport.FactKind = 100
	// factTaken is a probe lease granted, for Until-At.
	factTaken gwtransport.FactKind = 101
)

// slot is what coalesces in the queue: the latest change of one breaker,
// one key, one target's latency, one probe release.
type slot struct {
	fp            string // the configuration's fingerprint
	class         byte
	target, p, k  int
	disabledClass bool
}

type pendingFact struct {
	ss    *session
	f     gwtransport.Fact
	lease string // the probe lease the change frees, "" for none
}

func slotOf(fp string, f gwtransport.Fact) slot {
	switch f.Kind {
	case gwtransport.FactBreakerOpen, gwtransport.FactBreakerClosed:
		return slot{fp: fp, class: 'b', target: f.Target}
	case gwtransport.FactKeyResting, gwtransport.FactKeyDisabled:
		return slot{fp: fp, class: 'k', p: f.Provider, k: f.Key, disabledClass: f.Kind == gwtransport.FactKeyDisabled}
	case gwtransport.FactLatency:
		return slot{fp: fp, class: 'l', target: f.Target}
	}
	return slot{fp: fp, class: 'f', target: f.Target}
}

// enqueue queues a change, coalescing it with the one of the same slot.
func (s *Store) enqueue(ss *session, f gwtransport.Fact, lease string) {
	if !s.isBound(ss) {
		return // a previous configuration's
	}
	k := slotOf(ss.l.Fingerprint, f)
	s.mu.Lock()
	if f.Kind == gwtransport.FactLatency {
		now := time.Now() // a rate, not a fact: the real clock
		if last, ok := s.latest[k]; ok && now.Sub(last) < s.cfg.latencyEvery {
			s.mu.Unlock()
			return
		}
		s.latest[k] = now
	}
	if old, ok := s.pending[k]; !ok {
		if len(s.order) >= s.cfg.queue {
			s.mu.Unlock()
			s.drops.Add(1)
			return
		}
		s.order = append(s.order, k)
	} else if lease == "" {
		lease = old.lease // the lease an earlier change freed is still to free
	}
	s.pending[k] = pendingFact{ss: ss, f: f, lease: lease}
	s.mu.Unlock()
	signal(s.wake)
}

// writer writes and publishes the queued changes.
func (s *Store) writer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		if s.down.Load() {
			continue // kept; written after the resync
		}
		s.mu.Lock()
		batch := make([]pendingFact, 0, len(s.order))
		for _, k := range s.order {
			batch = append(batch, s.pending[k])
		}
		s.pending, s.order = map[slot]pendingFact{}, nil
		s.mu.Unlock()
		if len(batch) > 0 {
			s.write(batch)
		}
	}
}

// write sends a batch in one pipeline.
func (s *Store) write(batch []pendingFact) {
	start := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	pipe := s.client.Pipeline()
	for _, p := range batch {
		p.ss.queueWrite(ctx, pipe, p)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		var re redis.Error
		if errors.As(err, &re) {
			s.failed(err, false)
			return
		}
		s.requeue(batch) // not written (or not known to be): sent again
		if start < s.upAt.Load() {
			// Begun in an outage that has ended since (and was logged):
			// sent again at once.
			signal(s.wake)
			return
		}
		s.failed(err, false)
		return
	}
	s.published.Add(int64(len(batch)))
}

// requeue puts back a batch that was not written, but for the slots a
// newer change took meanwhile. The facts are idempotent in Redis (a
// later until wins, a closing older than the opening is ignored), so one
// written twice does no harm.
func (s *Store) requeue(batch []pendingFact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range batch {
		k := slotOf(p.ss.l.Fingerprint, p.f)
		if old, ok := s.pending[k]; ok {
			if old.lease == "" && p.lease != "" {
				old.lease = p.lease
				s.pending[k] = old
			}
			continue
		}
		if len(s.order) >= s.cfg.queue {
			s.drops.Add(1)
			continue
		}
		s.order = append(s.order, k)
		s.pending[k] = p
	}
}

// ms is a duration in whole milliseconds, at least 0.
func ms(d time.Duration) int64 { return max(d, 0).Milliseconds() }

// span is how long ago a fact happened and how long from then it lasts,
// on this replica's clock: what the other replicas add their own now to.
func span(now time.Time, f gwtransport.Fact) (age, rest time.Duration) {
	if f.At.IsZero() {
		return 0, max(f.Until.Sub(now), 0)
	}
	return max(now.Sub(f.At), 0), max(f.Until.Sub(f.At), 0)
}

// queueWrite adds a change's writes and its message to pipe. Facts in
// Redis are "<at>:<until>" in milliseconds of Redis's clock (TIME): the
// scripts place them, and readers read them back, relative to it, so no
// replica's clock is compared with another's.
func (ss *session) queueWrite(ctx context.Context, pipe redis.Pipeliner, p pendingFact) {
	s, f := ss.s, p.f
	now := ss.l.Clock.Now()
	age, rest := span(now, f)
	switch f.Kind {
	case gwtransport.FactBreakerOpen:
		s.setMax.Eval(ctx, pipe, []string{ss.bKeys[f.Target], ss.pKeys[f.Target]}, ms(age), ms(rest), factMargin.Milliseconds(), p.lease, maxFactSpan.Milliseconds())
	case gwtransport.FactBreakerClosed:
		s.closeB.Eval(ctx, pipe, []string{ss.bKeys[f.Target], ss.pKeys[f.Target], ss.cKeys[f.Target]}, ms(age), maxFactSpan.Milliseconds())
	case gwtransport.FactKeyResting, gwtransport.FactKeyDisabled:
		kind := 0
		if f.Kind == gwtransport.FactKeyDisabled {
			kind = 1
		}
		if f.Provider >= len(ss.kKeys) || f.Key >= len(ss.kKeys[f.Provider][kind]) {
			return
		}
		s.setMax.Eval(ctx, pipe, []string{ss.kKeys[f.Provider][kind][f.Key], ""}, ms(age), ms(rest), factMargin.Milliseconds(), "", maxFactSpan.Milliseconds())
	case factFreed:
		// Freed, and announced, only if the lease is still that one.
		s.free.Eval(ctx, pipe, []string{ss.pKeys[f.Target]}, p.lease, s.channel(), ss.encode(now, f))
		return
	}
	pipe.Publish(ctx, s.channel(), ss.encode(now, f))
}

// channel is where the replicas' changes go: one per prefix and database
// (Redis's pub/sub ignores the database).
func (s *Store) channel() string { return s.cfg.prefix + ":events:" + strconv.Itoa(s.cfg.db) }

// encode writes a change as the channel carries it.
func (ss *session) encode(now time.Time, f gwtransport.Fact) string {
	age, rest := span(now, f)
	fp := ""
	if (f.Kind == gwtransport.FactKeyResting || f.Kind == gwtransport.FactKeyDisabled) &&
		f.Provider >= 0 && f.Provider < len(ss.l.Providers) && f.Key >= 0 && f.Key < len(ss.l.Providers[f.Provider].Keys) {
		fp = ss.l.Providers[f.Provider].Keys[f.Key]
	}
	return ss.encodeRaw(f.Kind, f.Target, f.Provider, fp, age, rest, f.Latency)
}

// encodeRaw: fingerprint|replica|kind|target|provider|key fingerprint|age|rest|latency,
// durations in nanoseconds of the sender's clock; a key is named by its
// salted fingerprint, never by its position (two replicas' pools may hold
// different keys at one position).
func (ss *session) encodeRaw(kind gwtransport.FactKind, target, provider int, keyFP string, age, rest, latency time.Duration) string {
	return strings.Join([]string{ss.l.Fingerprint, ss.s.token, strconv.Itoa(int(kind)), strconv.Itoa(target),
		strconv.Itoa(provider), keyFP, strconv.FormatInt(int64(age), 10), strconv.FormatInt(int64(rest), 10),
		strconv.FormatInt(int64(latency), 10)}, "|")
}

// receive applies another replica's message, its durations added to this
// replica's now.
func (s *Store) receive(payload string) {
	parts := strings.Split(payload, "|")
	if len(parts) != 9 || parts[1] == s.token {
		return
	}
	for _, ss := range s.bound() {
		if parts[0] == ss.l.Fingerprint {
			s.receiveAt(ss, parts)
		}
	}
}

// receiveAt applies a message to a bound session of its fingerprint.
func (s *Store) receiveAt(ss *session, parts []string) {
	var n [6]int64
	for i, j := range []int{2, 3, 4, 6, 7, 8} {
		v, err := strconv.ParseInt(parts[j], 10, 64)
		if err != nil {
			return
		}
		n[i] = v
	}
	if n[3] < 0 || n[3] > int64(maxFactSpan) || n[4] < 0 || n[4] > int64(maxFactSpan) || n[5] < 0 || n[5] > int64(maxFactSpan) {
		return // junk: no replica sends such spans
	}
	now := ss.l.Clock.Now()
	at := now.Add(-time.Duration(n[3]))
	f := gwtransport.Fact{Kind: gwtransport.FactKind(n[0]), Target: int(n[1]), Provider: int(n[2]),
		At: at, Until: at.Add(time.Duration(n[4])), Latency: time.Duration(n[5])}
	switch f.Kind {
	case gwtransport.FactKeyResting, gwtransport.FactKeyDisabled:
		if f.Provider < 0 || f.Provider >= len(ss.keyIdx) {
			return
		}
		i, ok := ss.keyIdx[f.Provider][parts[5]]
		if !ok {
			return // a key this replica does not have
		}
		f.Key = i
	}
	s.received.Add(1)
	switch f.Kind {
	case factFreed:
		ss.l.Mirror.ProbeFreed(f.Target)
	case factTaken:
		ss.l.Mirror.ProbeTaken(f.Target, f.Until.Sub(f.At))
	default:
		ss.l.Mirror.Apply(f)
	}
}

// subscriber receives the other replicas' changes; a (re)subscription
// triggers a resynchronisation, since messages may have been missed. A
// dropped subscription alone is no outage (the commands decide that):
// Redis is pinged, and the subscription made again.
func (s *Store) subscriber() {
	defer s.wg.Done()
	for {
		msg, err := s.ps.Receive(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.subscribed.Store(false)
			s.errs.Add(1)
			if perr := s.ping(); perr != nil {
				s.fail(perr)
			}
			// Wait a retry interval, and while Redis is down (no dial
			// meanwhile: the maintainer pings).
			for first := true; first || s.down.Load(); first = false {
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(s.cfg.retry):
				}
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.subscribed.Store(true)
				s.up()
			}
		case *redis.Message:
			s.receive(m.Payload)
		}
	}
}

// ping asks Redis for a PONG on a connection of its own (not the pool's:
// go-redis's pool, after many failed dials, dials on in a goroutine that
// outlives Close by up to a second).
func (s *Store) ping() error {
	ctx, cancel := context.WithTimeout(s.ctx, max(s.cfg.retry, 100*time.Millisecond))
	defer cancel()
	c := redis.NewClient(s.cfg.options()) // one dial: never the PoolSize failed dials that start go-redis's background dialer
	defer c.Close()
	return c.Ping(ctx).Err()
}

// maintainer tries an unreachable Redis again and resynchronises.
func (s *Store) maintainer() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.retry)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.resync:
			g := s.wanted.Load()
			if err := s.resynchronise(); err != nil {
				s.failed(err, false) // asked again at the next tick
				continue
			}
			s.firstOverrun.Store(0)
			s.down.Store(false)
			s.done.Store(g)
			signal(s.wake) // write what waited
			continue
		}
		if !s.down.Load() && s.done.Load() != s.wanted.Load() {
			signal(s.resync)
		}
		if s.down.Load() {
			if err := s.ping(); err != nil {
				if s.ctx.Err() == nil {
					s.fail(err)
				}
			} else {
				s.up()
			}
		}
	}
}

// resynchronise reads the shared breakers and rests into the mirror, then
// writes this replica's own standing facts.
func (s *Store) resynchronise() error {
	sessions := s.bound()
	if len(sessions) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	// The request path's scripts, loaded so that each runs in one call.
	for _, sc := range []*redis.Script{s.rr, s.probe} {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return err
		}
	}
	for _, ss := range sessions {
		if err := s.resyncSession(ctx, ss); err != nil {
			return err
		}
	}
	s.resyncs.Add(1)
	return nil
}

// resyncSession reads one configuration's shared breakers, rests and probe
// leases into its mirror, then queues its own standing facts.
func (s *Store) resyncSession(ctx context.Context, ss *session) error {
	type ref struct {
		kind      gwtransport.FactKind
		target, p int
		key       int
	}
	var keys []string
	var refs []ref
	for i, k := range ss.bKeys {
		keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactBreakerOpen, target: i})
	}
	for i, k := range ss.cKeys {
		keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactBreakerClosed, target: i})
	}
	for pi, ks := range ss.kKeys {
		for i, k := range ks[0] {
			keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactKeyResting, p: pi, key: i})
		}
		for i, k := range ks[1] {
			keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactKeyDisabled, p: pi, key: i})
		}
	}
	if len(keys) > 0 {
		pipe := s.client.Pipeline()
		tc := pipe.Time(ctx)
		mc := pipe.MGet(ctx, keys...)
		// The probe leases out: a replica that joins mid-probe waits for
		// its verdict.
		leases := make([]*redis.StringCmd, len(ss.pKeys))
		ttls := make([]*redis.DurationCmd, len(ss.pKeys))
		for i, k := range ss.pKeys {
			leases[i], ttls[i] = pipe.Get(ctx, k), pipe.PTTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			var re redis.Error
			if !errors.As(err, &re) {
				return err
			}
		}
		redisNow := tc.Val().UnixMilli()
		now := ss.l.Clock.Now()
		opened := make([]time.Time, len(ss.bKeys)) // per target: when the breaker in Redis opened, zero for none
		for i, v := range mc.Val() {
			str, ok := v.(string)
			if !ok {
				continue
			}
			at, until, ok := parseFact(str)
			if !ok || at > redisNow+maxFactSpan.Milliseconds() || until-at > maxFactSpan.Milliseconds() || until < at {
				continue // junk: no replica writes such spans
			}
			r := refs[i]
			// Redis's clock to this replica's: how long ago, how long on.
			f := gwtransport.Fact{Kind: r.kind, Target: r.target, Provider: r.p, Key: r.key,
				At: now.Add(-max(msDur(redisNow-at), 0)), Until: now.Add(min(max(msDur(until-redisNow), -maxFactSpan), maxFactSpan))}
			if r.kind == gwtransport.FactBreakerOpen {
				opened[r.target] = f.At
			}
			ss.l.Mirror.Apply(f)
		}
		for i := range ss.pKeys {
			v, err := leases[i].Result()
			ttl := ttls[i].Val()
			if err != nil || opened[i].IsZero() || ttl <= 0 || strings.HasPrefix(v, s.token+".") {
				continue // none, no opening it probes, or this replica's own
			}
			// The lease's expiry is twice its length from its taking: half
			// the time left is at most what the lease has left.
			ss.l.Mirror.ProbeHeld(i, opened[i], min(ttl/2, maxFactSpan))
		}
	}
	for _, f := range ss.l.Mirror.Facts() {
		s.enqueue(ss, f, "")
	}
	return nil
}

// msDur is n milliseconds, saturated within ±maxFactSpan*2.
func msDur(n int64) time.Duration {
	lim := 2 * maxFactSpan.Milliseconds()
	return time.Duration(min(max(n, -lim), lim)) * time.Millisecond
}

// parseFact reads a fact key's "at:until" (milliseconds of Redis's clock).
func parseFact(v string) (at, until int64, ok bool) {
	a, u, found := strings.Cut(v, ":")
	if !found {
		return 0, 0, false
	}
	an, err1 := strconv.ParseInt(a, 10, 64)
	un, err2 := strconv.ParseInt(u, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return an, un, true
}

// The Lua scripts: each transition that must be atomic across replicas
// runs in one. A key of the wrong type or shape (another writer's junk)
// is replaced, never obeyed.
const (
	// KEYS[1] counter; ARGV[1] ttl ms. Returns the position before the
	// increment.
	luaRoundRobin = `local n = redis.pcall('INCR', KEYS[1])
if type(n) == 'table' and n.err then
  redis.call('DEL', KEYS[1])
  n = redis.call('INCR', KEYS[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n - 1`

	// KEYS[1] probe lease "<replica>.<n>:<until>"; ARGV replica, lease
	// id, until, now (the caller's clock, ns), px ms, channel, message.
	// Grants the lease when none runs (or it is this replica's, or lapsed,
	// or junk: no expiry, another shape) and announces it; else returns
	// {0, its until, at most ours}.
	luaProbe = `local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' then
  local tok, untl = string.match(v, '^([^:]*):(%-?%d+)$')
  if tok and redis.call('PTTL', KEYS[1]) > 0 and string.sub(tok, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. '.' and tonumber(untl) > tonumber(ARGV[4]) then
    return {0, math.min(tonumber(untl), tonumber(ARGV[3]))}
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1, 0}`

	// KEYS[1] probe lease; ARGV lease id, channel, message. Frees the
	// lease, and announces it, when it is still that one.
	luaFree = `local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' and ARGV[1] ~= '' and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`

	// KEYS[1] fact "at:until" (ms, Redis's clock), KEYS[2] probe lease or
	// ""; ARGV age ms, rest ms, margin ms, lease id or "", max span ms.
	// Keeps the later until (a stored until beyond the max span is junk);
	// frees that probe lease.
	luaSetMax = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = now - tonumber(ARGV[1])
local untl = at + tonumber(ARGV[2])
local v = redis.pcall('GET', KEYS[1])
local keep = false
if type(v) == 'string' then
  local u = string.match(v, ':(%-?%d+)$')
  if u and tonumber(u) >= untl and tonumber(u) <= now + tonumber(ARGV[5]) then keep = true end
end
if not keep then
  redis.call('SET', KEYS[1], string.format('%d:%d', at, untl), 'PX', math.max(untl - now, 0) + tonumber(ARGV[3]))
end
if KEYS[2] ~= '' and ARGV[4] ~= '' then
  local p = redis.pcall('GET', KEYS[2])
  if type(p) == 'string' and string.sub(p, 1, string.len(ARGV[4]) + 1) == ARGV[4] .. ':' then
    redis.call('DEL', KEYS[2])
  end
end
return 0`

	// KEYS[1] breaker fact, KEYS[2] probe lease, KEYS[3] closed-at fact;
	// ARGV[1] age ms, ARGV[2] its lifetime ms. A closing not older than
	// the opening clears both, and is kept ("<at>:<at>") for the replicas
	// that resynchronise.
	luaClose = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = now - tonumber(ARGV[1])
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' then
  local a = string.match(v, '^(%-?%d+):')
  if a and tonumber(a) > at and tonumber(a) <= now then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], string.format('%d:%d', at, at), 'PX', ARGV[2])
return 1`
)

var _ gwtransport.Store = (*Store)(nil)
