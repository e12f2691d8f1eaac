package gwtransport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepClock is a fake clock whose Sleep returns at once, advancing its
// time, unless ctx is done.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

// modelCounter is a provider answering 200 to everything, counting the
// requests per model.
type modelCounter struct {
	mu  sync.Mutex
	got []string
	srv *httptest.Server
}

func newModelCounter(t *testing.T) *modelCounter {
	m := &modelCounter{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		body := b.String()
		i := strings.Index(body, `"model":"`)
		model := body[i+9:]
		model = model[:strings.IndexByte(model, '"')]
		m.mu.Lock()
		m.got = append(m.got, model)
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"` + model + `","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`))
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *modelCounter) models() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got...)
}

// coolState is what keeps one target out at the start of a request.
type coolState struct {
	open, probing, keys, interval bool // breaker open; half-open with another's probe; keys resting; key within its KeyInterval
	window                        int  // minutes (1..3) until a time window around now ends; 0 for none
	noKey                         bool // no key at all: excluded for good (unsent)
	d                             [3]time.Duration
}

// TestCoolingWaitModel is a model-based test of waiting for cooling
// targets: random routes whose targets are kept out by random breaker,
// key, KeyInterval and time-window states (alone or together), random
// caller deadlines and wait caps, on the fake clock. The model predicts
// the one outcome: a target available now is used at once (no wait); else
// the request waits exactly until the earliest excluded target comes back
// when that is within the cap and before the deadline, and sends to it;
// else it fails with ErrNoTarget and RetryAfter equal to that earliest
// return, having slept nothing and sent nothing.
func TestCoolingWaitModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 2026))
	// An hour ahead, 20 s into a minute: the caller's deadlines (on this
	// time line, as the gateway reads them) never pass for real.
	start := time.Now().UTC().Truncate(time.Minute).Add(time.Hour + 20*time.Second)
	minute := start.Truncate(time.Minute)
	waited, failed, direct := 0, 0, 0
	for c := 0; c < 400; c++ {
		srv := newModelCounter(t)
		clock := &stepClock{now: start}
		n := 1 + rng.IntN(4)
		states := make([]coolState, n)
		var targets []string
		opts := []Option{WithEnv(func(string) (string, bool) { return "", false }), WithClock(clock), WithMaxRetries(0)}
		windows := map[string][]Window{}
		for i := range states {
			st := &states[i]
			for k := range st.d {
				st.d[k] = time.Duration(1+rng.IntN(90)) * time.Second
			}
			switch rng.IntN(9) {
			case 0:
				st.open = true
			case 1:
				st.probing = true
			case 2:
				st.keys = true
			case 3:
				st.interval = true
			case 4:
				st.window = 1 + rng.IntN(3)
			case 5:
				st.noKey = true
			case 6:
				st.open, st.keys = true, true
			case 7:
				st.window, st.probing = 1+rng.IntN(3), true
			}
			name := fmt.Sprintf("p%d", i)
			p := Provider{Name: name, BaseURL: srv.srv.URL + "/" + name, APIKeys: []string{"key-" + name + "-a", "key-" + name + "-b"}}
			if st.interval {
				p.APIKeys = p.APIKeys[:1]
				p.KeyInterval = Duration(st.d[2])
			}
			if st.noKey {
				p.APIKeys = nil
			}
			opts = append(opts, WithProvider(p))
			target := name + "/m" + fmt.Sprint(i)
			targets = append(targets, target)
			if st.window > 0 {
				windows[target] = []Window{{Start: minute.Add(-time.Minute).Format("15:04"), End: minute.Add(time.Duration(st.window) * time.Minute).Format("15:04")}}
			}
		}
		opts = append(opts, WithTimeWindows(windows))
		bound := DefaultMaxRetryWait
		switch rng.IntN(3) {
		case 0:
			bound = time.Duration(10+rng.IntN(60)) * time.Second
			opts = append(opts, WithMaxRetryWait(bound))
		case 1:
			bound = time.Duration(10+rng.IntN(60)) * time.Second
			opts = append(opts, WithMaxRetryWait(0), WithMaxRest(bound))
		}
		g, err := compile(targets, opts)
		require.NoError(t, err)
		rt := g.routes["gateway"]
		// The model: when each target comes back (start: now; zero: never).
		back := make([]time.Time, n)
		for i, st := range states {
			tg := rt.targets[i]
			back[i] = start
			later := func(d time.Duration) {
				if at := start.Add(d); at.After(back[i]) {
					back[i] = at
				}
			}
			if st.open {
				tg.breaker.mu.Lock()
				tg.breaker.open(start.Add(st.d[0]))
				tg.breaker.mu.Unlock()
				later(st.d[0])
			}
			if st.probing {
				tg.breaker.mu.Lock()
				tg.breaker.state, tg.breaker.lease, tg.breaker.leaseUntil = BreakerHalfOpen, 99, start.Add(st.d[0])
				tg.breaker.mu.Unlock()
				later(st.d[0])
			}
			if st.keys {
				pool := tg.prov.pool
				pool.report(0, 429, st.d[1], 0, start)
				pool.report(1, 429, st.d[1]+time.Second, 0, start)
				later(st.d[1])
			}
			if st.interval {
				// The key was used a little while ago.
				used := start.Add(-st.d[2] / 2)
				tg.prov.pool.keys[0].lastUsed = used
				later(used.Add(st.d[2]).Sub(start))
			}
			if st.window > 0 {
				later(time.Duration(st.window)*time.Minute - 20*time.Second)
			}
			if st.noKey {
				back[i] = time.Time{}
			}
		}
		var deadline time.Duration
		ctx := context.Background()
		if rng.IntN(2) == 0 {
			deadline = time.Duration(1+rng.IntN(100)) * time.Second
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, start.Add(deadline))
			defer cancel()
		}
		// Expected: the first target in order available now (a target
		// without a key is tried unsent on the way); else the earliest
		// return.
		want, wantWait, wantErr := "", time.Duration(-1), false
		var earliest time.Time
		for i := range states {
			if back[i].Equal(start) && !states[i].noKey {
				want = targets[i]
				break
			}
		}
		if want == "" {
			for i := range states {
				if !back[i].IsZero() && !back[i].Equal(start) && (earliest.IsZero() || back[i].Before(earliest)) {
					earliest = back[i]
				}
			}
			d := earliest.Sub(start)
			switch {
			case earliest.IsZero():
				wantErr = true
			case d <= bound && (deadline == 0 || d < deadline):
				wantWait = d
				for i := range states {
					if !back[i].IsZero() && !back[i].After(earliest) {
						want = targets[i]
						break
					}
				}
			default:
				wantErr = true
			}
		}
		where := fmt.Sprintf("case %d: states %+v bound %s deadline %s", c, states, bound, deadline)

		tr := &Transport{base: http.DefaultTransport}
		tr.bind.reconfigure(g)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/v1/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res, err := tr.RoundTrip(req)
		if wantErr {
			require.Error(t, err, where)
			assert.Empty(t, clock.sleeps, where)
			assert.Empty(t, srv.models(), where)
			anyCooling := !earliest.IsZero()
			var e *Error
			require.True(t, errors.As(err, &e), where)
			if anyCooling {
				require.ErrorIs(t, err, ErrNoTarget, where)
				assert.Equal(t, earliest.Sub(start), e.RetryAfter, where)
				d, ok := RetryAfterOf(err)
				assert.True(t, ok, where)
				assert.Equal(t, earliest.Sub(start), d, where)
			} else {
				assert.Zero(t, e.RetryAfter, where)
			}
			failed++
			continue
		}
		require.NoError(t, err, where)
		res.Body.Close()
		assert.Equal(t, []string{want[strings.IndexByte(want, '/')+1:]}, srv.models(), where)
		if wantWait < 0 {
			assert.Empty(t, clock.sleeps, where)
			direct++
		} else {
			assert.Equal(t, []time.Duration{wantWait}, clock.sleeps, where)
			assert.LessOrEqual(t, wantWait, bound, where)
			waited++
		}
	}
	t.Logf("%d waited, %d failed, %d served at once", waited, failed, direct)
	assert.NotZero(t, waited)
	assert.NotZero(t, failed)
	assert.NotZero(t, direct)
}

// gateClock is a fake clock whose Sleep blocks until the test advances it
// (release) or ctx ends; started reports each Sleep as it begins.
type gateClock struct {
	mu      sync.Mutex
	now     time.Time
	started chan time.Duration
	release chan struct{}
}

func newGateClock(now time.Time) *gateClock {
	return &gateClock{now: now, started: make(chan time.Duration, 8), release: make(chan struct{})}
}

func (c *gateClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *gateClock) Sleep(ctx context.Context, d time.Duration) error {
	c.started <- d
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.release:
		c.mu.Lock()
		c.now = c.now.Add(d)
		c.mu.Unlock()
		return nil
	}
}

// oneRoute compiles a route over targets served by srv, on clock.
func oneRoute(t *testing.T, srv *modelCounter, clock Clock, n int, opts ...Option) (*Transport, *route) {
	t.Helper()
	var targets []string
	base := []Option{WithEnv(func(string) (string, bool) { return "", false }), WithClock(clock), WithMaxRetries(0)}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%d", i)
		base = append(base, WithProvider(Provider{Name: name, BaseURL: srv.srv.URL + "/" + name, Auth: AuthNone}))
		targets = append(targets, fmt.Sprintf("%s/m%d", name, i))
	}
	g, err := compile(targets, append(base, opts...))
	require.NoError(t, err)
	tr := &Transport{base: http.DefaultTransport}
	tr.bind.reconfigure(g)
	return tr, g.routes["gateway"]
}

func gatewayRequest(ctx context.Context) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/v1/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	return req
}

type roundTripResult struct {
	res *http.Response
	err error
}

func goRoundTrip(tr *Transport, req *http.Request) chan roundTripResult {
	done := make(chan roundTripResult, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		if res != nil {
			res.Body.Close()
		}
		done <- roundTripResult{res, err}
	}()
	return done
}

// TestCoolingWaitCancelled: a caller that gives up during a wait for a
// cooling target gets its context's error at once, with nothing sent (and
// goleak, in TestMain, finds no goroutine left behind).
func TestCoolingWaitCancelled(t *testing.T) {
	for _, kind := range []string{"open", "probing"} {
		t.Run(kind, func(t *testing.T) {
			srv := newModelCounter(t)
			now := time.Now()
			clock := newGateClock(now)
			tr, rt := oneRoute(t, srv, clock, 2)
			for i, tg := range rt.targets {
				until := now.Add(time.Duration(5+i) * time.Second)
				tg.breaker.mu.Lock()
				if kind == "open" {
					tg.breaker.open(until)
				} else {
					tg.breaker.state, tg.breaker.lease, tg.breaker.leaseUntil = BreakerHalfOpen, 99, until
				}
				tg.breaker.mu.Unlock()
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := goRoundTrip(tr, gatewayRequest(ctx))
			assert.Equal(t, 5*time.Second, slept(t, clock))
			t0 := time.Now()
			cancel()
			select {
			case r := <-done:
				assert.Less(t, time.Since(t0), time.Second)
				require.ErrorIs(t, r.err, context.Canceled)
				assert.NotErrorIs(t, r.err, ErrNoTarget)
			case <-time.After(5 * time.Second):
				t.Fatal("the request did not end when its caller gave up")
			}
			assert.Empty(t, srv.models())
			for _, tg := range rt.targets {
				tg.breaker.mu.Lock()
				assert.Empty(t, tg.breaker.watchers, "no watcher left on %s", tg.name)
				tg.breaker.mu.Unlock()
			}
		})
	}
}

// TestCoolingWaitEndsWithTheProbe: a request waiting for a target whose
// half-open breaker has another request's probe in flight wakes as soon as
// that probe ends, not at the end of its lease: a probe that succeeds lets
// it through at once; a probe that fails reopens the breaker, and the
// request waits again for the new cooldown (bounded), then probes itself.
func TestCoolingWaitEndsWithTheProbe(t *testing.T) {
	for _, verdict := range []string{"success", "failure", "released"} {
		t.Run(verdict, func(t *testing.T) {
			srv := newModelCounter(t)
			now := time.Now()
			clock := newGateClock(now)
			tr, rt := oneRoute(t, srv, clock, 1, WithCircuitBreaker(Breaker{ConsecutiveFailures: 1, Cooldown: Duration(7 * time.Second)}), WithTimeout(30*time.Second))
			b := rt.targets[0].breaker
			b.mu.Lock()
			b.open(now.Add(-time.Second))
			b.mu.Unlock()
			ok, lease, _ := b.admit(now, 30*time.Second) // another request's probe
			require.True(t, ok)

			var events []Event
			var emu sync.Mutex
			rt.s.onEvent = func(e Event) { emu.Lock(); events = append(events, e); emu.Unlock() }
			ctx, trail := ContextWithTrail(context.Background())
			done := goRoundTrip(tr, gatewayRequest(ctx))
			assert.Equal(t, 30*time.Second, slept(t, clock), "waits at most for the lease")
			switch verdict {
			case "success":
				b.record(now, verdictSuccess, 0)
			case "failure":
				b.record(now, verdictFailure, 0)
				// Woken, it finds the breaker open for the cooldown and
				// waits for that.
				assert.Equal(t, 7*time.Second, slept(t, clock))
				clock.release <- struct{}{}
			case "released":
				lease.release()
			}
			select {
			case r := <-done:
				require.NoError(t, r.err)
				assert.Equal(t, "p0/m0", r.res.Header.Get(HeaderTarget))
			case <-time.After(5 * time.Second):
				t.Fatal("the request did not wake when the probe ended")
			}
			assert.Equal(t, []string{"m0"}, srv.models())
			as := trail.Attempts()
			require.Len(t, as, 1)
			emu.Lock()
			var waits []time.Duration
			for _, e := range events {
				if e.Kind == EventWait {
					assert.Equal(t, "p0/m0", e.Target)
					waits = append(waits, e.Wait)
				}
			}
			emu.Unlock()
			if verdict == "failure" {
				assert.Equal(t, []time.Duration{30 * time.Second, 7 * time.Second}, waits)
				assert.Equal(t, 7*time.Second, as[0].CoolingWait, "the part of the waits the clock saw")
			} else {
				assert.Equal(t, []time.Duration{30 * time.Second}, waits)
				assert.Zero(t, as[0].CoolingWait, "woken before the clock moved")
			}
			b.mu.Lock()
			assert.Empty(t, b.watchers)
			b.mu.Unlock()
		})
	}
}

// TestCoolingWaitsAreBounded: targets that keep slipping away (another
// request takes each probe first) are waited for at most maxCoolingWaits
// times, and never longer in total than the cap; then ErrNoTarget.
func TestCoolingWaitsAreBounded(t *testing.T) {
	srv := newModelCounter(t)
	clock := &stepClock{now: time.Now()}
	tr, rt := oneRoute(t, srv, clock, 1, WithTimeout(2*time.Second))
	b := rt.targets[0].breaker
	hold := func() {
		b.mu.Lock()
		b.open(clock.now.Add(-time.Second))
		b.mu.Unlock()
		ok, _, _ := b.admit(clock.Now(), 2*time.Second)
		require.True(t, ok)
	}
	hold()
	// Each time the request wakes, another request has just taken the
	// probe again: the clock re-takes the lease after every sleep.
	slipping := &slipClock{stepClock: clock, after: hold}
	rt.s.clock = slipping
	_, err := tr.RoundTrip(gatewayRequest(context.Background()))
	require.ErrorIs(t, err, ErrNoTarget)
	assert.Len(t, clock.sleeps, maxCoolingWaits)
	assert.Empty(t, srv.models())
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 2*time.Second, e.RetryAfter)
}

// slipClock runs after following every sleep: the world moving on while
// the request slept.
type slipClock struct {
	*stepClock
	after func()
}

func (c *slipClock) Sleep(ctx context.Context, d time.Duration) error {
	err := c.stepClock.Sleep(ctx, d)
	c.after()
	return err
}

// slept returns the duration of the next Sleep the clock starts, failing
// the test when none starts within 5 s.
func slept(t *testing.T, c *gateClock) time.Duration {
	t.Helper()
	select {
	case d := <-c.started:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not wait")
		return 0
	}
}
