package gwtransport

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Breaker configures the circuit breaker kept for every target. It opens
// after ConsecutiveFailures failed attempts in a row, or when FailureRate of
// the last Window attempts failed (once MinAttempts were made); while open
// the target is not offered and requests go to the other targets. After
// Cooldown one probe is let through (half-open) under a lease: any answer
// that is not an availability failure (a success, but also a 400, 404 or
// context_length_exceeded: the target is reachable) closes the breaker, an
// availability failure opens it again, and a probe that is never sent, or
// whose caller gave up, or whose lease (the target's attempt timeout, 60 s
// without one) lapses without a verdict, lets the next request probe. A
// Retry-After longer than the cooldown extends it, up to [WithMaxRest], and
// a later, longer one extends it again; a shorter one never shortens it.
// Only the target's own availability failures count: network errors, the
// attempt's own timeout, 408, 429, 5xx and broken stream starts; never the
// caller's cancellation or deadline, nor a missing credential.
type Breaker struct {
	// Disabled turns the breaker off.
	Disabled bool `json:"disabled,omitempty"`
	// ConsecutiveFailures opens the breaker (default 5; 0 keeps the
	// default, use Disabled to turn it off).
	ConsecutiveFailures int `json:"consecutive_failures,omitempty"`
	// FailureRate in (0, 1] opens the breaker when that share of the last
	// Window attempts failed; 0 disables this rule.
	FailureRate float64 `json:"failure_rate,omitempty"`
	// Window is the number of recent attempts FailureRate looks at
	// (default 20, at most 10,000).
	Window int `json:"window,omitempty"`
	// MinAttempts is the least number of attempts in the window before
	// FailureRate applies (default 10, or Window when smaller); it must
	// not exceed Window when FailureRate is set.
	MinAttempts int `json:"min_attempts,omitempty"`
	// Cooldown is how long the breaker stays open before a probe (default
	// 10 s, at most 24 h).
	Cooldown Duration `json:"cooldown,omitempty"`
}

// DefaultBreaker is the breaker used when none is configured.
var DefaultBreaker = Breaker{ConsecutiveFailures: 5, Window: 20, MinAttempts: 10, Cooldown: Duration(10 * time.Second)}

// Limits of a Breaker: a larger window would only cost memory, and a
// longer cooldown would keep a recovered target out for good.
const (
	maxBreakerWindow   = 10000
	maxBreakerCooldown = 24 * time.Hour
)

// defaultProbeLease is the lease of a half-open probe at a target without
// an attempt timeout.
const defaultProbeLease = DefaultTimeout

func (b Breaker) withDefaults() Breaker {
	d := DefaultBreaker
	if b.ConsecutiveFailures > 0 {
		d.ConsecutiveFailures = b.ConsecutiveFailures
	}
	if b.Window > 0 {
		d.Window = b.Window
	}
	if b.MinAttempts > 0 {
		d.MinAttempts = b.MinAttempts
	} else if d.MinAttempts > d.Window {
		d.MinAttempts = d.Window // a small window is full sooner
	}
	if b.Cooldown > 0 {
		d.Cooldown = b.Cooldown
	}
	d.FailureRate = b.FailureRate
	d.Disabled = b.Disabled
	return d
}

// validate refuses settings that are out of range, and those with which
// the breaker could never trip or never recover, naming the field.
func (b Breaker) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if b.ConsecutiveFailures < 0 {
		bad("ConsecutiveFailures must not be negative, got %d", b.ConsecutiveFailures)
	}
	if !(b.FailureRate >= 0 && b.FailureRate <= 1) { // NaN fails both
		bad("FailureRate must be in [0, 1], got %v", b.FailureRate)
	}
	if b.Window < 0 || b.Window > maxBreakerWindow {
		bad("Window must be in [0, %d], got %d", maxBreakerWindow, b.Window)
	}
	if b.MinAttempts < 0 {
		bad("MinAttempts must not be negative, got %d", b.MinAttempts)
	}
	if b.Cooldown < 0 || time.Duration(b.Cooldown) > maxBreakerCooldown {
		bad("Cooldown must be in [0, %s], got %s", maxBreakerCooldown, time.Duration(b.Cooldown))
	}
	if len(errs) == 0 && b.FailureRate > 0 && !b.Disabled {
		if d := b.withDefaults(); d.MinAttempts > d.Window {
			bad("MinAttempts %d is larger than Window %d: FailureRate could never open the breaker", d.MinAttempts, d.Window)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("gwtransport: circuit breaker: %w", errors.Join(errs...))
	}
	return nil
}

// BreakerState is the state of a target's circuit breaker.
type BreakerState string

// The breaker states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half-open"
)

// verdict is what one attempt says about its target's availability.
type verdict int

const (
	// verdictNone: nothing (the caller gave up, or nothing was sent).
	verdictNone verdict = iota
	// verdictSuccess: a 2xx response.
	verdictSuccess
	// verdictReachable: an HTTP response that is not an availability
	// failure (400, 401, 404...): the request was refused, the target is up.
	verdictReachable
	// verdictFailure: an availability failure of the target itself.
	verdictFailure
)

// breaker is one target's circuit breaker: an explicit state machine.
//
//	state      event                                   next state
//	closed     success                                 closed, failure streak reset
//	closed     failure                                 open until now+rest if it trips, else closed
//	closed     reachable, none                         closed
//	open       admit before openUntil                  open (refused)
//	open       admit from openUntil                    half-open, lease to this probe
//	open       failure (a request already in flight)   open, openUntil extended (never shortened)
//	open       success, reachable, none                open
//	half-open  admit while the lease runs              half-open (refused)
//	half-open  admit once the lease lapsed or freed    half-open, new lease to this probe
//	half-open  success, reachable                      closed, counts cleared
//	half-open  failure                                 open until now+rest
//	half-open  release by the lease's holder           half-open, no lease
//
// rest is the larger of Cooldown and the response's Retry-After, which the
// caller caps (WithMaxRest). All times come from the injected clock.
type breaker struct {
	cfg Breaker

	mu          sync.Mutex
	state       BreakerState
	consecutive int
	recent      []bool // ring of the last Window outcomes while closed, true = failure
	next        int
	filled      int
	failed      int            // failures in the ring
	openUntil   time.Time      // open: end of the cooldown
	lease       uint64         // half-open: the probe out, 0 when none
	leaseUntil  time.Time      // half-open: when that probe's lease lapses
	leases      uint64         // leases handed out, for their ids
	seen        time.Time      // the latest time the breaker was given
	watchers    []probeWatcher // told once when the probe in flight ends (see watchProbe)
	watchIDs    uint64
}

// probeWatcher is a function to call when a half-open breaker's probe ends.
type probeWatcher struct {
	id uint64
	f  func()
}

// watchProbe arranges for f to be called once when the probe in flight
// ends: its verdict, its release, or a new lease after it lapsed. ok is
// false, and f is never called, when no probe is in flight; stop forgets
// f.
func (b *breaker) watchProbe(f func()) (stop func(), ok bool) {
	if b.cfg.Disabled {
		return func() {}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != BreakerHalfOpen || b.lease == 0 {
		return func() {}, false
	}
	b.watchIDs++
	id := b.watchIDs
	b.watchers = append(b.watchers, probeWatcher{id: id, f: f})
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, w := range b.watchers {
			if w.id == id {
				b.watchers = append(b.watchers[:i], b.watchers[i+1:]...)
				return
			}
		}
	}, true
}

// probeEnded tells the watchers that the probe in flight ended, and forgets
// them. Called with b.mu held; the watchers must not call back into the
// breaker.
func (b *breaker) probeEnded() {
	for _, w := range b.watchers {
		w.f()
	}
	b.watchers = nil
}

// rewind keeps a clock set back from stretching the cooldown or the lease:
// when now is before the latest time seen, both keep the time they had
// left then. Called with b.mu held, first thing.
func (b *breaker) rewind(now time.Time) {
	if now.Before(b.seen) {
		back := now.Sub(b.seen)
		if !b.openUntil.IsZero() {
			b.openUntil = b.openUntil.Add(back)
		}
		if !b.leaseUntil.IsZero() {
			b.leaseUntil = b.leaseUntil.Add(back)
		}
	}
	b.seen = now
}

func newBreaker(cfg Breaker) *breaker {
	cfg = cfg.withDefaults()
	return &breaker{cfg: cfg, state: BreakerClosed, recent: make([]bool, cfg.Window)}
}

// probeLease is a half-open breaker's permission to send one probe. The
// zero value holds nothing.
type probeLease struct {
	b  *breaker
	id uint64
}

// release frees the lease when its probe got no verdict (never sent, or
// its caller gave up), so that the next request probes at once. Releasing
// a lease that was settled, lapsed or released already does nothing.
func (l probeLease) release() {
	if l.b == nil {
		return
	}
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen && b.lease == l.id {
		b.lease, b.leaseUntil = 0, time.Time{}
		b.probeEnded()
	}
}

// blocked reports whether the breaker keeps the target out now, in which
// state, and until when.
func (b *breaker) blocked(now time.Time) (bool, BreakerState, time.Time) {
	if b.cfg.Disabled {
		return false, "", time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	switch b.state {
	case BreakerOpen:
		return now.Before(b.openUntil), b.state, b.openUntil
	case BreakerHalfOpen:
		// One probe at a time; the others wait for its verdict.
		return b.lease != 0 && now.Before(b.leaseUntil), b.state, b.leaseUntil
	}
	return false, b.state, time.Time{}
}

// closed reports whether the target may be retried: a request retries a
// target only while its breaker is closed (or disabled).
func (b *breaker) closed() bool {
	if b.cfg.Disabled {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == BreakerClosed
}

// admit lets a request that picked the target through. An open breaker
// whose cooldown has passed, or a half-open one whose probe lease lapsed or
// was freed, admits this request as its probe under a lease of the given
// length; ok is false when another probe holds the lease or the cooldown
// runs. halfOpened reports the change from open to half-open.
func (b *breaker) admit(now time.Time, lease time.Duration) (ok bool, probe probeLease, halfOpened bool) {
	if b.cfg.Disabled {
		return true, probeLease{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	switch b.state {
	case BreakerOpen:
		if now.Before(b.openUntil) {
			return false, probeLease{}, false
		}
		b.state = BreakerHalfOpen
		halfOpened = true
	case BreakerHalfOpen:
		if b.lease != 0 && now.Before(b.leaseUntil) {
			return false, probeLease{}, false
		}
	default:
		return true, probeLease{}, false
	}
	if lease <= 0 {
		lease = defaultProbeLease
	}
	if b.lease != 0 {
		b.probeEnded() // the lapsed probe's
	}
	b.leases++
	b.lease, b.leaseUntil = b.leases, now.Add(lease)
	return true, probeLease{b: b, id: b.lease}, halfOpened
}

// record feeds an attempt's verdict to the breaker and returns the new
// state when it changed. rest (0 if none) is the response's Retry-After,
// already capped: it extends the cooldown of a breaker it opens or finds
// open.
func (b *breaker) record(now time.Time, v verdict, rest time.Duration) (BreakerState, bool) {
	if b.cfg.Disabled || v == verdictNone {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	until := now.Add(max(time.Duration(b.cfg.Cooldown), rest))
	switch b.state {
	case BreakerClosed:
		if v == verdictReachable {
			return b.state, false
		}
		if b.count(v == verdictFailure) {
			b.open(until)
			return b.state, true
		}
	case BreakerOpen:
		if v == verdictFailure && until.After(b.openUntil) {
			b.openUntil = until // a later, longer wait extends; never shortens
		}
	case BreakerHalfOpen:
		if v == verdictFailure {
			b.open(until)
		} else {
			b.close()
		}
		return b.state, true
	}
	return b.state, false
}

// count adds an outcome of a closed breaker and reports whether it trips.
func (b *breaker) count(failed bool) bool {
	if b.recent[b.next] {
		b.failed--
	}
	b.recent[b.next] = failed
	b.next = (b.next + 1) % len(b.recent)
	if b.filled < len(b.recent) {
		b.filled++
	}
	if !failed {
		b.consecutive = 0
		return false
	}
	b.failed++
	b.consecutive++
	if b.consecutive >= b.cfg.ConsecutiveFailures {
		return true
	}
	return b.cfg.FailureRate > 0 && b.filled >= b.cfg.MinAttempts &&
		float64(b.failed) >= b.cfg.FailureRate*float64(b.filled)
}

func (b *breaker) open(until time.Time) {
	b.state, b.openUntil = BreakerOpen, until
	b.lease, b.leaseUntil = 0, time.Time{}
	b.probeEnded()
}

func (b *breaker) close() {
	b.state = BreakerClosed
	b.lease, b.leaseUntil = 0, time.Time{}
	b.probeEnded()
	b.consecutive, b.next, b.filled, b.failed = 0, 0, 0, 0
	for i := range b.recent {
		b.recent[i] = false
	}
}

// snapshot returns the state and, when open, the end of the cooldown (when
// half-open with a probe out, the end of its lease).
func (b *breaker) snapshot(now time.Time) (BreakerState, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	switch {
	case b.state == BreakerOpen:
		return b.state, b.openUntil
	case b.state == BreakerHalfOpen && b.lease != 0:
		return b.state, b.leaseUntil
	}
	return b.state, time.Time{}
}

// capRest bounds a rest derived from a Retry-After (see WithMaxRest).
func capRest(d, limit time.Duration) time.Duration {
	if limit > 0 && d > limit {
		return limit
	}
	if d < 0 {
		return 0
	}
	return d
}
