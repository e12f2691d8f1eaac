package gwtransport

import (
	"context"

	"github.com/cenkalti/backoff/v4"
)

// The names below are kept for one release so that code written against
// them still compiles; each says what replaces it. They behave exactly as
// their replacement.

// RetryManager is the former name of [Installation].
//
// Deprecated: use Installation. RetryManager never managed retries: it is
// the handle on what Init installed.
type RetryManager = Installation

// HeaderReason is the former name of [HeaderFallbackReason].
//
// Deprecated: use HeaderFallbackReason.
const HeaderReason = HeaderFallbackReason

// WithBackOffFactory is the former name of [WithBackoffPolicy].
//
// Deprecated: use WithBackoffPolicy (the old name differed from WithBackoff
// by one capital letter, yet did something else).
func WithBackOffFactory(newBackOff func(target string) backoff.BackOff) Option {
	return WithBackoffPolicy(newBackOff)
}

// WithTrail is the former name of [ContextWithTrail].
//
// Deprecated: use ContextWithTrail (With... names in this package are
// options for Init; this is a context helper).
func WithTrail(ctx context.Context) (context.Context, *Trail) {
	return ContextWithTrail(ctx)
}

// WithPreference is the former name of [ContextWithPreference].
//
// Deprecated: use ContextWithPreference (With... names in this package are
// options for Init; this is a context helper).
func WithPreference(ctx context.Context, target string) context.Context {
	return ContextWithPreference(ctx, target)
}

// StrategyAlwaysFirst is StrategyOrdered under another name: it always
// started with the first configured target and fell back in order, which
// is what [StrategyOrdered] does. A strategy that never falls back is a
// route of one model.
//
// Deprecated: use StrategyOrdered.
var StrategyAlwaysFirst = StrategyOrdered

// Reconfigure is the former form of the [Reconfigure] function; models is
// checked when it runs, not by the compiler.
//
// Deprecated: use gwtransport.Reconfigure(t, models, opts...), whose
// models the compiler checks.
func (t *Transport) Reconfigure(models any, opts ...Option) error {
	if _, ok := models.(fromConfig); ok {
		models = nil
	}
	return t.reconfigure(models, opts)
}
