package gwtransport

import "fmt"

// Continuation says how a target continues an assistant message it is
// given as the last message of a chat request (an assistant prefill): the
// gateway uses it to rescue a committed chat stream that broke (see
// WithModelContinuation). The zero value, ContinueNone, means the target is
// never sent a prefill.
type Continuation string

// The continuation capabilities of a target.
const (
	// ContinueNone: the target is never asked to continue a broken stream.
	// A plain OpenAI model answers a trailing assistant message with a
	// fresh turn, so the caller would receive duplicated text.
	ContinueNone Continuation = ""
	// ContinuePrefill: a trailing assistant message is continued as it is
	// (Anthropic-style prefill behind an OpenAI-compatible API, many
	// self-hosted servers).
	ContinuePrefill Continuation = "prefill"
	// ContinuePrefix: the trailing assistant message carries
	// "prefix": true (Mistral, DeepSeek).
	ContinuePrefix Continuation = "prefix"
	// ContinueFinalMessage: the body gets "continue_final_message": true
	// and "add_generation_prompt": false (vLLM, SGLang).
	ContinueFinalMessage Continuation = "continue_final_message"
)

// valid reports whether c is one of the defined capabilities.
func (c Continuation) valid() bool {
	switch c {
	case ContinueNone, ContinuePrefill, ContinuePrefix, ContinueFinalMessage:
		return true
	}
	return false
}

func (c Continuation) check(what string) error {
	if !c.valid() {
		return fmt.Errorf("gwtransport: continuation for %s: %q is not one of %q, %q, %q or %q (none)", what, string(c), ContinuePrefill, ContinuePrefix, ContinueFinalMessage, ContinueNone)
	}
	return nil
}

// errContinuationValue is the configuration error of a continuation that
// is not a known one (the value is not echoed: see confdecode.go).
const errContinuationValue = `must be one of "prefill", "prefix", "continue_final_message" or "" (none)`

// DefaultStreamMalformedLimit is how many malformed events break a
// committed stream: the first one. See WithStreamMalformedLimit.
const DefaultStreamMalformedLimit = 1

// WithContinuation turns the rescue of broken chat streams on or off for
// the whole gateway (default on). It only ever happens at targets declared
// capable with WithModelContinuation, so being on by default sends no
// prefill to any target that was not declared able to continue one.
func WithContinuation(on bool) Option {
	return func(s *settings) error {
		s.noContinuation = !on
		return nil
	}
}

// WithModelContinuation declares how some targets continue an assistant
// prefill (see Continuation); targets not named are ContinueNone. When a
// committed chat/completions stream breaks (a cut, a stall past the idle
// limit, a malformed event), the gateway resends the request to the next
// capable target with the text delivered so far as a final assistant
// message, and splices the continuation into the stream the caller is
// reading: the caller reads one answer and one [DONE]. Only a stream whose
// delivered deltas carried nothing but "role" and "content" (no tool
// call, refusal, reasoning, audio or logprobs), of a request with n ≤ 1
// and no logprobs, is spliced. The response headers were sent at the
// commit, so a spliced stream sets the response's Trailer at its end with
// the final X-Gwtransport-Target, X-Gwtransport-Attempts and
// X-Gwtransport-Fallback-Reason: read them from res.Trailer after EOF
// (with openai-go, the response given by option.WithResponseInto, once
// the stream's Next returned false). Every reader, go-openai's included,
// sees a splice in the trail (WithTrail, WithOnAttempt): the break, then
// an attempt marked Continued.
//
// Declare the mode the target really implements: a target declared
// ContinuePrefill that expects "prefix": true answers the prefill as a
// fresh turn, and the caller reads the delivered text twice.
func WithModelContinuation(m map[string]Continuation) Option {
	return func(s *settings) error {
		for k, c := range m {
			if err := c.check(fmt.Sprintf("%q", k)); err != nil {
				return err
			}
		}
		s.modelContinuation = m
		return nil
	}
}

// withDefaultContinuation sets the capability of every target of a route
// that WithModelContinuation does not name (a configuration file's
// defaults.continuation).
func withDefaultContinuation(c Continuation) Option {
	return func(s *settings) error {
		if err := c.check("all models"); err != nil {
			return err
		}
		s.continuation = c
		return nil
	}
}

// WithStreamMalformedLimit sets how many malformed events (data that is
// neither JSON nor [DONE]) a committed stream may carry before it is
// broken: n ≥ 1 (default 1: the first one breaks it; there is no "off",
// since a malformed event is never delivered). Up to n-1 malformed events
// are dropped, never delivered, and reported (EventStreamMalformed,
// Trail.MalformedDropped). The default is 1 because a malformed event's
// content is unknown: skipping it could silently drop text from the
// answer. Breaking the stream instead lets a capable target continue it
// from exactly the text delivered; without one, the read ends with
// ErrStreamMalformed.
func WithStreamMalformedLimit(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return fmt.Errorf("gwtransport: stream malformed limit must be at least 1, got %d", n)
		}
		s.malformedLimit = n
		return nil
	}
}

// EventStreamMalformed: a malformed event of Target's committed stream was
// dropped (see WithStreamMalformedLimit).
const EventStreamMalformed EventKind = "stream_malformed"
