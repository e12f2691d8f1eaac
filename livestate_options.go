package gwtransport

import (
	"fmt"
	"time"
)

// DefaultMaxRest is the longest a Retry-After can rest a key or keep a
// circuit breaker open (see [WithMaxRest]).
const DefaultMaxRest = 5 * time.Minute

// WithMaxRest caps the rests derived from a response's Retry-After
// (default 5 min): a rate-limited key rests at most this long, and a
// Retry-After extends a breaker's cooldown to at most this long (a
// configured Cooldown longer than d still applies in full). A provider
// answering "Retry-After: 999999999" cannot keep a key or a target out
// for years. When [WithMaxRetryWait] is 0 it also bounds the wait before a
// retry (a single wait is always bounded) and a request's waits for
// cooling targets. d must be positive.
func WithMaxRest(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("gwtransport: max rest must be positive, got %s", d)
		}
		s.maxRest = d
		return nil
	}
}
