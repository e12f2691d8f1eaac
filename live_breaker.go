package gwtransport

import (
	"sync"
	"time"
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
// With a Store (live.go), replicas share the breaker:
//
//	state      event                                   next state
//	open       admit from openUntil, Store refuses     half-open, the other replica's lease (refused)
//	half-open  admit, Store refuses                    half-open, the other replica's lease (refused)
//	half-open  the other replica's probe freed         half-open, no lease
//	open (past cooldown), half-open (no live probe of ours)
//	           another replica took the probe lease    half-open, the other replica's lease (refused)
//	any        another replica's opening, not older    open, openUntil extended (never shortened)
//	open, h-o  another replica's closing, not older    closed, counts cleared (our lease freed in the Store)
//
// Failure counts stay per replica; every opening and closing here is
// handed to the Store.
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
	changed     time.Time // when it last opened or closed, to order the other replicas' facts

	// share is the Store's session (nil without one) and index the
	// breaker's target in its Layout: a probe lease is asked of it, and
	// every opening and closing handed to it (see live.go).
	share StoreSession
	index int
}

// remoteLease is the lease id of a probe another replica holds.
const remoteLease = ^uint64(0)

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
		if b.share != nil {
			b.share.ReleaseProbe(b.index)
		}
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
		b.lease, b.leaseUntil = 0, time.Time{}
	}
	if b.share != nil {
		if granted, until := b.share.AcquireProbe(b.index, now.Add(lease)); !granted {
			// Another replica probes: wait for its verdict like for a
			// local probe's, until its lease lapses.
			b.lease, b.leaseUntil = remoteLease, until
			return false, probeLease{}, halfOpened
		}
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
			b.publish(Fact{Kind: FactBreakerOpen, At: now, Until: until})
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

// open opens the breaker until the given time; b.seen is now (see rewind).
func (b *breaker) open(until time.Time) {
	now := b.seen
	b.state, b.openUntil = BreakerOpen, until
	b.lease, b.leaseUntil = 0, time.Time{}
	b.probeEnded()
	b.changed = now
	b.publish(Fact{Kind: FactBreakerOpen, At: now, Until: until})
}

func (b *breaker) close() {
	now := b.seen
	b.reset()
	b.changed = now
	b.publish(Fact{Kind: FactBreakerClosed, At: now})
}

// publish hands a change to the Store, if any. Called with b.mu held.
func (b *breaker) publish(f Fact) {
	if b.share != nil {
		f.Target = b.index
		b.share.Publish(f)
	}
}

// remoteOpen applies another replica's opening of the breaker at `at`,
// until `until`: a fact older than the breaker's own last change is
// ignored, and an open breaker's cooldown is only ever extended.
func (b *breaker) remoteOpen(now, at, until time.Time) {
	if b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	if at.Before(b.changed) || !until.After(now) {
		return
	}
	if b.state == BreakerOpen {
		if until.After(b.openUntil) {
			b.openUntil = until
		}
		return
	}
	b.dropLease()
	b.state, b.openUntil = BreakerOpen, until
	b.lease, b.leaseUntil = 0, time.Time{}
	b.probeEnded()
	b.changed = at
}

// dropLease frees, in the Store, the probe lease this replica holds when
// another replica's fact settles the breaker first: its probe's verdict
// will find the breaker changed and say nothing. Called with b.mu held.
func (b *breaker) dropLease() {
	if b.share != nil && b.state == BreakerHalfOpen && b.lease != 0 && b.lease != remoteLease {
		b.share.ReleaseProbe(b.index)
	}
}

// remoteClose applies another replica's closing of the breaker at `at`
// (its probe succeeded), unless the breaker changed since.
func (b *breaker) remoteClose(at time.Time) {
	if b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if at.Before(b.changed) || b.state == BreakerClosed {
		return
	}
	b.dropLease()
	b.reset()
	b.changed = at
}

// remoteFreed applies the end, without a verdict, of another replica's
// probe: the next request here may probe.
func (b *breaker) remoteFreed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen && b.lease == remoteLease {
		b.lease, b.leaseUntil = 0, time.Time{}
		b.probeEnded()
	}
}

// remoteTaken applies another replica's taking of the probe lease until
// `until`: an open breaker past its cooldown, or a half-open one with no
// probe of its own out, waits for that probe (as for a lease the Store
// refused).
func (b *breaker) remoteTaken(now, until time.Time) {
	if b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	switch {
	case b.state == BreakerOpen && !now.Before(b.openUntil):
		b.state = BreakerHalfOpen
	case b.state == BreakerHalfOpen && (b.lease == 0 || b.lease == remoteLease || !now.Before(b.leaseUntil)):
		if b.lease != 0 && b.lease != remoteLease {
			b.probeEnded() // our lapsed probe's
		}
	default:
		return
	}
	b.lease, b.leaseUntil = remoteLease, until
}

// remoteHeld applies another replica's probe lease, until `until`, of a
// breaker that opened at `at` (read at a resynchronisation): unless the
// breaker changed since, it is half-open and waits for that probe.
func (b *breaker) remoteHeld(now, at, until time.Time) {
	if b.cfg.Disabled {
		return
	}
	b.mu.Lock()
	if b.state == BreakerClosed && !at.Before(b.changed) {
		b.state, b.openUntil, b.changed = BreakerOpen, now, at
	}
	b.mu.Unlock()
	b.remoteTaken(now, until)
}

// openFact returns, when the breaker is open, when it opened and until
// when: its standing fact.
func (b *breaker) openFact(now time.Time) (at, until time.Time, ok bool) {
	if b.cfg.Disabled {
		return time.Time{}, time.Time{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rewind(now)
	if b.state != BreakerOpen {
		return time.Time{}, time.Time{}, false
	}
	at = b.changed
	if at.IsZero() || at.After(now) {
		at = now
	}
	return at, b.openUntil, true
}

// reset closes the breaker and clears its counts. Called with b.mu held.
func (b *breaker) reset() {
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
