package gwtransport

import (
	"context"
	"log/slog"
	"time"
)

// TargetStats describes one target of one route, live. It never contains a
// credential.
type TargetStats struct {
	// Route is the intercepted model name the target belongs to.
	Route string
	// Target is "<provider>/<model>".
	Target string
	// Provider and Model are the two halves of Target.
	Provider, Model string
	// Alias is the target's alias, if any (see WithAliases).
	Alias string
	// Weight is the configured weight (1 for a list of models).
	Weight float64
	// Breaker is the circuit breaker's state ("" when the breaker is
	// disabled); BreakerUntil the end of its cooldown when open, the end
	// of its probe's lease when half-open with a probe in flight, zero
	// otherwise.
	Breaker      BreakerState
	BreakerUntil time.Time // see Breaker
	// Attempts made at this target, of which Successes and Failures
	// (availability failures: network, timeouts, 408, 429, 5xx).
	Attempts, Successes, Failures int64
	// Latency is the moving average time to response of its successes.
	Latency time.Duration
	// Excluded says why the target would not be offered now, if so.
	Excluded string
	// Keys describes the provider's configured API keys.
	Keys []KeyStats
}

func (g *gateway) stats() []TargetStats {
	now := g.s.clock.Now()
	var out []TargetStats
	for _, rt := range g.order {
		for _, t := range rt.targets {
			st, until := t.breaker.snapshot(now)
			if t.breaker.cfg.Disabled {
				st = ""
			}
			out = append(out, TargetStats{
				Route: rt.name, Target: t.name, Provider: t.prov.name, Model: t.model, Alias: t.alias, Weight: t.weight,
				Breaker: st, BreakerUntil: until,
				Attempts: t.stats.attempts.Load(), Successes: t.stats.successes.Load(), Failures: t.stats.failures.Load(),
				Latency:  t.stats.latency(),
				Excluded: t.excluded(now, nil),
				Keys:     t.prov.pool.stats(now),
			})
		}
	}
	return out
}

// excluded says why the target cannot be tried now, or "". ownCreds is
// the provider whose credentials the caller's request carries: its key
// pool does not matter.
func (t *target) excluded(now time.Time, ownCreds *provider) string {
	return t.exclusion(now, ownCreds).why
}

// EventKind says what an [Event] reports.
type EventKind string

// The kinds of events.
const (
	// EventAttempt: an attempt ended (Attempt is set).
	EventAttempt EventKind = "attempt"
	// EventFallback: the request moves from Target to Next.
	EventFallback EventKind = "fallback"
	// EventBreaker: Target's circuit breaker changed to State.
	EventBreaker EventKind = "breaker"
	// EventKey: API key number KeyIndex of Target's provider changed to
	// State ("resting" or "disabled").
	EventKey EventKind = "key"
	// EventWait: every target left is cooling (breaker open or probing,
	// keys resting or within their KeyInterval, a time window) and the
	// request waits Wait for Target, the first expected back, before it
	// looks again.
	EventWait EventKind = "wait"
)

// Event is what the event hook (see [WithOnEvent]) and the logger receive.
// It never contains a credential.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Time is when, on the injected clock.
	Time time.Time
	// Route is the intercepted model name.
	Route string
	// Target is the "<provider>/<model>" the event is about.
	Target string
	// Next is the target a fallback moves to (EventFallback).
	Next string
	// State is the breaker's new state (EventBreaker) or the key's
	// ("resting", "disabled"; EventKey).
	State string
	// KeyIndex is the key's position in its provider's pool (EventKey).
	KeyIndex int
	// Attempt is the attempt that ended (EventAttempt).
	Attempt *Attempt
	// Wait is how long the request waits for a cooling target
	// (EventWait); a probe in flight that ends sooner ends it sooner.
	Wait time.Duration
}

// emit sends an event to the hook and the logger.
func (rt *route) emit(e Event) {
	s := rt.s
	if s.onEvent != nil {
		s.onEvent(e)
	}
	if s.logger == nil {
		return
	}
	attrs := []slog.Attr{slog.String("route", e.Route), slog.String("target", e.Target)}
	level := slog.LevelDebug
	msg := "gwtransport " + string(e.Kind)
	switch e.Kind {
	case EventAttempt:
		a := e.Attempt
		attrs = append(attrs, slog.Int("try", a.Try), slog.Int("status", a.Status), slog.String("action", a.Action.String()), slog.Duration("duration", a.Duration))
		if a.Code != "" {
			attrs = append(attrs, slog.String("code", a.Code))
		}
		if a.Err != nil {
			attrs = append(attrs, slog.String("error", a.Err.Error()))
		}
	case EventFallback:
		level = slog.LevelInfo
		attrs = append(attrs, slog.String("next", e.Next))
	case EventBreaker:
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("state", e.State))
	case EventKey:
		level = slog.LevelWarn
		attrs = append(attrs, slog.Int("key_index", e.KeyIndex), slog.String("state", e.State))
	case EventWait:
		level = slog.LevelInfo
		attrs = append(attrs, slog.Duration("wait", e.Wait))
	}
	s.logger.LogAttrs(context.Background(), level, msg, attrs...)
}
