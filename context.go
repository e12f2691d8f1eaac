package gwtransport

import (
	"context"
	"net/http"
	"strings"
)

// Context helpers. A request made with one of these contexts tells the
// gateway something for that request only: which target to try first
// ([ContextWithPreference]) and where to record its attempts
// ([ContextWithTrail]). They are named ContextWith... (like
// context.WithValue) rather than With..., which in this package is the
// prefix of an [Option] given to Init.

// trailKey is the context key of a request's Trail.
type trailKey struct{}

// ContextWithTrail returns a context that records every attempt of the gateway
// requests made with it, and the Trail to read them from:
//
//	ctx, trail := gwtransport.ContextWithTrail(ctx)
//	resp, err := client.Chat.Completions.New(ctx, params)
//	for _, a := range trail.Attempts() { ... }
func ContextWithTrail(ctx context.Context) (context.Context, *Trail) {
	t := &Trail{}
	return context.WithValue(ctx, trailKey{}, t), t
}

func trailFrom(ctx context.Context) *Trail {
	t, _ := ctx.Value(trailKey{}).(*Trail)
	return t
}

// preferenceKey is the context key of a request's preferred target.
type preferenceKey struct{}

// ContextWithPreference returns a context asking the gateway to try a target (by
// "<provider>/<model>" or alias) first for the requests made with it; the
// others remain fallbacks. The X-Gwtransport-Prefer request header does the
// same, for clients that set headers (openai-go: option.WithHeader). A name
// that is not in the route is ignored.
func ContextWithPreference(ctx context.Context, target string) context.Context {
	return context.WithValue(ctx, preferenceKey{}, target)
}

// preference returns the target the request asks for first, if any: the
// context's, else the header's.
func preference(req *http.Request) string {
	if p, ok := req.Context().Value(preferenceKey{}).(string); ok && p != "" {
		return p
	}
	return strings.TrimSpace(headerKeyValue(req.Header, HeaderPrefer))
}
