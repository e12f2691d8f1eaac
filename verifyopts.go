package gwtransport

import (
	"fmt"
	"time"
)

const (
	// DefaultMaxVerifiedBody is the largest non-streamed 2xx body the
	// gateway reads to its end before handing the response over (see
	// [WithMaxVerifiedBody]).
	DefaultMaxVerifiedBody = 8 << 20
	// DefaultBodyIdle is the longest a read of a non-streamed body being
	// verified may wait on the provider (see [WithBodyIdle]); it matches
	// [DefaultStreamIdleTimeout].
	DefaultBodyIdle = 30 * time.Second
)

// WithMaxVerifiedBody bounds the verification of non-streamed responses
// (default [DefaultMaxVerifiedBody], 8 MiB). A 2xx answer to an
// intercepted request that is not streamed is read to its end before it is
// handed over: a body cut short, stalled past [WithBodyIdle], or that is not
// the JSON its Content-Type says or its first byte promises, fails the
// attempt like a 5xx ([ErrResponseTruncated], [ErrResponseIdle],
// [ErrResponseMalformed]), and a JSON object with a top-level non-null
// "error" member is classified as that error ([ErrResponseFailed]; handed
// over, when final, with the error status it implies). A body is read as
// JSON at least as broadly as the SDKs read it: whatever its Content-Type
// and Content-Encoding when it starts with '{' or '[', and whatever it
// starts with when its media type contains "json"; a compressed body is
// never parsed, and binary content (audio, images) that starts like JSON
// fails only when it is valid JSON with an error in band. A body whose Content-Length is larger
// than n, or that turns out larger while being read, is handed over
// unverified: the bytes read so far, then the rest, each byte once. 0 turns
// verification off (the response is the caller's once its headers arrive).
func WithMaxVerifiedBody(n int64) Option {
	return func(s *settings) error {
		if n < 0 {
			return fmt.Errorf("gwtransport: max verified body must not be negative, got %d", n)
		}
		s.verifyMax = n
		return nil
	}
}

// WithBodyIdle sets how long one read of a non-streamed body being verified
// may wait on the provider for its next bytes (default [DefaultBodyIdle],
// 30 s; 0: no limit). A stall fails the attempt with [ErrResponseIdle],
// retried like a 5xx. The attempt's own timeout keeps running until the
// body is verified as well.
func WithBodyIdle(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("gwtransport: body idle limit must not be negative, got %s", d)
		}
		s.bodyIdle = d
		return nil
	}
}
