package gwtransport

import (
	"fmt"
	"time"
)

// DefaultStreamFirstEvent is the default limit on a stream's time to its
// first content event (see [WithStreamFirstEvent]): a healthy provider
// sends its first token within a few seconds, so a first content event
// slower than this is far slower than healthy peers and the request fails
// over. Reasoning models, which may think for longer before their first
// token, need more: raise it for them with [WithModelFirstEvent], or set 0
// there to lift the limit.
const DefaultStreamFirstEvent = 15 * time.Second

// WithStreamFirstEvent sets the longest time from sending a streamed request
// to its first content event, response headers included (default 15 s,
// [DefaultStreamFirstEvent]); keep-alives and lifecycle events do not
// count. A target that misses it fails over at once, like a silent one. It
// combines with the attempt timeout ([WithTimeout]): until a stream's first
// content event the smaller of the two non-zero limits applies; 0 means no
// first-event limit, the attempt timeout alone applies. Per-target values
// of [WithModelFirstEvent] override it. It leaves the idle limit as it is.
func WithStreamFirstEvent(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: stream first-event limit must not be negative, got %s", d)
		}
		s.firstEvent = d
		return nil
	}
}

// WithModelFirstEvent overrides the stream first-event limit (see
// [WithStreamFirstEvent]) of some targets, keyed by "<provider>/<model>"
// like [WithModelTimeout]. 0 means no first-event limit for that target
// (its attempt timeout alone applies): a reasoning model may opt out that
// way, or get a longer limit. Targets not in the map keep the route's
// limit.
func WithModelFirstEvent(m map[string]time.Duration) Option {
	return func(s *settings) error {
		for k, d := range m {
			if d < 0 {
				return fmt.Errorf("gwtransport: stream first-event limit for %q must not be negative, got %s", k, d)
			}
		}
		s.modelFirstEvent = m
		return nil
	}
}

// attemptLimit is how long an attempt at t may take to its response
// headers and, for a stream, to its first content event: the attempt
// timeout, or the first-event limit when the request streams and that is
// smaller (a zero limit is no limit); 0 when neither applies.
func (t *target) attemptLimit(stream bool) time.Duration {
	limit := t.timeout
	if stream && t.firstEvent > 0 && (limit == 0 || t.firstEvent < limit) {
		limit = t.firstEvent
	}
	return limit
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
