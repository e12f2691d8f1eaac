package gwtransport_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// waitEvents collects the EventWait events of a gateway.
type waitEvents struct {
	mu sync.Mutex
	ev []gwtransport.Event
}

func (w *waitEvents) option() gwtransport.Option {
	return gwtransport.WithOnEvent(func(e gwtransport.Event) {
		if e.Kind == gwtransport.EventWait {
			w.mu.Lock()
			w.ev = append(w.ev, e)
			w.mu.Unlock()
		}
	})
}

func (w *waitEvents) get() []gwtransport.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]gwtransport.Event(nil), w.ev...)
}

// TestScenario15AllCooling: the primary's breaker is open (a Retry-After
// of 20 s extended its cooldown) and the fallback's too (10 s). A request
// made 2 s later through the real openai-go client waits for the earlier
// of the two, the fallback, 8 s on the injected clock, and is served by its
// probe; the primary is not touched. With a cap below those 8 s, the same
// request fails at once with ErrNoTarget, and RetryAfter says 8 s.
func TestScenario15AllCooling(t *testing.T) {
	each(t, func(t *testing.T, stream bool) {
		for _, capped := range []bool{false, true} {
			var waits waitEvents
			opts := []gwtransport.Option{gwtransport.WithMaxRetries(0), waits.option(),
				gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)})}
			if capped {
				opts = append(opts, gwtransport.WithMaxRetryWait(5*time.Second))
			}
			p := newPair(t, opts...)
			p.primary.SetFault(&gatewaytest.Fault{Status: 503, Header: map[string]string{"Retry-After": "20"}})
			p.fallback.SetFault(&gatewaytest.Fault{Status: 503})
			_, _, _, err := p.ask(t, context.Background(), stream)
			require.Error(t, err)
			p.primary.SetFault(nil)
			p.fallback.SetFault(nil)
			require.NoError(t, p.clock.Sleep(context.Background(), 2*time.Second))
			pBefore, fBefore := p.primary.Count(), p.fallback.Count()

			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			text, model, _, err := p.ask(t, ctx, stream)
			if capped {
				require.Error(t, err)
				require.ErrorIs(t, err, gwtransport.ErrNoTarget)
				var gerr *gwtransport.Error
				require.ErrorAs(t, err, &gerr)
				assert.Equal(t, 8*time.Second, gerr.RetryAfter)
				d, ok := gwtransport.RetryAfterOf(err)
				assert.True(t, ok)
				assert.Equal(t, 8*time.Second, d)
				assert.Equal(t, []time.Duration{2 * time.Second}, p.clock.Sleeps(), "no wait")
				assert.Empty(t, waits.get())
				assert.Equal(t, fBefore, p.fallback.Count())
			} else {
				require.NoError(t, err)
				assert.Equal(t, answer(stream, "fallback"), text)
				assert.Equal(t, "fallback-model", model)
				assert.Equal(t, []time.Duration{2 * time.Second, 8 * time.Second}, p.clock.Sleeps())
				ev := waits.get()
				require.Len(t, ev, 1)
				assert.Equal(t, "fb/fallback-model", ev[0].Target)
				assert.Equal(t, 8*time.Second, ev[0].Wait)
				as := trail.Attempts()
				require.Len(t, as, 1)
				assert.Equal(t, 8*time.Second, as[0].CoolingWait)
				assert.Equal(t, fBefore+1, p.fallback.Count())
			}
			assert.Equal(t, pBefore, p.primary.Count(), "the primary is still cooling")
		}
	})
}

// TestCoolingWaitAfterAFailure: the primary's breaker is open; the
// fallback fails; the request then waits for the primary's cooldown (it
// was never tried in this request) and its probe serves the caller.
func TestCoolingWaitAfterAFailure(t *testing.T) {
	p := newPair(t, gwtransport.WithMaxRetries(0),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
	p.primary.SetFault(&gatewaytest.Fault{Status: 503})
	_, model, _, err := p.ask(t, context.Background(), false)
	require.NoError(t, err)
	assert.Equal(t, "fallback-model", model)
	p.primary.SetFault(nil)
	p.fallback.SetFault(&gatewaytest.Fault{Status: 500})
	require.NoError(t, p.clock.Sleep(context.Background(), 3*time.Second))
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	_, model, raw, err := p.ask(t, ctx, false)
	require.NoError(t, err)
	assert.Equal(t, "gpt-4o", model)
	assert.Equal(t, "2", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, []time.Duration{3 * time.Second, 7 * time.Second}, p.clock.Sleeps())
	as := trail.Attempts()
	require.Len(t, as, 2)
	assert.Equal(t, "fb/fallback-model", as[0].Target)
	assert.Equal(t, "openai/gpt-4o", as[1].Target)
	assert.Equal(t, 7*time.Second, as[1].CoolingWait)
}

// TestKeyIntervalWaits: a provider with a single key and a KeyInterval
// serves back-to-back requests by waiting for the interval (on the
// injected clock) instead of failing them; a caller whose deadline comes
// first gets ErrNoTarget at once, with RetryAfter the time left of the
// interval.
func TestKeyIntervalWaits(t *testing.T) {
	s := server(t, "p", "key-1")
	clock := newFakeClock()
	var waits waitEvents
	tr, err := gwtransport.NewTransport(nil, []string{"p/m"}, noEnv(), gwtransport.WithClock(clock), waits.option(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: s.URL, APIKeys: []string{"key-1"}, KeyInterval: gwtransport.Duration(2 * time.Second)}))
	require.NoError(t, err)
	send := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/v1/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		res, err := tr.RoundTrip(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	for i := 0; i < 3; i++ {
		_, err := send(context.Background())
		require.NoError(t, err, "request %d", i)
	}
	assert.Equal(t, 3, s.Count())
	assert.Equal(t, []time.Duration{2 * time.Second, 2 * time.Second}, clock.Sleeps())
	assert.Len(t, waits.get(), 2)

	// Half the interval later, a caller with 500 ms left.
	require.NoError(t, clock.Sleep(context.Background(), time.Second))
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(500*time.Millisecond))
	defer cancel()
	_, err = send(ctx)
	require.ErrorIs(t, err, gwtransport.ErrNoTarget)
	assert.Contains(t, err.Error(), "KeyInterval")
	d, ok := gwtransport.RetryAfterOf(err)
	require.True(t, ok)
	assert.Equal(t, time.Second, d)
	assert.Equal(t, 3, s.Count())
}

// TestRetryAfterOfOtherErrors: only the gateway's ErrNoTarget carries a
// hint.
func TestRetryAfterOfOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("x"), &gwtransport.Error{Route: "gateway"}, context.Canceled} {
		d, ok := gwtransport.RetryAfterOf(err)
		assert.False(t, ok)
		assert.Zero(t, d)
	}
	d, ok := gwtransport.RetryAfterOf(&gwtransport.Error{Route: "gateway", Stop: gwtransport.ErrNoTarget, RetryAfter: 3 * time.Second})
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, d)
}
