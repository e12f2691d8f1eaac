package gwtransport

import (
	"fmt"
	"time"
)

// WithStreamFirstEvent sets the longest time from sending a streamed request
// to its first content event (default 0: the attempt timeout alone
// applies); keep-alives and lifecycle events do not count. A target that
// misses it fails over. It leaves the idle limit as it is.
func WithStreamFirstEvent(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: stream first-event limit must not be negative, got %s", d)
		}
		s.firstEvent = d
		return nil
	}
}

// WithStreamIdle sets how long a read of a committed stream may wait on the
// provider for its next bytes (default 30 s; 0: no limit); a stall ends the
// stream with [ErrStreamIdle]. Only time blocked on the provider counts: a
// caller that pauses between reads is never cut off. It leaves the
// first-event limit as it is.
func WithStreamIdle(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: stream idle limit must not be negative, got %s", d)
		}
		s.streamIdle = d
		return nil
	}
}
