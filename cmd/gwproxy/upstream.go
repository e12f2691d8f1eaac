package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// errPassThrough is the guard's refusal of a request the engine did not
// route: the proxy forwards only names it knows, so this is a bug, and
// it must not become a request to anywhere.
var errPassThrough = errors.New("gwproxy: refused to forward a request no route took")

// clockKey carries a request's upstream clock in its context; the
// engine's attempt contexts keep the caller's values.
type clockKey struct{}

// upstreamClock sums the time a request spent waiting on providers:
// response headers and body reads of every attempt.
type upstreamClock struct{ ns atomic.Int64 }

func (c *upstreamClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// Duration is the upstream time so far.
func (c *upstreamClock) Duration() time.Duration { return time.Duration(c.ns.Load()) }

func withClock(ctx context.Context) (context.Context, *upstreamClock) {
	c := &upstreamClock{}
	return context.WithValue(ctx, clockKey{}, c), c
}

// guard is the base transport of the engines: it refuses a request
// addressed to the origin provider (one no route took) and times the
// attempts.
type guard struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == originHost {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errPassThrough
	}
	c, _ := req.Context().Value(clockKey{}).(*upstreamClock)
	start := time.Now()
	res, err := g.next.RoundTrip(req)
	if c == nil {
		return res, err
	}
	c.add(time.Since(start))
	if res != nil && res.Body != nil {
		res.Body = &timedBody{ReadCloser: res.Body, c: c}
	}
	return res, err
}

// CloseIdleConnections closes the idle connections to providers.
func (g guard) CloseIdleConnections() {
	if c, ok := g.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// timedBody adds the time spent in Read to the upstream clock.
type timedBody struct {
	io.ReadCloser
	c *upstreamClock
}

// Read reads the provider's body, timed.
func (b *timedBody) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := b.ReadCloser.Read(p)
	b.c.add(time.Since(start))
	return n, err
}
