package gwtransport

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// refBreaker is the reference model of a circuit breaker, written apart
// from the real one and in other terms: it keeps the whole outcome history
// since the breaker last closed and the time left (not an end time) on the
// cooldown and on the probe lease. The clock only ever takes time away
// from those; setting it back takes nothing.
type refBreaker struct {
	consec, window, minAttempts int
	rate                        float64
	cooldown, maxRest           time.Duration

	state     BreakerState
	history   []bool        // outcomes counted since the last close, true = failure
	openLeft  time.Duration // open: cooldown left
	probe     int           // half-open: the probe holding the lease, 0 for none
	leaseLeft time.Duration // half-open: lease left
	probes    int           // probes handed out
}

func (m *refBreaker) elapse(d time.Duration) {
	if d > 0 {
		m.openLeft -= d
		m.leaseLeft -= d
	}
}

func (m *refBreaker) blocked() bool {
	switch m.state {
	case BreakerOpen:
		return m.openLeft > 0
	case BreakerHalfOpen:
		return m.probe != 0 && m.leaseLeft > 0
	}
	return false
}

// left is how long the target stays out, when blocked.
func (m *refBreaker) left() time.Duration {
	if m.state == BreakerOpen {
		return m.openLeft
	}
	return m.leaseLeft
}

func (m *refBreaker) admit(lease time.Duration) (ok bool, probe int, halfOpened bool) {
	if m.state == BreakerClosed {
		return true, 0, false
	}
	if m.blocked() {
		return false, 0, false
	}
	halfOpened = m.state == BreakerOpen
	m.state = BreakerHalfOpen
	m.probes++
	m.probe, m.leaseLeft = m.probes, lease
	return true, m.probe, halfOpened
}

func (m *refBreaker) rest(retryAfter time.Duration) time.Duration {
	return max(m.cooldown, min(retryAfter, m.maxRest))
}

func (m *refBreaker) trips() bool {
	n := 0
	for i := len(m.history) - 1; i >= 0 && m.history[i]; i-- {
		n++
	}
	if n >= m.consec {
		return true
	}
	last := m.history[max(0, len(m.history)-m.window):]
	failed := 0
	for _, f := range last {
		if f {
			failed++
		}
	}
	return m.rate > 0 && len(last) >= m.minAttempts && float64(failed) >= m.rate*float64(len(last))
}

func (m *refBreaker) record(v verdict, retryAfter time.Duration) (BreakerState, bool) {
	if v == verdictNone {
		return "", false
	}
	before := m.state
	switch m.state {
	case BreakerClosed:
		if v == verdictReachable {
			break
		}
		m.history = append(m.history, v == verdictFailure)
		if v == verdictFailure && m.trips() {
			m.state, m.openLeft, m.probe = BreakerOpen, m.rest(retryAfter), 0
		}
	case BreakerOpen:
		if v == verdictFailure {
			m.openLeft = max(m.openLeft, m.rest(retryAfter))
		}
	case BreakerHalfOpen:
		if v == verdictFailure {
			m.state, m.openLeft, m.probe = BreakerOpen, m.rest(retryAfter), 0
		} else {
			m.state, m.history, m.probe = BreakerClosed, nil, 0
		}
		return m.state, true
	}
	return m.state, m.state != before
}

func (m *refBreaker) release(probe int) {
	if m.state == BreakerHalfOpen && m.probe == probe {
		m.probe = 0
	}
}

// TestBreakerModel applies random sequences of picks (probes), successes,
// availability failures, other responses (400, 404...), probes never sent,
// caller cancellations, Retry-After of every size (huge ones included) and
// clock jumps, forwards and backwards, to the real breaker and to the
// reference model, and compares what can be observed after every step:
// the state, whether the target is kept out and until when, what admit
// answers and every state change. It also checks liveness all along: the
// target is never kept out longer than the largest cooldown (with a capped
// Retry-After) or probe lease, and once that time has passed a request
// always gets through.
func TestBreakerModel(t *testing.T) {
	const runs, steps = 3000, 120
	rng := rand.New(rand.NewPCG(7, 2026))
	retryAfters := []time.Duration{0, time.Second, 9 * time.Second, 11 * time.Second, 90 * time.Second, 10 * time.Minute, 999999999 * time.Second}
	leases := []time.Duration{time.Second, 30 * time.Second, time.Minute}
	for run := 0; run < runs; run++ {
		cfg := Breaker{
			ConsecutiveFailures: 1 + rng.IntN(5),
			FailureRate:         []float64{0, 0, 0.3, 0.5, 1}[rng.IntN(5)],
			Window:              1 + rng.IntN(8),
			Cooldown:            Duration([]time.Duration{time.Second, 10 * time.Second, time.Minute}[rng.IntN(3)]),
		}
		cfg.MinAttempts = 1 + rng.IntN(cfg.Window)
		require.NoError(t, cfg.validate())
		maxRest := []time.Duration{time.Second, 30 * time.Second, DefaultMaxRest}[rng.IntN(3)]
		b := newBreaker(cfg)
		m := &refBreaker{consec: cfg.ConsecutiveFailures, window: cfg.Window, minAttempts: cfg.MinAttempts, rate: cfg.FailureRate,
			cooldown: time.Duration(cfg.Cooldown), maxRest: maxRest, state: BreakerClosed}
		bound := max(time.Duration(cfg.Cooldown), maxRest, time.Minute) // longest a target may stay out
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		held := map[int]probeLease{} // the model's probe ids and the real leases
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d (%+v, max rest %s), after:\n  %v\n%s", run, cfg, maxRest, trace[max(0, len(trace)-30):], fmt.Sprintf(format, args...))
		}
		for step := 0; step < steps; step++ {
			var op string
			switch k := rng.IntN(100); {
			case k < 22: // a request picks the target
				lease := leases[rng.IntN(len(leases))]
				ok, probe, half := b.admit(now, lease)
				wok, wprobe, whalf := m.admit(lease)
				op = fmt.Sprintf("admit(lease %s)=%t", lease, ok)
				if ok != wok || half != whalf || (probe.b != nil) != (wprobe != 0) {
					fail("%s: admit = %t, probe %t, half-opened %t; model %t, %t, %t", op, ok, probe.b != nil, half, wok, wprobe != 0, whalf)
				}
				if wprobe != 0 {
					held[wprobe] = probe
				}
			case k < 62: // an attempt's verdict
				v := []verdict{verdictSuccess, verdictReachable, verdictFailure, verdictFailure, verdictNone}[rng.IntN(5)]
				ra := retryAfters[rng.IntN(len(retryAfters))]
				st, changed := b.record(now, v, capRest(ra, maxRest))
				wst, wchanged := m.record(v, ra)
				op = fmt.Sprintf("record(%d, ra %s)", v, ra)
				if changed != wchanged || (changed && st != wst) {
					fail("%s = %s, %t; model %s, %t", op, st, changed, wst, wchanged)
				}
			case k < 72: // a probe never sent, or whose caller gave up: released
				id := rng.IntN(m.probes + 1)
				if rng.IntN(2) == 0 {
					b.record(now, verdictNone, 0) // the caller's cancellation counts for nothing
				}
				held[id].release()
				m.release(id)
				op = fmt.Sprintf("release(%d)", id)
			case k < 94: // the clock moves
				d := []time.Duration{time.Millisecond, time.Second, 5 * time.Second, 10 * time.Second, time.Minute, 5 * time.Minute, 24 * time.Hour, 50 * 365 * 24 * time.Hour}[rng.IntN(8)]
				if rng.IntN(5) == 0 {
					d = -d // set back
				}
				now = now.Add(d)
				m.elapse(d)
				op = fmt.Sprintf("clock %+v", d)
			default: // liveness: after the longest rest, a request gets through
				now = now.Add(bound)
				m.elapse(bound)
				ok, probe, half := b.admit(now, time.Second)
				wok, wprobe, whalf := m.admit(time.Second)
				op = fmt.Sprintf("clock +%s, admit", bound)
				if !ok || !wok || half != whalf {
					fail("%s: a request must get through: %t (model %t)", op, ok, wok)
				}
				if wprobe != 0 {
					held[wprobe] = probe
				}
			}
			trace = append(trace, op)
			blocked, st, until := b.blocked(now)
			snap, _ := b.snapshot(now)
			if st != m.state || snap != m.state {
				fail("state %s (snapshot %s), model %s", st, snap, m.state)
			}
			if blocked != m.blocked() {
				fail("blocked %t, model %t", blocked, m.blocked())
			}
			if blocked {
				if left := until.Sub(now); left != m.left() {
					fail("kept out for %s more, model %s", left, m.left())
				}
				if left := until.Sub(now); left > bound {
					fail("stuck: kept out for %s more, more than %s", left, bound)
				}
			}
			if closed := b.closed(); closed != (m.state == BreakerClosed) {
				fail("closed() = %t in state %s", closed, m.state)
			}
		}
	}
}

// refKey is the reference model of one pooled key, in time left.
type refKey struct {
	restLeft, disabledLeft, sinceUse time.Duration
	used                             bool
	uses                             int64
}

// TestKeyPoolModel applies random acquisitions, responses (200, 429 with
// Retry-After of every size including huge ones, 401, 403, 500) and clock
// jumps, forwards and backwards, to a real key pool and to a reference
// model, and compares after every step the key handed out, every key's
// state, end of rest and uses, whether a key is usable and when the first
// one will be. Liveness: no key rests longer than the cap (or is disabled
// longer than keyDisabledFor), and once that has passed every key is
// usable again.
func TestKeyPoolModel(t *testing.T) {
	const runs, steps = 2000, 100
	rng := rand.New(rand.NewPCG(11, 2026))
	retryAfters := []time.Duration{0, time.Millisecond, time.Second, 30 * time.Second, 10 * time.Minute, 999999999 * time.Second}
	for run := 0; run < runs; run++ {
		n := 1 + rng.IntN(4)
		interval := []time.Duration{0, 0, time.Second, 10 * time.Second}[rng.IntN(4)]
		maxRest := []time.Duration{500 * time.Millisecond, 30 * time.Second, DefaultMaxRest}[rng.IntN(3)]
		secrets := make([]string, n)
		for i := range secrets {
			secrets[i] = fmt.Sprint("k", i)
		}
		p := newKeyPool(secrets, interval)
		keys := make([]refKey, n)
		next := 0
		usable := func(i int) bool {
			k := keys[i]
			return k.restLeft <= 0 && k.disabledLeft <= 0 && (interval == 0 || !k.used || k.sinceUse >= interval)
		}
		bound := max(maxRest, keyDisabledFor, interval)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d (%d keys, interval %s, max rest %s), after:\n  %v\n%s", run, n, interval, maxRest, trace[max(0, len(trace)-30):], fmt.Sprintf(format, args...))
		}
		elapse := func(d time.Duration) {
			now = now.Add(d)
			if d <= 0 {
				return
			}
			for i := range keys {
				keys[i].restLeft -= d
				keys[i].disabledLeft -= d
				keys[i].sinceUse += d
			}
		}
		for step := 0; step < steps; step++ {
			var op string
			switch k := rng.IntN(100); {
			case k < 30:
				i, secret := p.acquire(now)
				want := -1
				for j := 0; j < n; j++ {
					if c := (next + j) % n; usable(c) {
						want = c
						break
					}
				}
				if want >= 0 {
					keys[want].used, keys[want].sinceUse = true, 0
					keys[want].uses++
					next = want + 1
				}
				op = fmt.Sprintf("acquire=%d", i)
				if i != want || (i >= 0 && secret != secrets[i]) {
					fail("%s, model %d", op, want)
				}
			case k < 65:
				i := rng.IntN(n)
				status := []int{200, 429, 429, 401, 403, 500}[rng.IntN(6)]
				ra := retryAfters[rng.IntN(len(retryAfters))]
				got := p.report(i, status, ra, maxRest, now)
				want := ""
				switch status {
				case 429:
					r := ra
					if r <= 0 {
						r = defaultKeyRest
					}
					if r = min(r, maxRest); r > 0 {
						keys[i].restLeft = max(keys[i].restLeft, r)
						want = "resting" // no rest, no event
					}
				case 401, 403:
					keys[i].disabledLeft = keyDisabledFor
					want = "disabled"
				}
				op = fmt.Sprintf("report(%d, %d, ra %s)", i, status, ra)
				if got != want {
					fail("%s = %q, model %q", op, got, want)
				}
			case k < 95:
				d := []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second, 10 * time.Second, time.Minute, 10 * time.Minute, 30 * 365 * 24 * time.Hour}[rng.IntN(7)]
				if rng.IntN(5) == 0 {
					d = -d
				}
				elapse(d)
				op = fmt.Sprintf("clock %+v", d)
			default: // liveness
				elapse(bound)
				op = fmt.Sprintf("clock +%s", bound)
				if !p.anyUsable(now) {
					fail("%s: no key usable", op)
				}
				for _, st := range p.stats(now) {
					if st.State != "active" {
						fail("%s: key %d still %s", op, st.Index, st.State)
					}
				}
			}
			trace = append(trace, op)
			any := false
			first := time.Duration(-1)
			for i, st := range p.stats(now) {
				k := keys[i]
				want, left := "active", time.Duration(0)
				switch {
				case k.disabledLeft > 0:
					want, left = "disabled", k.disabledLeft
				case k.restLeft > 0:
					want, left = "resting", k.restLeft
				}
				if st.State != want || st.Uses != k.uses || (left > 0 && st.Until.Sub(now) != left) {
					fail("key %d: %s until +%s, %d uses; model %s, +%s, %d uses", i, st.State, st.Until.Sub(now), st.Uses, want, left, k.uses)
				}
				if want == "resting" && left > maxRest || want == "disabled" && left > keyDisabledFor {
					fail("stuck: key %d %s for %s more", i, want, left)
				}
				any = any || usable(i)
				at := max(0, k.restLeft, k.disabledLeft)
				if interval > 0 && k.used {
					at = max(at, interval-k.sinceUse)
				}
				if first < 0 || at < first {
					first = at
				}
			}
			if got := p.anyUsable(now); got != any {
				fail("anyUsable = %t, model %t", got, any)
			}
			if got := p.nextUsable(now).Sub(now); got != first {
				fail("first usable in %s, model %s", got, first)
			}
		}
	}
}

// Settings with which a breaker could never trip or never recover are
// refused, naming the field; the defaults fit a small window.
func TestBreakerSettingsRefused(t *testing.T) {
	for _, c := range []struct {
		b    Breaker
		want string // "" when valid
	}{
		{Breaker{FailureRate: 0.5, Window: 20, MinAttempts: 30}, "MinAttempts 30 is larger than Window 20: FailureRate could never open the breaker"},
		{Breaker{FailureRate: 0.5, Window: 5}, ""}, // MinAttempts defaults to the window
		{Breaker{Window: 5, MinAttempts: 30}, ""},  // no FailureRate: MinAttempts unused
		{Breaker{FailureRate: 0.5, MinAttempts: 25}, "MinAttempts 25 is larger than Window 20"},
		{Breaker{FailureRate: nan()}, "FailureRate must be in [0, 1], got NaN"},
		{Breaker{FailureRate: 1.5}, "FailureRate must be in [0, 1], got 1.5"},
		{Breaker{FailureRate: -0.1}, "FailureRate must be in [0, 1]"},
		{Breaker{ConsecutiveFailures: -1}, "ConsecutiveFailures must not be negative, got -1"},
		{Breaker{Window: 1 << 40}, "Window must be in [0, 10000], got 1099511627776"},
		{Breaker{Window: -1}, "Window must be in [0, 10000], got -1"},
		{Breaker{MinAttempts: -2}, "MinAttempts must not be negative, got -2"},
		{Breaker{Cooldown: Duration(-time.Second)}, "Cooldown must be in [0, 24h0m0s], got -1s"},
		{Breaker{Cooldown: Duration(100 * 365 * 24 * time.Hour)}, "Cooldown must be in [0, 24h0m0s], got 876000h0m0s"},
		{Breaker{Cooldown: Duration(24 * time.Hour), FailureRate: 1, Window: 10000, MinAttempts: 10000}, ""},
		{DefaultBreaker, ""},
		{Breaker{Disabled: true, FailureRate: 0.5, MinAttempts: 30}, ""}, // off: its counts are unused
		{Breaker{Disabled: true, FailureRate: 2}, "FailureRate must be in [0, 1], got 2"},
		{Breaker{}, ""},
	} {
		err := c.b.validate()
		if c.want == "" {
			require.NoError(t, err, "%+v", c.b)
			continue
		}
		require.ErrorContains(t, err, "gwtransport: circuit breaker: ")
		require.ErrorContains(t, err, c.want, "%+v", c.b)
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}
