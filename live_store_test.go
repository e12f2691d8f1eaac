package gwtransport_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// recStore is a Store that records what the gateway gives it, and
// answers the atomic transitions as told.
type recStore struct {
	mu       sync.Mutex
	layouts  []*gwtransport.Layout
	facts    []gwtransport.Fact
	released []int
	bindErr  error
	refuse   time.Time // AcquireProbe refuses, held until then, when set
	rr       uint64
	rrOK     bool
	acquires int // AcquireProbe calls
}

func (s *recStore) Bind(l *gwtransport.Layout) (gwtransport.StoreSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.layouts = append(s.layouts, l)
	if s.bindErr != nil {
		return nil, s.bindErr
	}
	return s, nil
}

func (s *recStore) NextRoundRobin(route int) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.rr
	s.rr += 2 // visibly not the local counter
	return n, s.rrOK
}

func (s *recStore) AcquireProbe(target int, until time.Time) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acquires++
	if !s.refuse.IsZero() {
		return false, s.refuse
	}
	return true, time.Time{}
}

func (s *recStore) ReleaseProbe(target int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = append(s.released, target)
}

func (s *recStore) Publish(f gwtransport.Fact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.facts = append(s.facts, f)
}

func (s *recStore) kinds() []gwtransport.FactKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gwtransport.FactKind
	for _, f := range s.facts {
		if f.Kind != gwtransport.FactLatency {
			out = append(out, f.Kind)
		}
	}
	return out
}

// The layout a Store is given names routes, targets and keys, never a key:
// key fingerprints are salted with the configuration's fingerprint, which
// changes with the live-state shape and only with it.
func TestStoreLayout(t *testing.T) {
	a, b := server(t, "a", ""), server(t, "b", "")
	mk := func(st gwtransport.Store, cooldown time.Duration, models []string) error {
		_, err := gwtransport.NewTransport(nil, models, noEnv(), gwtransport.WithStore(st),
			gwtransport.WithProvider(gwtransport.Provider{Name: "a", BaseURL: a.URL, APIKeys: []string{"sk-secret-one", "sk-secret-two"}}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: b.URL, Auth: gwtransport.AuthNone}),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{Cooldown: gwtransport.Duration(cooldown)}),
			gwtransport.WithRoute("cheap", []string{"b/m"}))
		return err
	}
	st := &recStore{}
	require.NoError(t, mk(st, time.Second, []string{"a/m", "b/m"}))
	require.NoError(t, mk(st, time.Second, []string{"a/m", "b/m"}))
	require.NoError(t, mk(st, 2*time.Second, []string{"a/m", "b/m"}))
	require.NoError(t, mk(st, time.Second, []string{"b/m", "a/m"}))
	l := st.layouts[0]
	assert.Equal(t, []string{"gateway", "cheap"}, l.Routes)
	assert.Equal(t, []string{"gateway/a/m", "gateway/b/m", "cheap/b/m"}, l.Targets)
	require.Len(t, l.Providers, 1)
	assert.Equal(t, "a", l.Providers[0].Name)
	require.Len(t, l.Providers[0].Keys, 2)
	for _, k := range l.Providers[0].Keys {
		assert.Regexp(t, "^[0-9a-f]{32}$", k)
	}
	assert.NotEqual(t, l.Providers[0].Keys[0], l.Providers[0].Keys[1])
	assert.Regexp(t, "^[0-9a-f]{16}$", l.Fingerprint)
	assert.Equal(t, l.Fingerprint, st.layouts[1].Fingerprint, "same configuration, same state")
	assert.Equal(t, l.Providers[0].Keys, st.layouts[1].Providers[0].Keys)
	assert.NotEqual(t, l.Fingerprint, st.layouts[2].Fingerprint, "another cooldown")
	assert.NotEqual(t, l.Fingerprint, st.layouts[3].Fingerprint, "another order: the indexes differ")
	assert.NotEqual(t, l.Providers[0].Keys, st.layouts[2].Providers[0].Keys, "salted by the fingerprint")

	err := mk(&recStore{bindErr: errors.New("boom")}, time.Second, []string{"a/m"})
	require.EqualError(t, err, "gwtransport: binding the live state store: boom")
	require.EqualError(t, gwtransport.WithStore(nil)(nil), "gwtransport: WithStore: nil store")
}

// The gateway hands every opening and closing of a breaker, and every key
// rest, to the Store; a probe refused by the Store (another replica's)
// makes the request fall back, and the breaker shows the other probe's
// lease.
func TestStoreSeesTransitions(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st))
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	require.Equal(t, "p1/m", served(t, f))
	require.Equal(t, []gwtransport.FactKind{gwtransport.FactBreakerOpen}, st.kinds())
	st.mu.Lock()
	open := st.facts[0]
	st.mu.Unlock()
	assert.Equal(t, 0, open.Target)
	assert.Equal(t, f.clock.Now(), open.At)
	assert.Equal(t, f.clock.Now().Add(10*time.Second), open.Until)

	// Past the cooldown, another replica holds the probe.
	f.clock.mu.Lock()
	f.clock.now = f.clock.now.Add(11 * time.Second)
	f.clock.mu.Unlock()
	held := f.clock.Now().Add(30 * time.Second)
	st.mu.Lock()
	st.refuse = held
	st.mu.Unlock()
	require.Equal(t, "p1/m", served(t, f))
	require.Equal(t, 1, f.servers[0].Count())
	s := f.tr.Stats()[0]
	assert.Equal(t, gwtransport.BreakerHalfOpen, s.Breaker)
	assert.Equal(t, held, s.BreakerUntil)

	// That replica's probe ends without a verdict: this one probes, and
	// its success closes the breaker, which the Store hears.
	st.mu.Lock()
	st.refuse = time.Time{}
	l := st.layouts[0]
	st.mu.Unlock()
	l.Mirror.ProbeFreed(0)
	require.Equal(t, "p0/m", served(t, f))
	require.Equal(t, []gwtransport.FactKind{gwtransport.FactBreakerOpen, gwtransport.FactBreakerClosed}, st.kinds())
}

// Facts from other replicas: an opening applies (and never shortens a
// longer cooldown), a closing older than the breaker's own last change is
// ignored, a newer one closes; rests only extend; indexes out of range
// are ignored.
func TestMirrorApply(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st))
	m := st.layouts[0].Mirror
	now := f.clock.Now()
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerOpen, Target: 0, At: now, Until: now.Add(time.Minute)})
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerOpen, Target: 0, At: now, Until: now.Add(time.Second)})
	s := f.tr.Stats()[0]
	require.Equal(t, gwtransport.BreakerOpen, s.Breaker)
	require.Equal(t, now.Add(time.Minute), s.BreakerUntil)
	require.Equal(t, "p1/m", served(t, f))

	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerClosed, Target: 0, At: now.Add(-time.Second)})
	require.Equal(t, gwtransport.BreakerOpen, f.tr.Stats()[0].Breaker, "an older closing")
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerClosed, Target: 0, At: now.Add(time.Second)})
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker)
	// An opening far beyond what this configuration allows (until 2262):
	// open for max(Cooldown, WithMaxRest) from now, no longer.
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerOpen, Target: 0, At: now.Add(time.Second), Until: time.Unix(0, 1<<63-1)})
	require.Equal(t, now.Add(gwtransport.DefaultMaxRest), f.tr.Stats()[0].BreakerUntil)
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerClosed, Target: 0, At: now})
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker)
	require.Equal(t, "p0/m", served(t, f))

	for _, bad := range []gwtransport.Fact{
		{Kind: gwtransport.FactBreakerOpen, Target: 9, Until: now.Add(time.Hour)},
		{Kind: gwtransport.FactBreakerOpen, Target: -1, Until: now.Add(time.Hour)},
		{Kind: gwtransport.FactKeyResting, Provider: 3, Until: now.Add(time.Hour)},
		{Kind: gwtransport.FactLatency, Target: 5, Latency: time.Second},
		{Kind: 77},
	} {
		m.Apply(bad)
	}
	m.ProbeFreed(42)
	for _, s := range f.tr.Stats() {
		require.Equal(t, gwtransport.BreakerClosed, s.Breaker)
	}
	old := f.tr.Stats()[1].Latency
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactLatency, Target: 1, Latency: 3 * time.Second})
	assert.Equal(t, time.Duration(float64(old)*0.8+float64(3*time.Second)*0.2), f.tr.Stats()[1].Latency, "a sample of the moving average")
	assert.Empty(t, m.Facts())
}

// Key rests from other replicas rest the key here; a shorter one never
// shortens it; one longer than this configuration allows (a disablement
// beyond 10 minutes, a rest beyond WithMaxRest) is cut to that; the
// standing facts list them for a resynchronisation.
func TestMirrorKeyRest(t *testing.T) {
	s := server(t, "k", "")
	st := &recStore{}
	clock := newFakeClock()
	tr, err := gwtransport.NewTransport(nil, []string{"k/m"}, noEnv(), gwtransport.WithClock(clock), gwtransport.WithStore(st),
		gwtransport.WithProvider(gwtransport.Provider{Name: "k", BaseURL: s.URL, APIKeys: []string{"sk-1", "sk-2"}}))
	require.NoError(t, err)
	m := st.layouts[0].Mirror
	now := clock.Now()
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactKeyResting, Provider: 0, Key: 1, At: now, Until: now.Add(time.Minute)})
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactKeyResting, Provider: 0, Key: 1, At: now, Until: now.Add(time.Second)})
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactKeyDisabled, Provider: 0, Key: 0, At: now, Until: now.Add(time.Hour)})
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactKeyResting, Provider: 0, Key: 7, At: now, Until: now.Add(time.Hour)})
	ks := tr.Stats()[0].Keys
	require.Equal(t, []gwtransport.KeyStats{
		{Index: 0, State: "disabled", Until: now.Add(10 * time.Minute)},
		{Index: 1, State: "resting", Until: now.Add(time.Minute)},
	}, ks)
	require.Equal(t, []gwtransport.Fact{
		{Kind: gwtransport.FactKeyDisabled, Provider: 0, Key: 0, At: now, Until: now.Add(10 * time.Minute)},
		{Kind: gwtransport.FactKeyResting, Provider: 0, Key: 1, At: now, Until: now.Add(time.Minute)},
	}, m.Facts())
	// A rest far beyond WithMaxRest (5 minutes by default), say until 2262.
	m.Apply(gwtransport.Fact{Kind: gwtransport.FactKeyResting, Provider: 0, Key: 1, At: now, Until: time.Unix(0, 1<<63-1)})
	require.Equal(t, now.Add(gwtransport.DefaultMaxRest), tr.Stats()[0].Keys[1].Until)
}

// A shared round-robin counter decides the start; when the Store cannot
// answer, the local counter does.
func TestStoreRoundRobin(t *testing.T) {
	st := &recStore{rrOK: true, rr: 1}
	f := newFleet(t, 3, list, gwtransport.WithStore(st), gwtransport.WithStrategy(gwtransport.StrategyRoundRobin))
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, served(t, f))
	}
	require.Equal(t, []string{"p1/m", "p0/m", "p2/m"}, got, "positions 1, 3, 5")
	st.mu.Lock()
	st.rrOK = false
	st.mu.Unlock()
	got = nil
	for i := 0; i < 3; i++ {
		got = append(got, served(t, f))
	}
	require.Equal(t, []string{"p0/m", "p1/m", "p2/m"}, got, "the local counter")
}

// A configuration file naming Redis, in a program that does not import
// redisstore, is refused with the import path; bad values name the field.
func TestConfigStateRedis(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"state:\n  redis:\n    addr: 127.0.0.1:1\n", `gwtransport: state.redis: no redis store is registered: import _ "github.com/gwtransport/gwtransport/redisstore"`},
		{"state:\n  redis:\n    db: -1\n", "gwtransport: config: state.redis.db: must be 0 to 15 (Redis's default 16 databases), got -1"},
		{"state:\n  redis:\n    db: 16\n", "gwtransport: config: state.redis.db: must be 0 to 15 (Redis's default 16 databases), got 16"},
		{"state:\n  redis:\n    addr: redis.internal\n", `gwtransport: config: state.redis.addr: must be host:port, got "redis.internal"`},
		{"state:\n  redis:\n    addr: \":6379\"\n", `gwtransport: config: state.redis.addr: must be host:port with a port from 1 to 65535, got ":6379"`},
		{"state:\n  redis:\n    addr: redis:0\n", `gwtransport: config: state.redis.addr: must be host:port with a port from 1 to 65535, got "redis:0"`},
		{"state:\n  redis:\n    addr: redis:http\n", `gwtransport: config: state.redis.addr: must be host:port with a port from 1 to 65535, got "redis:http"`},
		{"state:\n  redis:\n    timeout: -1s\n", "gwtransport: config: state.redis.timeout: must not be negative, got -1s"},
		{"state:\n  redis:\n    adr: x\n", "gwtransport: config: state.redis.adr: unknown field (want one of: addr, db, password_env, prefix, timeout, username)"},
	} {
		cfg, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\n" + tc.yaml))
		if err == nil {
			_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg))
		}
		require.EqualError(t, err, tc.err, tc.yaml)
	}
	cfg, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/gpt-4o\nstate: {}\n"))
	require.NoError(t, err)
	_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg))
	require.NoError(t, err, "an empty state section keeps memory")
}

// Another replica's fact settling a breaker whose probe this replica holds
// frees that lease in the Store at once: the probe's own verdict will say
// nothing, and the lease must not keep every replica from probing.
func TestMirrorFactFreesOwnLease(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st))
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	require.Equal(t, "p1/m", served(t, f))
	f.clock.mu.Lock()
	f.clock.now = f.clock.now.Add(11 * time.Second)
	f.clock.mu.Unlock()
	f.servers[0].SetFault(&gatewaytest.Fault{Delay: 300 * time.Millisecond})
	done := make(chan string)
	go func() {
		res, _, err := post(t, context.Background(), f.tr, f.servers[0].URL, nil)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- res.Header.Get(gwtransport.HeaderTarget)
	}()
	require.Eventually(t, func() bool { return f.tr.Stats()[0].Breaker == gwtransport.BreakerHalfOpen }, 5*time.Second, time.Millisecond)
	st.layouts[0].Mirror.Apply(gwtransport.Fact{Kind: gwtransport.FactBreakerClosed, Target: 0, At: f.clock.Now()})
	st.mu.Lock()
	require.Equal(t, []int{0}, st.released)
	st.mu.Unlock()
	require.Equal(t, "p0/m", <-done)
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker)
	require.Equal(t, []gwtransport.FactKind{gwtransport.FactBreakerOpen}, st.kinds(), "the probe's verdict found the breaker closed")
}

// Another replica took the probe lease (Mirror.ProbeTaken): an open
// breaker past its cooldown, or a half-open one without a probe of its
// own, waits for that probe without asking the Store, for at most this
// replica's own lease (the attempt timeout); within the cooldown, or
// closed, nothing changes; the probe freed, this replica probes.
func TestMirrorProbeTaken(t *testing.T) {
	st := &recStore{}
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithStore(st), gwtransport.WithTimeout(20*time.Second))
	m := st.layouts[0].Mirror
	advance := func(d time.Duration) {
		f.clock.mu.Lock()
		f.clock.now = f.clock.now.Add(d)
		f.clock.mu.Unlock()
	}
	m.ProbeTaken(0, time.Minute)
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker, "closed: nothing to wait for")
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	require.Equal(t, "p1/m", served(t, f))
	openUntil := f.tr.Stats()[0].BreakerUntil
	m.ProbeTaken(0, time.Minute)
	s := f.tr.Stats()[0]
	require.Equal(t, gwtransport.BreakerOpen, s.Breaker, "within the cooldown")
	require.Equal(t, openUntil, s.BreakerUntil)

	advance(11 * time.Second)
	m.ProbeTaken(0, time.Hour) // longer than this replica's lease (20 s)
	s = f.tr.Stats()[0]
	require.Equal(t, gwtransport.BreakerHalfOpen, s.Breaker)
	require.Equal(t, f.clock.Now().Add(20*time.Second), s.BreakerUntil, "at most this replica's own lease")
	require.Equal(t, "p1/m", served(t, f))
	st.mu.Lock()
	require.Zero(t, st.acquires, "the Store is not asked while the other replica's probe is out")
	st.mu.Unlock()
	m.ProbeTaken(0, 5*time.Second) // a new lease of the other replica
	require.Equal(t, f.clock.Now().Add(5*time.Second), f.tr.Stats()[0].BreakerUntil)
	m.ProbeTaken(0, -time.Second) // junk
	m.ProbeTaken(9, time.Second)  // no such target
	require.Equal(t, f.clock.Now().Add(5*time.Second), f.tr.Stats()[0].BreakerUntil)

	m.ProbeFreed(0)
	require.Equal(t, "p0/m", served(t, f), "the other probe freed: this replica probes")
	st.mu.Lock()
	require.Equal(t, 1, st.acquires)
	st.mu.Unlock()
	require.Equal(t, gwtransport.BreakerClosed, f.tr.Stats()[0].Breaker)
}
