package gwtransport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a caller may meet while reading a streamed response the gateway
// has committed to. None of them is io.EOF: a truncated answer is never
// presented as a complete one.
var (
	// ErrStreamTruncated: the stream ended before it was complete: without
	// [DONE], without a finish reason for every choice, and without a
	// Responses terminal event (response.completed, response.incomplete).
	ErrStreamTruncated = errors.New("gwtransport: stream ended before it was complete")
	// ErrStreamIdle: a read waited on the provider for longer than the idle
	// limit.
	ErrStreamIdle = errors.New("gwtransport: stream stalled past the idle limit")
	// ErrStreamMalformed: an event's data was neither JSON nor [DONE], a
	// line had white space before "data:" or "event:", or a line was
	// longer than MaxStreamLineBytes.
	ErrStreamMalformed = errors.New("gwtransport: malformed stream event")
	// ErrMissingCredentials: a target's provider has no API key (or no base
	// URL, Azure's endpoint say) configured and the caller's client does not
	// serve it. The target is skipped unsent; the error names the
	// environment variable to set.
	ErrMissingCredentials = errors.New("gwtransport: missing credentials")
	// ErrNoTarget: no target could be tried: each is in an excluded time
	// window, behind an open circuit breaker, or out of usable keys, and
	// none comes back within the wait the request allows (the cap of
	// WithMaxRetryWait, or WithMaxRest when that is 0, and the caller's
	// deadline). The *Error's RetryAfter says when the earliest comes back
	// (see RetryAfterOf).
	ErrNoTarget = errors.New("gwtransport: no target available")
)

// Attempt records one try at one target.
type Attempt struct {
	// Route is the intercepted model name ("gateway").
	Route string
	// Target is "<provider>/<model>".
	Target string
	// Try is the attempt number at this target, from 1.
	Try int
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code is the provider's error code, if any.
	Code string
	// Action is what the gateway did next.
	Action Action
	// Duration is the time to the response headers (or the first event of
	// a stream, or the end of a verified non-streamed body), or to the
	// error.
	Duration time.Duration
	// Wait is the pause before the next attempt at the same target.
	Wait time.Duration
	// CoolingWait is how long the request waited, just before this
	// attempt, for a cooling target to come back (every target left was
	// excluded by its breaker, its keys' rests or KeyInterval, or a time
	// window); 0 when it did not wait.
	CoolingWait time.Duration
	// Err is the cause when the attempt failed.
	Err error
	// Continued marks the parts of a rescued stream (see
	// WithModelContinuation): an attempt that continued a broken stream,
	// or the break of a stream that was itself a continuation.
	Continued bool
}

// String renders the attempt for logs and the reason header; it never
// contains a credential, nor a URL's query string.
func (a Attempt) String() string {
	var b strings.Builder
	a.writeTo(&b)
	return b.String()
}

// writeTo writes String's text to b, without a string of its own.
func (a Attempt) writeTo(b *strings.Builder) {
	var num [20]byte
	b.WriteString(a.Target)
	b.WriteByte('#')
	b.Write(strconv.AppendInt(num[:0], int64(a.Try), 10))
	b.WriteByte(' ')
	switch {
	case a.Status != 0:
		b.Write(strconv.AppendInt(num[:0], int64(a.Status), 10))
	case a.Err != nil:
		b.WriteString(redactQueries(a.Err.Error()))
	default:
		b.WriteString("no response")
	}
	if a.Code != "" {
		b.WriteByte(' ')
		b.WriteString(a.Code)
	}
	if a.Status != 0 && a.Err != nil {
		b.WriteByte(' ')
		b.WriteString(redactQueries(a.Err.Error()))
	}
}

// Error is returned by RoundTrip when no target produced an HTTP response
// the caller could be given: every attempt failed at the network level,
// only a fallback's refusal answered after an earlier target failed with
// no response (the refusal must not hide that failure), or the caller's
// context ended. It names every attempt. errors.Is matches the context's
// error when the deadline or cancellation stopped the request, and any
// attempt's cause; errors.As reaches the latest cause first.
type Error struct {
	// Route is the intercepted model name.
	Route string
	// Attempts lists every attempt in order.
	Attempts []Attempt
	// Stop is the context error that ended the request early, if any, or
	// ErrNoTarget (wrapped, naming why each target was excluded) when no
	// attempt could be sent.
	Stop error
	// RetryAfter is, with ErrNoTarget, how long from the request's end
	// until the earliest excluded target comes back: its breaker's
	// cooldown or probe lease, its keys' rests, disablements or
	// KeyInterval, its time window's end (as known then; another request
	// may take it first). 0 when unknown or none comes back (a target
	// without a key, windows covering the whole day). See [RetryAfterOf].
	RetryAfter time.Duration
}

// Error summarises every attempt. It never shows a URL's query string.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gwtransport: %q failed after %d attempt(s)", e.Route, len(e.Attempts))
	if e.Stop != nil {
		fmt.Fprintf(&b, " (%s)", redactQueries(e.Stop.Error()))
	}
	for i, a := range e.Attempts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// Unwrap returns the context error that stopped the request, if any, then
// every attempt's cause, the last first.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Stop != nil {
		errs = append(errs, e.Stop)
	}
	// The last cause first, then the earlier ones: errors.As finds the
	// latest, errors.Is any (a reset before a fallback's refusal, say).
	for i := len(e.Attempts) - 1; i >= 0; i-- {
		if err := e.Attempts[i].Err; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Trail collects the attempts of the requests made with a context from
// [ContextWithTrail]. It is safe for concurrent use.
type Trail struct {
	mu       sync.Mutex
	attempts []Attempt
	// malformed counts the malformed stream events dropped (see
	// WithStreamMalformedLimit).
	malformed atomic.Int64
}

// MalformedDropped returns how many malformed events of the request's
// committed stream were dropped, never delivered (see
// WithStreamMalformedLimit).
func (t *Trail) MalformedDropped() int { return int(t.malformed.Load()) }

// Attempts returns a copy of the attempts recorded so far.
func (t *Trail) Attempts() []Attempt {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Attempt(nil), t.attempts...)
}

func (t *Trail) add(a Attempt) {
	t.mu.Lock()
	t.attempts = append(t.attempts, a)
	t.mu.Unlock()
}
