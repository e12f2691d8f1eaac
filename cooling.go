package gwtransport

import (
	"context"
	"errors"
	"time"
)

// Waiting for cooling targets. When the picker finds no target to try now
// because every target left is cooling (its breaker open, or half-open with
// another request's probe in flight; every key of its provider resting,
// disabled or within its KeyInterval; inside a time window), the request
// waits for the earliest of them to come back, when that is soon enough,
// then looks again. Otherwise it ends with ErrNoTarget, and Error.RetryAfter
// says when the earliest target comes back.

// maxCoolingWaits bounds the waits for cooling targets in one request: a
// target that comes back may be taken by another request first (its probe,
// its key), and the request then waits again, at most this many times.
const maxCoolingWaits = 4

// exclusion is why a target cannot be tried now and when it comes back.
type exclusion struct {
	// why is the first reason, "" when the target may be tried now.
	why string
	// back is when every reason found now has ended (the latest of their
	// ends): its time window's end, its breaker's cooldown or the lease of
	// the probe in flight, the end of its keys' rests, disablements or
	// KeyInterval. Zero when it does not come back (time windows that
	// cover the whole day).
	back time.Time
	// probe says a half-open breaker's probe, another request's, is in
	// flight: the target may come back sooner, when that probe ends.
	probe bool
}

// exclusion says why the target cannot be tried now, if so, and when it
// comes back. ownCreds is the provider whose credentials the caller's
// request carries: its key pool does not matter.
func (t *target) exclusion(now time.Time, ownCreds *provider) exclusion {
	var e exclusion
	forever := false
	reason := func(why string, until time.Time) {
		if e.why == "" {
			e.why = why
		}
		if until.After(e.back) {
			e.back = until
		}
	}
	if w, ok := inWindow(t.windows, now, t.loc); ok {
		end, ok := windowsEnd(t.windows, now, t.loc)
		forever = !ok
		reason("in its excluded hours "+w.String(), end)
	}
	if blocked, st, until := t.breaker.blocked(now); blocked {
		if st == BreakerHalfOpen {
			e.probe = true
			reason("circuit half-open, its probe is in flight until "+until.UTC().Format(time.RFC3339), until)
		} else {
			reason("circuit open until "+until.UTC().Format(time.RFC3339), until)
		}
	}
	if t.prov.pool != nil && t.prov != ownCreds && !t.prov.pool.anyUsable(now) {
		reason("every API key is resting, disabled or within its KeyInterval", t.prov.pool.nextUsable(now))
	}
	if forever {
		e.back = time.Time{}
	}
	return e
}

// windowsEnd returns when the local time first falls outside every window,
// from now (which is inside one); ok is false when the windows leave no
// time of day free.
func windowsEnd(ws []window, now time.Time, loc *time.Location) (time.Time, bool) {
	at := now
	for range len(ws) + 1 {
		w, in := inWindow(ws, at, loc)
		if !in {
			return at, true
		}
		at = nextMinuteOfDay(at, w.end, loc)
	}
	return time.Time{}, false
}

// nextMinuteOfDay returns the first time after t whose local time is minute
// m of the day, at second 0.
func nextMinuteOfDay(t time.Time, m int, loc *time.Location) time.Time {
	lt := t.In(loc)
	y, mo, d := lt.Date()
	c := time.Date(y, mo, d, m/60, m%60, 0, 0, loc)
	if !c.After(t) {
		c = time.Date(y, mo, d+1, m/60, m%60, 0, 0, loc)
	}
	return c
}

// cooling notes an excluded target's return: the picker keeps the
// earliest, and the breakers whose probe in flight may end sooner.
func (p *picker) cooling(t *target, e exclusion) {
	if !e.back.IsZero() && (p.back.IsZero() || e.back.Before(p.back)) {
		p.back, p.backTarget = e.back, t.name
	}
	if e.probe {
		p.probing = append(p.probing, t.breaker)
	}
}

// retryAfter is how long from the last look until the earliest excluded
// target comes back; 0 when none does.
func (p *picker) retryAfter() time.Duration {
	if p.back.IsZero() {
		return 0
	}
	return max(p.back.Sub(p.now), 0)
}

// coolingBound is the longest a request waits for cooling targets, all its
// waits together: the route's cap on a single wait before a retry
// (WithMaxRetryWait, or WithMaxRest when that is 0).
func coolingBound(s *settings) time.Duration {
	if s.maxRetryWait > 0 {
		return s.maxRetryWait
	}
	return s.maxRest
}

// awaitCooling runs when the picker found no target to try now. When the
// earliest excluded target comes back within what is left of the cooling
// bound, before the caller's deadline, and the request may still send, it
// waits for it on the injected clock (waking early when a probe in flight
// at an excluded target ends) and reports true: look again. It reports
// false, with nothing waited, when nothing comes back soon enough, and the
// context's error when the caller gave up during the wait.
func (r *run) awaitCooling(ctx context.Context, rt *route, pick *picker) (bool, error) {
	s := rt.s
	if pick.back.IsZero() || r.coolWaits >= maxCoolingWaits || r.sent >= s.maxAttempts {
		return false, nil
	}
	now := s.clock.Now()
	d := max(pick.back.Sub(now), 0)
	if d > coolingBound(s)-r.cooled {
		return false, nil
	}
	if dl, ok := ctx.Deadline(); ok && d >= dl.Sub(now) {
		return false, nil
	}
	r.coolWaits++
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, b := range pick.probing {
		stop, ok := b.watchProbe(cancel)
		defer stop()
		if !ok {
			d = 0 // that probe ended meanwhile: look again now
		}
	}
	rt.emit(Event{Kind: EventWait, Time: now, Route: rt.name, Target: pick.backTarget, Wait: d})
	var err error
	if d > 0 {
		err = s.clock.Sleep(wctx, d)
	}
	waited := min(max(s.clock.Now().Sub(now), 0), d)
	r.cooled += waited
	r.coolPending += waited
	if err != nil && ctx.Err() != nil {
		return false, ctx.Err()
	}
	return true, nil
}

// RetryAfterOf returns the hint of an error from the gateway that found no
// target to try (errors.Is(err, ErrNoTarget)): how long until the earliest
// target comes back (its breaker's cooldown or probe lease, its keys'
// rests or KeyInterval, its time window's end). ok is false when err
// carries no such hint.
func RetryAfterOf(err error) (d time.Duration, ok bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}
