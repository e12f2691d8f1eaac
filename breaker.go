package gwtransport

import (
	"fmt"
	"sync"
	"time"
)

// Breaker configures the circuit breaker kept for every target. It opens
// after ConsecutiveFailures failed attempts in a row, or when FailureRate of
// the last Window attempts failed (once MinAttempts were made); while open
// the target is not offered and requests go to the other targets. After
// Cooldown one probe is let through (half-open): success closes the
// breaker, failure opens it again. A Retry-After longer than the cooldown
// extends it, and a later, longer one extends it again; a shorter one never
// shortens it. Only availability failures count: network errors, timeouts,
// 408, 429 and 5xx.
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
	// (default 20).
	Window int `json:"window,omitempty"`
	// MinAttempts is the least number of attempts in the window before
	// FailureRate applies (default 10).
	MinAttempts int `json:"min_attempts,omitempty"`
	// Cooldown is how long the breaker stays open before a probe (default
	// 10 s).
	Cooldown Duration `json:"cooldown,omitempty"`
}

// DefaultBreaker is the breaker used when none is configured.
var DefaultBreaker = Breaker{ConsecutiveFailures: 5, Window: 20, MinAttempts: 10, Cooldown: Duration(10 * time.Second)}

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
	}
	if b.Cooldown > 0 {
		d.Cooldown = b.Cooldown
	}
	d.FailureRate = b.FailureRate
	d.Disabled = b.Disabled
	return d
}

func (b Breaker) validate() error {
	if b.ConsecutiveFailures < 0 || b.Window < 0 || b.MinAttempts < 0 || b.Cooldown < 0 || b.FailureRate < 0 || b.FailureRate > 1 {
		return fmt.Errorf("gwtransport: circuit breaker: counts and cooldown must not be negative, and the failure rate must be in [0, 1]")
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

// breaker is one target's circuit breaker.
type breaker struct {
	cfg Breaker

	mu          sync.Mutex
	state       BreakerState
	consecutive int
	recent      []bool // ring of the last Window outcomes, true = failure
	next        int
	filled      int
	openUntil   time.Time
}

func newBreaker(cfg Breaker) *breaker {
	cfg = cfg.withDefaults()
	return &breaker{cfg: cfg, state: BreakerClosed, recent: make([]bool, cfg.Window)}
}

// blocked reports whether the breaker keeps the target out now, and until
// when.
func (b *breaker) blocked(now time.Time) (bool, time.Time) {
	if b.cfg.Disabled {
		return false, time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		return now.Before(b.openUntil), b.openUntil
	case BreakerHalfOpen:
		// One probe is out; the others wait for its verdict.
		return true, b.openUntil
	}
	return false, time.Time{}
}

// picked records that the target was chosen; an open breaker whose
// cooldown has passed lets this request through as the probe, and picked
// reports that change.
func (b *breaker) picked(now time.Time) bool {
	if b.cfg.Disabled {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.state = BreakerHalfOpen
		return true
	}
	return false
}

// record notes an attempt's outcome and returns the new state when it
// changed. retryAfter (0 if none) extends an open breaker's cooldown.
func (b *breaker) record(now time.Time, failed bool, retryAfter time.Duration) (BreakerState, bool) {
	if b.cfg.Disabled {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	before := b.state
	b.recent[b.next] = failed
	b.next = (b.next + 1) % len(b.recent)
	if b.filled < len(b.recent) {
		b.filled++
	}
	if !failed {
		b.consecutive = 0
		if b.state == BreakerHalfOpen {
			b.state = BreakerClosed
			b.clearWindow()
		}
		return b.state, b.state != before
	}
	b.consecutive++
	trip := b.state == BreakerHalfOpen || b.consecutive >= b.cfg.ConsecutiveFailures
	if !trip && b.cfg.FailureRate > 0 && b.filled >= b.cfg.MinAttempts {
		n := 0
		for i := 0; i < b.filled; i++ {
			if b.recent[i] {
				n++
			}
		}
		trip = float64(n) >= b.cfg.FailureRate*float64(b.filled)
	}
	if trip || b.state == BreakerOpen {
		until := now.Add(time.Duration(b.cfg.Cooldown))
		if retryAfter > time.Duration(b.cfg.Cooldown) {
			until = now.Add(retryAfter)
		}
		if trip && b.state != BreakerOpen {
			b.openUntil = until
		} else if until.After(b.openUntil) {
			b.openUntil = until // a later, longer wait extends; never shortens
		}
		b.state = BreakerOpen
	}
	return b.state, b.state != before
}

func (b *breaker) clearWindow() {
	for i := range b.recent {
		b.recent[i] = false
	}
	b.next, b.filled = 0, 0
}

func (b *breaker) snapshot() (BreakerState, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.openUntil
}
