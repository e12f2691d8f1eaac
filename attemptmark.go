package gwtransport

import (
	"context"
	"net/http"
)

// attemptKey marks the context of every attempt request the gateway builds.
// A gwtransport layer that meets a marked request (a Transport in the
// *http.Client an installed openai-go client sends its own-provider
// attempts through, a Transport whose base is another Transport, two
// Inits over the same client chain) passes it through untouched: the
// request is already one attempt of one gateway, and routing it again
// would re-target it and multiply the attempts.
type attemptKey struct{}

// attemptCtx is the caller's context marked as an attempt's. A run makes
// one for all its attempts (one 16-byte allocation per routed request; it
// is not embedded in run, so a stream the caller reads does not keep the
// run and its request body alive). Done, Err,
// Deadline and every other value are the caller's context's, so
// context.WithCancel over it propagates cancellation just as over the
// caller's context (no extra goroutine).
type attemptCtx struct{ context.Context }

// Value reports the mark, and otherwise the caller's context's values.
func (c *attemptCtx) Value(key any) any {
	if _, ok := key.(attemptKey); ok {
		return true
	}
	return c.Context.Value(key)
}

// isAttempt reports whether req is an attempt some gateway built.
func isAttempt(req *http.Request) bool {
	return req.Context().Value(attemptKey{}) != nil
}
