package gwtransport_test

import (
	"context"
	"errors"
	"io"
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

// post sends a gateway request through tr and returns the response with
// its body read and closed, or the error.
func post(t *testing.T, ctx context.Context, tr http.RoundTripper, url string, header map[string]string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body), nil
}

// served sends a gateway request and returns the target that answered 200.
func served(t *testing.T, f *fleet) string {
	t.Helper()
	res, _, err := post(t, context.Background(), f.tr, f.servers[0].URL, nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, "served by %s", res.Header.Get(gwtransport.HeaderTarget))
	return res.Header.Get(gwtransport.HeaderTarget)
}

// waitFor polls cond every millisecond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond)
}

var oneFailureOpens = gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)})

// A half-open breaker's probe answered by anything that is not an
// availability failure proves the target reachable: the breaker closes
// and the target gets traffic again. (Before, such a probe left the
// breaker half-open for ever.)
func TestHalfOpenProbeAnsweredSettles(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault gatewaytest.Fault
	}{
		{"404", gatewaytest.Fault{Status: 404, Code: "model_not_found"}},
		{"400 context_length_exceeded", gatewaytest.Fault{Status: 400, Code: "context_length_exceeded"}},
		{"400 invalid request (fail fast)", gatewaytest.Fault{Status: 400, Code: "invalid_request_error"}},
		{"401", gatewaytest.Fault{Status: 401, Code: "invalid_api_key"}},
		{"422", gatewaytest.Fault{Status: 422}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var events []string
			f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithOnEvent(func(e gwtransport.Event) {
				if e.Kind == gwtransport.EventBreaker {
					events = append(events, e.Target+" "+e.State)
				}
			}))
			f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
			assert.Equal(t, "p1/m", served(t, f))
			require.Equal(t, gwtransport.BreakerOpen, statsOf(f.tr.Stats(), "p0/m").Breaker)

			f.clock.Sleep(context.Background(), 10*time.Second)
			f.servers[0].Enqueue(c.fault)
			_, _, err := post(t, context.Background(), f.tr, f.servers[0].URL, nil) // the probe
			require.NoError(t, err)
			assert.Equal(t, 2, f.servers[0].Count(), "the probe reached p0")
			st := statsOf(f.tr.Stats(), "p0/m")
			assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
			assert.Zero(t, st.BreakerUntil)
			assert.Empty(t, st.Excluded)

			for i := 0; i < 3; i++ {
				assert.Equal(t, "p0/m", served(t, f), "p0 gets traffic again")
			}
			assert.Equal(t, 5, f.servers[0].Count())
			assert.Equal(t, []string{"p0/m open", "p0/m half-open", "p0/m closed"}, events)
			assert.Equal(t, []time.Duration{10 * time.Second}, f.clock.Sleeps(), "the test's own wait, no other")
		})
	}
}

// A probe picked but never sent, because the request reached
// WithMaxAttempts, frees its lease at once: the next request probes.
func TestProbeNeverSentIsReleased(t *testing.T) {
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithMaxAttempts(1))
	prefer := map[string]string{gwtransport.HeaderPrefer: "p1/m"}
	f.servers[1].Enqueue(gatewaytest.Fault{Status: 503})
	res, _, err := post(t, context.Background(), f.tr, f.servers[0].URL, prefer)
	require.NoError(t, err)
	require.Equal(t, 503, res.StatusCode)
	require.Equal(t, gwtransport.BreakerOpen, statsOf(f.tr.Stats(), "p1/m").Breaker)

	f.clock.Sleep(context.Background(), 10*time.Second)
	// p0 fails (and opens), p1 is picked as the probe, but the one attempt
	// allowed is spent: the probe is never sent.
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	res, _, err = post(t, context.Background(), f.tr, f.servers[0].URL, nil)
	require.NoError(t, err)
	require.Equal(t, 503, res.StatusCode)
	assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, 1, f.servers[1].Count(), "the probe was not sent")
	st := statsOf(f.tr.Stats(), "p1/m")
	assert.Equal(t, gwtransport.BreakerHalfOpen, st.Breaker)
	assert.Empty(t, st.Excluded, "no probe in flight: p1 is offered")

	// p0 is open now; p1 is probed by the very next request and closes.
	assert.Equal(t, "p1/m", served(t, f))
	assert.Equal(t, 2, f.servers[1].Count())
	assert.Equal(t, gwtransport.BreakerClosed, statsOf(f.tr.Stats(), "p1/m").Breaker)
}

// A probe whose caller gave up before it went out says nothing of the
// target: its lease is freed, and the next request probes and closes.
func TestProbeOfACancelledRequestIsReleased(t *testing.T) {
	f := newFleet(t, 2, list, oneFailureOpens)
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	assert.Equal(t, "p1/m", served(t, f))
	f.clock.Sleep(context.Background(), 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := post(t, ctx, f.tr, f.servers[0].URL, nil)
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, gerr.Attempts, 1)
	assert.Equal(t, "p0/m", gerr.Attempts[0].Target, "p0 was picked as the probe")
	st := statsOf(f.tr.Stats(), "p0/m")
	assert.Equal(t, gwtransport.BreakerHalfOpen, st.Breaker, "not reopened: the caller gave up")
	assert.Empty(t, st.Excluded, "the lease is free")
	assert.Equal(t, int64(1), st.Failures)

	assert.Equal(t, "p0/m", served(t, f))
	assert.Equal(t, gwtransport.BreakerClosed, statsOf(f.tr.Stats(), "p0/m").Breaker)
}

// A probe that never gets a verdict (its target holds the request) keeps
// the others out only for its lease, the target's attempt timeout on the
// injected clock; then another request probes. The late verdict still
// counts.
func TestProbeLeaseLapses(t *testing.T) {
	f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithTimeout(time.Hour))
	f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
	assert.Equal(t, "p1/m", served(t, f))
	f.clock.Sleep(context.Background(), 10*time.Second)

	f.servers[0].Enqueue(gatewaytest.Fault{Hang: true}) // the probe hangs (until the test ends it)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var probeErr error
	go func() {
		defer wg.Done()
		_, _, probeErr = post(t, ctx, f.tr, f.servers[0].URL, nil)
	}()
	waitFor(t, func() bool { return f.servers[0].Count() == 2 })
	st := statsOf(f.tr.Stats(), "p0/m")
	assert.Equal(t, gwtransport.BreakerHalfOpen, st.Breaker)
	assert.Equal(t, f.clock.Now().Add(time.Hour), st.BreakerUntil, "the lease: the attempt timeout")
	assert.Contains(t, st.Excluded, "probe is in flight")
	assert.Equal(t, "p1/m", served(t, f), "one probe at a time")
	assert.Equal(t, 2, f.servers[0].Count())

	f.clock.Sleep(context.Background(), time.Hour)
	assert.Equal(t, "p0/m", served(t, f), "the lease lapsed: a second probe goes, and closes the breaker")
	assert.Equal(t, gwtransport.BreakerClosed, statsOf(f.tr.Stats(), "p0/m").Breaker)
	cancel()
	wg.Wait()
	require.ErrorIs(t, probeErr, context.Canceled)
	assert.Equal(t, gwtransport.BreakerClosed, statsOf(f.tr.Stats(), "p0/m").Breaker, "the caller's cancellation counts for nothing")
}

// The caller's own cancellation or deadline during an attempt says nothing
// about the target: its breaker stays closed and it serves the next
// request. The attempt's own timeout does count.
func TestCallerCancellationIsNotATargetFailure(t *testing.T) {
	for _, c := range []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
		wantErr error
		opens   bool
	}{
		{"caller cancels", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 0, context.Canceled, false},
		{"caller's deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, 0, context.DeadlineExceeded, false},
		{"attempt's own timeout", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 50 * time.Millisecond, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []gwtransport.Option{oneFailureOpens}
			if c.timeout > 0 {
				opts = append(opts, gwtransport.WithTimeout(c.timeout))
			}
			f := newFleet(t, 2, list, opts...)
			f.servers[0].Enqueue(gatewaytest.Fault{Hang: true})
			ctx, cancel := c.ctx()
			defer cancel()
			done := make(chan struct{})
			var res *http.Response
			var err error
			go func() {
				defer close(done)
				res, _, err = post(t, ctx, f.tr, f.servers[0].URL, nil)
			}()
			waitFor(t, func() bool { return f.servers[0].Count() == 1 })
			if c.wantErr == context.Canceled {
				cancel()
			}
			<-done
			st := statsOf(f.tr.Stats(), "p0/m")
			if !c.opens {
				require.ErrorIs(t, err, c.wantErr)
				var gerr *gwtransport.Error
				require.ErrorAs(t, err, &gerr)
				require.Len(t, gerr.Attempts, 1)
				assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
				assert.Zero(t, st.Failures)
				assert.Equal(t, int64(1), st.Attempts)
				assert.Equal(t, "p0/m", served(t, f), "the healthy target still serves")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "p1/m", res.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, gwtransport.BreakerOpen, st.Breaker)
			assert.Equal(t, int64(1), st.Failures)
		})
	}
}

// keyed is a provider "pool" with keys k1..kn and a keyless "other".
func keyed(t *testing.T, keys []string, opts ...gwtransport.Option) (pool, other *gatewaytest.Server, clock *fakeClock, tr *gwtransport.Transport) {
	t.Helper()
	pool, other, clock = server(t, "pool", ""), server(t, "other", ""), newFakeClock()
	tr, err := gwtransport.NewTransport(nil, []string{"pool/m", "other/m"}, append([]gwtransport.Option{noEnv(), gwtransport.WithClock(clock), seeded(5),
		gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Second}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pool", BaseURL: pool.URL, APIKeys: keys}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "other", BaseURL: other.URL, Auth: gwtransport.AuthNone})}, opts...)...)
	require.NoError(t, err)
	return pool, other, clock, tr
}

// keysUsed names the keys of a journal, "k1" for "Bearer k1".
func keysUsed(s *gatewaytest.Server, keys []string) []string {
	var out []string
	for _, r := range s.Journal() {
		for _, k := range keys {
			if r.Header.Get("Authorization") == gatewaytest.Mask("Bearer "+k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// A key answered 429 (or 401, 403) while another key of the provider is
// free: the next try at the target uses that key at once, with no wait,
// and without using up a retry; attempts stay bounded by WithMaxAttempts.
func TestFreshKeyUsedAtOnce(t *testing.T) {
	keys := []string{"k1", "k2", "k3"}
	for _, c := range []struct {
		name        string
		opts        []gwtransport.Option
		faults      []gatewaytest.Fault
		wantKeys    []string
		wantTarget  string
		wantSleeps  []time.Duration
		wantRetries string
	}{
		{"429 Retry-After 30, then the next key", nil,
			[]gatewaytest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "30"}}},
			[]string{"k1", "k2"}, "pool/m", nil, "pool/m#1 429 invalid_request_error"},
		{"401 and 403, then the last key", nil,
			[]gatewaytest.Fault{{Status: 401}, {Status: 403}},
			[]string{"k1", "k2", "k3"}, "pool/m", nil, "pool/m#1 401 invalid_request_error; pool/m#2 403 invalid_request_error"},
		{"no retry used up", []gwtransport.Option{gwtransport.WithMaxRetries(0)},
			[]gatewaytest.Fault{{Status: 429}, {Status: 429}},
			[]string{"k1", "k2", "k3"}, "pool/m", nil, "pool/m#1 429 invalid_request_error; pool/m#2 429 invalid_request_error"},
		{"every key rate limited: the next target, no wait", []gwtransport.Option{gwtransport.WithMaxRetries(0)},
			[]gatewaytest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "30"}}, {Status: 429, Header: map[string]string{"Retry-After": "30"}}, {Status: 429, Header: map[string]string{"Retry-After": "30"}}},
			[]string{"k1", "k2", "k3"}, "other/m", nil, "pool/m#1 429 invalid_request_error; pool/m#2 429 invalid_request_error; pool/m#3 429 invalid_request_error"},
		{"bounded by max attempts", []gwtransport.Option{gwtransport.WithMaxAttempts(2)},
			[]gatewaytest.Fault{{Status: 429}, {Status: 429}},
			[]string{"k1", "k2"}, "", nil, "pool/m#1 429 invalid_request_error; pool/m#2 429 invalid_request_error"},
		{"a 503 is the target's: backoff, same key rotation", []gwtransport.Option{gwtransport.WithMaxRetries(1)},
			[]gatewaytest.Fault{{Status: 503}},
			[]string{"k1", "k2"}, "pool/m", []time.Duration{time.Second}, "pool/m#1 503 server_error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool, other, clock, tr := keyed(t, keys, c.opts...)
			pool.Enqueue(c.faults...)
			res, _, err := post(t, context.Background(), tr, other.URL, nil)
			require.NoError(t, err)
			if c.wantTarget == "" {
				assert.Equal(t, 429, res.StatusCode)
			} else {
				assert.Equal(t, 200, res.StatusCode)
				assert.Equal(t, c.wantTarget, res.Header.Get(gwtransport.HeaderTarget))
			}
			assert.Equal(t, c.wantKeys, keysUsed(pool, keys))
			assert.Equal(t, c.wantSleeps, clock.Sleeps())
			assert.Equal(t, c.wantRetries, res.Header.Get(gwtransport.HeaderFallbackReason))
		})
	}
	t.Run("the rested key's state", func(t *testing.T) {
		pool, other, clock, tr := keyed(t, keys[:2])
		pool.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}})
		res, _, err := post(t, context.Background(), tr, other.URL, nil)
		require.NoError(t, err)
		assert.Equal(t, "pool/m", res.Header.Get(gwtransport.HeaderTarget))
		assert.Equal(t, "2", res.Header.Get(gwtransport.HeaderAttempts))
		assert.Empty(t, clock.Sleeps())
		st := statsOf(tr.Stats(), "pool/m")
		assert.Equal(t, []gwtransport.KeyStats{
			{Index: 0, State: "resting", Until: clock.Now().Add(30 * time.Second), Uses: 1},
			{Index: 1, State: "active", Uses: 1},
		}, st.Keys)
		assert.Equal(t, gwtransport.BreakerClosed, st.Breaker)
	})
}

// The breaker is consulted before any wait: a target whose breaker opened
// on the attempt, or whose keys all rest past the wait, is left at once,
// without sleeping.
func TestNoWaitForAnUnavailableTarget(t *testing.T) {
	t.Run("breaker open", func(t *testing.T) {
		var attempts []gwtransport.Attempt
		f := newFleet(t, 2, list, oneFailureOpens, gwtransport.WithMaxRetries(2), gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Second}),
			gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { attempts = append(attempts, a) }))
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
		assert.Equal(t, "p1/m", served(t, f))
		assert.Empty(t, f.clock.Sleeps())
		assert.Equal(t, 1, f.servers[0].Count())
		require.Len(t, attempts, 2)
		assert.Equal(t, 503, attempts[0].Status)
		assert.Zero(t, attempts[0].Wait, "no wait recorded: none was made")
	})
	t.Run("breaker closed: the backoff is waited", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithMaxRetries(2), gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Second}))
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503})
		assert.Equal(t, "p0/m", served(t, f))
		assert.Equal(t, []time.Duration{time.Second}, f.clock.Sleeps())
	})
	t.Run("every key rests past the wait", func(t *testing.T) {
		pool, other, clock := server(t, "pool", ""), server(t, "other", ""), newFakeClock()
		tr, err := gwtransport.NewTransport(nil, []string{"pool/m", "other/m"}, noEnv(), gwtransport.WithClock(clock),
			gwtransport.WithBackoff(gwtransport.Backoff{Initial: time.Second}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "pool", BaseURL: pool.URL, APIKeys: []string{"k1"}, KeyInterval: gwtransport.Duration(10 * time.Second)}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "other", BaseURL: other.URL, Auth: gwtransport.AuthNone}))
		require.NoError(t, err)
		pool.Enqueue(gatewaytest.Fault{Status: 503})
		res, _, err := post(t, context.Background(), tr, other.URL, nil)
		require.NoError(t, err)
		assert.Equal(t, "other/m", res.Header.Get(gwtransport.HeaderTarget))
		assert.Equal(t, "2", res.Header.Get(gwtransport.HeaderAttempts))
		assert.Empty(t, clock.Sleeps(), "k1 is next usable in 10 s, the backoff is 1 s")
	})
}

// A Retry-After of 999999999 s rests a key, and extends a breaker's
// cooldown, only up to WithMaxRest (5 min by default); then the key and
// the target serve again.
func TestHugeRetryAfterIsCapped(t *testing.T) {
	huge := map[string]string{"Retry-After": "999999999"}
	for _, c := range []struct {
		name string
		opts []gwtransport.Option
		rest time.Duration
	}{
		{"default", nil, gwtransport.DefaultMaxRest},
		{"WithMaxRest(1m)", []gwtransport.Option{gwtransport.WithMaxRest(time.Minute)}, time.Minute},
	} {
		t.Run(c.name+": key", func(t *testing.T) {
			keys := []string{"k1", "k2"}
			pool, other, clock, tr := keyed(t, keys, c.opts...)
			pool.Enqueue(gatewaytest.Fault{Status: 429, Header: huge})
			_, _, err := post(t, context.Background(), tr, other.URL, nil)
			require.NoError(t, err)
			st := statsOf(tr.Stats(), "pool/m").Keys[0]
			assert.Equal(t, "resting", st.State)
			assert.Equal(t, clock.Now().Add(c.rest), st.Until)
			clock.Sleep(context.Background(), c.rest)
			assert.Equal(t, "active", statsOf(tr.Stats(), "pool/m").Keys[0].State)
			_, _, err = post(t, context.Background(), tr, other.URL, nil)
			require.NoError(t, err)
			assert.Equal(t, []string{"k1", "k2", "k1"}, keysUsed(pool, keys), "k1 serves again")
		})
		t.Run(c.name+": breaker", func(t *testing.T) {
			f := newFleet(t, 2, list, append([]gwtransport.Option{oneFailureOpens}, c.opts...)...)
			f.servers[0].Enqueue(gatewaytest.Fault{Status: 503, Header: huge})
			assert.Equal(t, "p1/m", served(t, f))
			st := statsOf(f.tr.Stats(), "p0/m")
			assert.Equal(t, gwtransport.BreakerOpen, st.Breaker)
			assert.Equal(t, f.clock.Now().Add(c.rest), st.BreakerUntil)
			f.clock.Sleep(context.Background(), c.rest)
			assert.Equal(t, "p0/m", served(t, f))
			assert.Equal(t, gwtransport.BreakerClosed, statsOf(f.tr.Stats(), "p0/m").Breaker)
		})
	}
	t.Run("a configured cooldown longer than the cap still applies", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithMaxRest(time.Minute),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(time.Hour)}))
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503, Header: huge})
		served(t, f)
		assert.Equal(t, f.clock.Now().Add(time.Hour), statsOf(f.tr.Stats(), "p0/m").BreakerUntil)
	})
}

// Breaker settings that could never trip or never recover, and a max rest
// that is not positive, are refused at Init with an error naming the
// field, from options and from a configuration file.
func TestLiveStateSettingsRefusedAtInit(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  gwtransport.Option
		want string
	}{
		{"min attempts above window", gwtransport.WithCircuitBreaker(gwtransport.Breaker{FailureRate: 0.5, Window: 10, MinAttempts: 11}),
			"gwtransport: circuit breaker: MinAttempts 11 is larger than Window 10: FailureRate could never open the breaker"},
		{"NaN failure rate", gwtransport.WithCircuitBreaker(gwtransport.Breaker{FailureRate: nanValue()}), "FailureRate must be in [0, 1], got NaN"},
		{"cooldown of a century", gwtransport.WithCircuitBreaker(gwtransport.Breaker{Cooldown: gwtransport.Duration(100 * 365 * 24 * time.Hour)}), "Cooldown must be in [0, 24h0m0s]"},
		{"huge window", gwtransport.WithCircuitBreaker(gwtransport.Breaker{Window: 1 << 40}), "Window must be in [0, 10000]"},
		{"in a route", gwtransport.WithRoute("cheap", []string{"openai/b"}, gwtransport.WithCircuitBreaker(gwtransport.Breaker{FailureRate: 1, MinAttempts: 21})), "MinAttempts 21 is larger than Window 20"},
		{"max rest zero", gwtransport.WithMaxRest(0), "gwtransport: max rest must be positive, got 0s"},
		{"max rest negative", gwtransport.WithMaxRest(-time.Second), "max rest must be positive, got -1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gwtransport.NewTransport(nil, []string{"openai/a"}, noEnv(), c.opt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	cfg, err := gwtransport.LoadConfig([]byte("models:\n  - target: openai/a\ncircuit_breaker:\n  failure_rate: 0.5\n  window: 5\n  min_attempts: 6\n"))
	if err == nil {
		_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, noEnv(), gwtransport.WithConfig(cfg))
	}
	require.Error(t, err)
	assert.Equal(t, "gwtransport: config: circuit_breaker.min_attempts: 6 is larger than window 5: failure_rate could never open the breaker", err.Error())
	assert.False(t, errors.Is(err, context.Canceled))
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}
