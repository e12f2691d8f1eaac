package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	DefaultTimeout = 2 * time.Millisecond
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
	// factMargin is how long a fact's key outlives its end, so replicas
	// with clocks a little behind still read it.
	factMargin = time.Minute
)

func init() {
	gwtransport.RegisterStore("redis", configuredStore)
}

// configuredStore is the Store of a configuration file's state section:
// one per distinct section, made at its first use and kept, so that
// compiling the same file again (Reconfigure, a gwproxy reload) binds the
// new configuration to the same Store (which replaces the previous one)
// rather than opening one more connection pool each time.
func configuredStore(c *gwtransport.StateConfig) (gwtransport.Store, error) {
	if c == nil || c.Redis == nil {
		return nil, errors.New("redisstore: the state section has no redis")
	}
	key := fmt.Sprintf("%+v", *c.Redis)
	configured.Lock()
	defer configured.Unlock()
	if s, ok := configured.stores[key]; ok {
		return s, nil
	}
	s, err := FromConfig(c)
	if err != nil {
		return nil, err
	}
	if configured.stores == nil {
		configured.stores = map[string]*Store{}
	}
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
// the program. A configuration compiled after it makes a new one.
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
	addr, username, password, prefix string
	db                               int
	timeout, retry, latencyEvery     time.Duration
	queue                            int
	logger                           *slog.Logger
	hooks                            []redis.Hook
}

// WithAddr sets the Redis address, host:port (default 127.0.0.1:6379).
func WithAddr(addr string) Option {
	return func(c *config) error {
		if addr != "" {
			c.addr = addr
		}
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
		c.password = v
		return nil
	}
}

// WithPassword sets the Redis password (prefer [WithPasswordEnv]).
func WithPassword(p string) Option {
	return func(c *config) error { c.password = p; return nil }
}

// WithTimeout bounds every Redis call on the request path (default 2 ms):
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
type Store struct {
	cfg    config
	client *redis.Client
	token  string // this replica's id
	rr     *redis.Script
	probe  *redis.Script
	free   *redis.Script
	setMax *redis.Script
	closeB *redis.Script

	sess   atomic.Pointer[session]
	down   atomic.Bool
	outage atomic.Bool // an outage was logged and its end was not

	mu      sync.Mutex
	pending map[slot]pendingFact
	order   []slot
	latest  map[int]time.Time // when each target's latest latency sample was queued
	wake    chan struct{}
	resync  chan struct{}

	drops, errs, published, received atomic.Int64

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
	// Published and Received count the changes sent to and applied from
	// the other replicas.
	Published, Received int64
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
	client := redis.NewClient(&redis.Options{
		Addr: c.addr, Username: c.username, Password: c.password, DB: c.db,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // the request path never retries; the background does
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		DisableIdentity:       true,
	})
	for _, h := range c.hooks {
		client.AddHook(h)
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	s := &Store{
		cfg: c, client: client, token: hex.EncodeToString(tok[:]),
		rr:      redis.NewScript(luaRoundRobin),
		probe:   redis.NewScript(luaProbe),
		free:    redis.NewScript(luaFree),
		setMax:  redis.NewScript(luaSetMax),
		closeB:  redis.NewScript(luaClose),
		pending: map[slot]pendingFact{},
		latest:  map[int]time.Time{},
		wake:    make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
	}
	s.down.Store(true) // until the first ping
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

// Client returns the go-redis client (to add hooks, or inspect keys).
func (s *Store) Client() *redis.Client { return s.client }

// Stats returns the Store's counters.
func (s *Store) Stats() Stats {
	return Stats{Dropped: s.drops.Load(), Errors: s.errs.Load(), Published: s.published.Load(), Received: s.received.Load()}
}

// Connected reports whether Redis answered last time.
func (s *Store) Connected() bool { return !s.down.Load() }

// session is the Store bound to one configuration.
type session struct {
	s      *Store
	l      *gwtransport.Layout
	ns     string   // <prefix>:<fingerprint>
	rrKeys []string // per route
	bKeys  []string // per target: breaker open-until
	pKeys  []string // per target: probe lease
	kKeys  [][2][]string
}

// Bind implements gwtransport.Store.
func (s *Store) Bind(l *gwtransport.Layout) (gwtransport.StoreSession, error) {
	ns := s.cfg.prefix + ":" + l.Fingerprint
	ss := &session{s: s, l: l, ns: ns}
	for i := range l.Routes {
		ss.rrKeys = append(ss.rrKeys, ns+":rr:"+strconv.Itoa(i))
	}
	for i := range l.Targets {
		ss.bKeys = append(ss.bKeys, ns+":b:"+strconv.Itoa(i))
		ss.pKeys = append(ss.pKeys, ns+":p:"+strconv.Itoa(i))
	}
	for pi, p := range l.Providers {
		var ks [2][]string
		for _, fp := range p.Keys {
			ks[0] = append(ks[0], ns+":kr:"+strconv.Itoa(pi)+":"+fp)
			ks[1] = append(ks[1], ns+":kd:"+strconv.Itoa(pi)+":"+fp)
		}
		ss.kKeys = append(ss.kKeys, ks)
	}
	s.sess.Store(ss)
	s.mu.Lock()
	s.pending, s.order, s.latest = map[slot]pendingFact{}, nil, map[int]time.Time{} // the previous configuration's
	s.mu.Unlock()
	signal(s.resync)
	return ss, nil
}

func (s *Store) logger() *slog.Logger {
	if s.cfg.logger != nil {
		return s.cfg.logger
	}
	if ss := s.sess.Load(); ss != nil && ss.l.Logger != nil {
		return ss.l.Logger
	}
	return nil
}

// fail records a failed call; the first failure of an outage is logged.
func (s *Store) fail(err error) {
	s.errs.Add(1)
	s.down.Store(true)
	if s.outage.CompareAndSwap(false, true) {
		if l := s.logger(); l != nil {
			l.Warn("redisstore: Redis unreachable; live state stays local until it answers", "addr", s.cfg.addr, "error", err.Error())
		}
	}
}

// up marks Redis reachable, logs the end of an outage, and resynchronises.
func (s *Store) up() {
	s.down.Store(false)
	if s.outage.CompareAndSwap(true, false) {
		if l := s.logger(); l != nil {
			l.Info("redisstore: Redis reachable again; resynchronising", "addr", s.cfg.addr)
		}
	}
	signal(s.resync)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// call runs f under the request-path bound; false when Redis is down or
// did not answer in time.
func (s *Store) call(f func(ctx context.Context) error) bool {
	if s.down.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		s.fail(err)
		return false
	}
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

// AcquireProbe implements gwtransport.StoreSession.
func (ss *session) AcquireProbe(target int, until time.Time) (bool, time.Time) {
	now := ss.l.Clock.Now()
	var res []int64
	ok := ss.s.call(func(ctx context.Context) error {
		var err error
		res, err = ss.s.probe.Run(ctx, ss.s.client, []string{ss.pKeys[target], ss.bKeys[target]},
			ss.s.token, until.UnixNano(), now.UnixNano(), ttl(now, until)).Int64Slice()
		return err
	})
	if !ok || len(res) != 2 || res[0] == 1 {
		return true, time.Time{}
	}
	return false, time.Unix(0, res[1])
}

// ReleaseProbe implements gwtransport.StoreSession.
func (ss *session) ReleaseProbe(target int) {
	ss.s.enqueue(ss, gwtransport.Fact{Kind: factFreed, Target: target})
}

// Publish implements gwtransport.StoreSession.
func (ss *session) Publish(f gwtransport.Fact) { ss.s.enqueue(ss, f) }

// factFreed is a probe released without a verdict, as the channel carries
// it.
const factFreed gwtransport.FactKind = 100

// ttl is the expiry of a key for a fact ending at until: its time left
// plus a margin.
func ttl(now, until time.Time) int64 {
	return (max(until.Sub(now), 0) + factMargin).Milliseconds()
}

// slot is what coalesces in the queue: the latest change of one breaker,
// one key, one target's latency, one probe release.
type slot struct {
	class         byte
	target, p, k  int
	disabledClass bool
}

type pendingFact struct {
	ss *session
	f  gwtransport.Fact
}

func slotOf(f gwtransport.Fact) slot {
	switch f.Kind {
	case gwtransport.FactBreakerOpen, gwtransport.FactBreakerClosed:
		return slot{class: 'b', target: f.Target}
	case gwtransport.FactKeyResting, gwtransport.FactKeyDisabled:
		return slot{class: 'k', p: f.Provider, k: f.Key, disabledClass: f.Kind == gwtransport.FactKeyDisabled}
	case gwtransport.FactLatency:
		return slot{class: 'l', target: f.Target}
	}
	return slot{class: 'f', target: f.Target}
}

// enqueue queues a change, coalescing it with the one of the same slot.
func (s *Store) enqueue(ss *session, f gwtransport.Fact) {
	if s.sess.Load() != ss {
		return // a previous configuration's
	}
	k := slotOf(f)
	s.mu.Lock()
	if f.Kind == gwtransport.FactLatency {
		now := time.Now() // a rate, not a fact: the real clock
		if last, ok := s.latest[f.Target]; ok && now.Sub(last) < s.cfg.latencyEvery {
			s.mu.Unlock()
			return
		}
		s.latest[f.Target] = now
	}
	if _, ok := s.pending[k]; !ok {
		if len(s.order) >= s.cfg.queue {
			s.mu.Unlock()
			s.drops.Add(1)
			return
		}
		s.order = append(s.order, k)
	}
	s.pending[k] = pendingFact{ss: ss, f: f}
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
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	pipe := s.client.Pipeline()
	for _, p := range batch {
		p.ss.queueWrite(ctx, pipe, p.f)
	}
	if _, err := pipe.Exec(ctx); err != nil && s.ctx.Err() == nil {
		s.fail(err)
		return
	}
	s.published.Add(int64(len(batch)))
}

// queueWrite adds a change's writes and its message to pipe.
func (ss *session) queueWrite(ctx context.Context, pipe redis.Pipeliner, f gwtransport.Fact) {
	s := ss.s
	now := ss.l.Clock.Now()
	switch f.Kind {
	case gwtransport.FactBreakerOpen:
		s.setMax.Eval(ctx, pipe, []string{ss.bKeys[f.Target], ss.pKeys[f.Target]}, f.At.UnixNano(), f.Until.UnixNano(), ttl(now, f.Until), s.token)
	case gwtransport.FactBreakerClosed:
		s.closeB.Eval(ctx, pipe, []string{ss.bKeys[f.Target], ss.pKeys[f.Target]}, f.At.UnixNano())
	case gwtransport.FactKeyResting, gwtransport.FactKeyDisabled:
		kind := 0
		if f.Kind == gwtransport.FactKeyDisabled {
			kind = 1
		}
		if f.Provider < len(ss.kKeys) && f.Key < len(ss.kKeys[f.Provider][kind]) {
			s.setMax.Eval(ctx, pipe, []string{ss.kKeys[f.Provider][kind][f.Key], ""}, f.At.UnixNano(), f.Until.UnixNano(), ttl(now, f.Until), s.token)
		}
	case factFreed:
		s.free.Eval(ctx, pipe, []string{ss.pKeys[f.Target]}, s.token)
	}
	pipe.Publish(ctx, s.channel(), ss.encode(f))
}

func (s *Store) channel() string { return s.cfg.prefix + ":events" }

// encode writes a change as the channel carries it:
// fingerprint|replica|kind|target|provider|key|at|until|latency.
func (ss *session) encode(f gwtransport.Fact) string {
	return strings.Join([]string{ss.l.Fingerprint, ss.s.token, strconv.Itoa(int(f.Kind)), strconv.Itoa(f.Target),
		strconv.Itoa(f.Provider), strconv.Itoa(f.Key), nanos(f.At), nanos(f.Until), strconv.FormatInt(int64(f.Latency), 10)}, "|")
}

func nanos(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func unnanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// receive applies another replica's message.
func (s *Store) receive(payload string) {
	parts := strings.Split(payload, "|")
	ss := s.sess.Load()
	if len(parts) != 9 || ss == nil || parts[0] != ss.l.Fingerprint || parts[1] == s.token {
		return
	}
	var n [7]int64
	for i := range n {
		v, err := strconv.ParseInt(parts[i+2], 10, 64)
		if err != nil {
			return
		}
		n[i] = v
	}
	f := gwtransport.Fact{Kind: gwtransport.FactKind(n[0]), Target: int(n[1]), Provider: int(n[2]), Key: int(n[3]),
		At: unnanos(n[4]), Until: unnanos(n[5]), Latency: time.Duration(n[6])}
	s.received.Add(1)
	if f.Kind == factFreed {
		ss.l.Mirror.ProbeFreed(f.Target)
		return
	}
	ss.l.Mirror.Apply(f)
}

// subscriber receives the other replicas' changes; a (re)subscription
// triggers a resynchronisation, since messages may have been missed.
func (s *Store) subscriber() {
	defer s.wg.Done()
	ps := s.ps
	for {
		msg, err := ps.Receive(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.up()
			}
		case *redis.Message:
			s.receive(m.Payload)
		}
		if err != nil {
			s.fail(err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.cfg.retry):
			}
		}
	}
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
			if !s.down.Load() {
				if err := s.resynchronise(); err != nil {
					s.fail(err)
				}
				signal(s.wake) // write what waited
			}
			continue
		}
		if s.down.Load() {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.retry)
			err := s.client.Ping(ctx).Err()
			cancel()
			if err == nil {
				s.up()
			}
		}
	}
}

// resynchronise reads the shared breakers and rests into the mirror, then
// writes this replica's own standing facts.
func (s *Store) resynchronise() error {
	ss := s.sess.Load()
	if ss == nil {
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
	for pi, ks := range ss.kKeys {
		for i, k := range ks[0] {
			keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactKeyResting, p: pi, key: i})
		}
		for i, k := range ks[1] {
			keys, refs = append(keys, k), append(refs, ref{kind: gwtransport.FactKeyDisabled, p: pi, key: i})
		}
	}
	if len(keys) > 0 {
		vals, err := s.client.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			at, until, ok := parseFact(str)
			if !ok {
				continue
			}
			r := refs[i]
			ss.l.Mirror.Apply(gwtransport.Fact{Kind: r.kind, Target: r.target, Provider: r.p, Key: r.key, At: at, Until: until})
		}
	}
	for _, f := range ss.l.Mirror.Facts() {
		s.enqueue(ss, f)
	}
	return nil
}

// parseFact reads a fact key's "at:until".
func parseFact(v string) (at, until time.Time, ok bool) {
	a, u, found := strings.Cut(v, ":")
	if !found {
		return at, until, false
	}
	an, err1 := strconv.ParseInt(a, 10, 64)
	un, err2 := strconv.ParseInt(u, 10, 64)
	if err1 != nil || err2 != nil {
		return at, until, false
	}
	return time.Unix(0, an), time.Unix(0, un), true
}

// The Lua scripts: each transition that must be atomic across replicas
// runs in one.
const (
	// KEYS[1] counter; ARGV[1] ttl ms. Returns the position before the
	// increment.
	luaRoundRobin = `local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n - 1`

	// KEYS[1] probe lease "token:until"; ARGV token, until, now, ttl ms.
	// Grants the lease when none runs (or it is ours, or lapsed); else
	// returns {0, its until}.
	luaProbe = `local v = redis.call('GET', KEYS[1])
if v then
  local tok, untl = string.match(v, '^([^:]*):(%-?%d+)$')
  if tok and tok ~= ARGV[1] and tonumber(untl) > tonumber(ARGV[3]) then
    return {0, tonumber(untl)}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[4])
return {1, tonumber(ARGV[2])}`

	// KEYS[1] probe lease; ARGV[1] token. Frees it when it is ours.
	luaFree = `local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('DEL', KEYS[1])
end
return 0`

	// KEYS[1] fact "at:until", KEYS[2] probe lease or ""; ARGV at, until,
	// ttl ms, token. Keeps the later until; frees our probe lease.
	luaSetMax = `local v = redis.call('GET', KEYS[1])
local keep = false
if v then
  local untl = string.match(v, ':(%-?%d+)$')
  if untl and tonumber(untl) >= tonumber(ARGV[2]) then keep = true end
end
if not keep then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
end
if KEYS[2] ~= '' then
  local p = redis.call('GET', KEYS[2])
  if p and string.sub(p, 1, string.len(ARGV[4]) + 1) == ARGV[4] .. ':' then
    redis.call('DEL', KEYS[2])
  end
end
return 0`

	// KEYS[1] breaker fact, KEYS[2] probe lease; ARGV[1] at. A closing
	// newer than the opening clears both.
	luaClose = `local v = redis.call('GET', KEYS[1])
if v then
  local at = string.match(v, '^(%-?%d+):')
  if at and tonumber(at) > tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`
)

var _ gwtransport.Store = (*Store)(nil)
