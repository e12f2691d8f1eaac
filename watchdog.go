package gwtransport

import (
	"context"
	"sync"
	"time"
)

// watchdog bounds the attempts of one run in time with a single timer for
// all of them: each attempt's limit (its response headers, or a stream's
// first event, within the attempt timeout) and each read of a body being
// verified (the body idle limit). When a bound passes, it ends the
// attempt's context.
//
// One timer per run, not one per attempt and one per verified body: a
// timer armed or stopped costs an allocation and the runtime's timer work
// (often a wake-up of the network poller), which was a large part of what
// an extra attempt cost. The timer is set to the earliest bound and, when
// it fires early (the bound it was set for was lifted or moved later), it
// looks again and is set to the next bound: an attempt that ends before its
// bounds leaves the timer as it is for the next attempt, and release stops
// it when the run is done. Every bound is checked against the clock when
// the timer fires, so a bound never fires early, and a firing meant for an
// earlier attempt never ends a later one.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	next  time.Time // when the timer is set to fire; zero when it is not
	due   time.Time // the armed attempt's limit; zero for none
	idle  time.Time // the current read's idle limit; zero for none
	// cancel ends the armed attempt; nil when no attempt is armed or a
	// bound has fired.
	cancel context.CancelFunc
	fired  uint8 // which bound ended the armed attempt: wdLimit, wdIdle
}

// watchdogFiring, when set (tests only), is called by fire between
// marking a bound as fired and ending the attempt's context: a delay
// there must not let the attempt loop reuse the context.
var watchdogFiring func()

// Bounds that fired.
const (
	wdLimit uint8 = 1 << iota // the attempt's limit
	wdIdle                    // a read's idle limit
)

// arm bounds a new attempt that started at start: limit (0 for none) from
// then on, and, when idle is not 0, the reads of its body as readStart
// says. cancel ends the attempt when a bound passes.
func (w *watchdog) arm(start time.Time, limit, idle time.Duration, cancel context.CancelFunc) {
	w.mu.Lock()
	w.due, w.idle, w.cancel, w.fired = time.Time{}, time.Time{}, cancel, 0
	if limit > 0 {
		w.due = start.Add(limit)
	}
	first := w.due
	if idle > 0 && (first.IsZero() || idle < limit) {
		// The earliest a read's idle limit can pass: a read bound later
		// needs no earlier timer.
		first = start.Add(idle)
	}
	w.setLocked(first, start)
	w.mu.Unlock()
}

// disarm lifts the attempt's bounds. It reports false when its limit fired
// first.
func (w *watchdog) disarm() bool {
	w.mu.Lock()
	w.cancel, w.due, w.idle = nil, time.Time{}, time.Time{}
	fired := w.fired
	w.mu.Unlock()
	return fired&wdLimit == 0
}

// timedOut reports whether the armed (or last armed) attempt's limit
// fired.
func (w *watchdog) timedOut() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired&wdLimit != 0
}

// idled reports whether a read's idle limit ended the attempt.
func (w *watchdog) idled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired&wdIdle != 0
}

// readStart bounds the read that starts now by d (no bound when d is 0);
// readDone lifts that bound.
func (w *watchdog) readStart(d time.Duration) {
	if d <= 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	if w.cancel != nil {
		w.idle = now.Add(d)
		w.setLocked(w.idle, now)
	}
	w.mu.Unlock()
}

// readDone lifts the bound of readStart.
func (w *watchdog) readDone() {
	w.mu.Lock()
	w.idle = time.Time{}
	w.mu.Unlock()
}

// release stops the timer: the run needs it no more (an attempt armed
// later sets it again).
func (w *watchdog) release() {
	w.mu.Lock()
	if w.timer != nil && !w.next.IsZero() {
		w.timer.Stop()
		w.next = time.Time{}
	}
	w.mu.Unlock()
}

// setLocked makes the timer fire at at, unless it is set to fire earlier
// already (it then looks again when it fires). A zero at sets nothing.
func (w *watchdog) setLocked(at, now time.Time) {
	if at.IsZero() || !w.next.IsZero() && !at.Before(w.next) {
		return
	}
	w.next = at
	if w.timer == nil {
		w.timer = time.AfterFunc(at.Sub(now), w.fire)
		return
	}
	w.timer.Reset(at.Sub(now))
}

// fire ends the armed attempt when one of its bounds passed; otherwise it
// sets the timer to the next bound.
func (w *watchdog) fire() {
	w.mu.Lock()
	w.next = time.Time{}
	if w.cancel == nil {
		w.mu.Unlock()
		return
	}
	now := time.Now()
	switch {
	case !w.due.IsZero() && !now.Before(w.due):
		w.fired |= wdLimit
	case !w.idle.IsZero() && !now.Before(w.idle):
		w.fired |= wdIdle
	default:
		next := w.due
		if !w.idle.IsZero() && (next.IsZero() || w.idle.Before(next)) {
			next = w.idle
		}
		w.setLocked(next, now)
		w.mu.Unlock()
		return
	}
	// Ended before the lock is let go: an attempt loop that sees the fire
	// (disarm) must also see its context ended, or it would reuse that
	// context for the next attempt and the late cancel would end that one
	// (attemptContext reuses only a context still alive).
	if watchdogFiring != nil {
		watchdogFiring()
	}
	w.cancel()
	w.cancel = nil
	w.mu.Unlock()
}

// attemptContext returns the context of the next attempt and what ends
// it: the previous attempt's when that one failed without ending it (a
// failed attempt's response is read and closed before the next attempt
// starts: nothing of it is left to end) over the same mark, else a new
// one over mark (r.mark, or the attempt span's context an observer
// gave; see observer.go). A
// context that a bound or the caller ended, or that went with a response,
// is never reused. One context per run, not one per attempt: each costs
// allocations, and more in net/http, which hangs its own under it.
func (r *run) attemptContext(mark context.Context) (context.Context, context.CancelFunc) {
	if r.actx == nil || r.actxMark != mark || r.actx.Err() != nil {
		if r.actx != nil {
			r.actxCancel()
		}
		r.actx, r.actxCancel = context.WithCancel(mark)
		r.actxMark = mark
	}
	return r.actx, r.actxCancel
}

// endAttempts ends what the run's attempts shared when no attempt is in
// flight any more: the watchdog's timer, and the context of the failed
// attempts (the successful attempt's context is its response's).
func (r *run) endAttempts() {
	r.wd.release()
	if r.actx != nil {
		r.actxCancel()
		r.actx = nil
	}
}
