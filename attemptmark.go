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

// markAttempt returns ctx marked as an attempt's.
func markAttempt(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptKey{}, true)
}

// isAttempt reports whether req is an attempt some gateway built.
func isAttempt(req *http.Request) bool {
	return req.Context().Value(attemptKey{}) != nil
}
