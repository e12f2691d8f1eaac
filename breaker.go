package gwtransport

import (
	"errors"
	"fmt"
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
