package gwtransport_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
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

// fleet is n keyless providers p0..p(n-1) and a plain client through a
// gateway over them.
type fleet struct {
	servers []*gatewaytest.Server
	tr      *gwtransport.Transport
	hc      *http.Client
	clock   *fakeClock
}

func newFleet(t *testing.T, n int, models func(names []string) any, opts ...gwtransport.Option) *fleet {
	t.Helper()
	f := &fleet{clock: newFakeClock()}
	names := make([]string, n)
	base := []gwtransport.Option{noEnv(), gwtransport.WithClock(f.clock), gwtransport.WithBackoff(gwtransport.Backoff{}), gwtransport.WithMaxRetries(0)}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%d", i)
		s := server(t, name, "")
		f.servers = append(f.servers, s)
		names[i] = name + "/m"
		base = append(base, gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s.URL, Auth: gwtransport.AuthNone}))
	}
	tr, err := newTransportAny(models(names), append(base, opts...)...)
	require.NoError(t, err)
	f.tr, f.hc = tr, &http.Client{Transport: tr}
	return f
}

func list(names []string) any { return names }

// send posts a gateway request and returns the target that served it (or
// "" with the status on failure).
func (f *fleet) send(t *testing.T, ctx context.Context, model string, header map[string]string) (string, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.servers[0].URL+"/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := f.hc.Do(req)
	if err != nil {
		return "", 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return "", res.StatusCode
	}
	return res.Header.Get(gwtransport.HeaderTarget), res.StatusCode
}

func (f *fleet) counts() []int {
	out := make([]int, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Count()
	}
	return out
}

func TestStrategies(t *testing.T) {
	t.Run("round robin spreads evenly and deterministically", func(t *testing.T) {
		f := newFleet(t, 3, list, gwtransport.WithStrategy(gwtransport.StrategyRoundRobin))
		var served []string
		for i := 0; i < 6; i++ {
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			served = append(served, tgt)
		}
		assert.Equal(t, []string{"p0/m", "p1/m", "p2/m", "p0/m", "p1/m", "p2/m"}, served)
	})
	t.Run("round robin falls back in rotation", func(t *testing.T) {
		f := newFleet(t, 3, list, gwtransport.WithStrategy(gwtransport.StrategyRoundRobin), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
		f.servers[1].SetFault(&gatewaytest.Fault{Status: 503})
		var served []string
		for i := 0; i < 3; i++ {
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			served = append(served, tgt)
		}
		assert.Equal(t, []string{"p0/m", "p2/m", "p2/m"}, served)
		assert.Equal(t, []int{1, 1, 2}, f.counts())
	})
	t.Run("random is uniform", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithStrategy(gwtransport.StrategyRandom), seeded(9))
		const n = 400
		for i := 0; i < n; i++ {
			f.send(t, context.Background(), "gateway", nil)
		}
		assert.InDelta(t, n/2, f.servers[0].Count(), 4*10, "4 standard deviations")
		assert.Equal(t, n, f.servers[0].Count()+f.servers[1].Count())
	})
	t.Run("ordered over weights", func(t *testing.T) {
		f := newFleet(t, 3, func(names []string) any { return map[string]float64{names[0]: 1, names[1]: 5, names[2]: 5} },
			gwtransport.WithStrategy(gwtransport.StrategyOrdered))
		for i := 0; i < 5; i++ {
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			assert.Equal(t, "p0/m", tgt)
		}
	})
	t.Run("lowest latency", func(t *testing.T) {
		f := newFleet(t, 3, list, gwtransport.WithStrategy(gwtransport.StrategyLowestLatency))
		f.servers[0].SetFault(&gatewaytest.Fault{Delay: 40 * time.Millisecond})
		f.servers[2].SetFault(&gatewaytest.Fault{Delay: 20 * time.Millisecond})
		var served []string
		for i := 0; i < 5; i++ {
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			served = append(served, tgt)
		}
		assert.Equal(t, []string{"p0/m", "p1/m", "p2/m", "p1/m", "p1/m"}, served, "each measured once, then the fastest")
	})
	t.Run("custom sees the candidates left and their stats", func(t *testing.T) {
		var seen [][]string
		var mu sync.Mutex
		last := gwtransport.CustomStrategy(func(cands []gwtransport.Candidate) int {
			mu.Lock()
			defer mu.Unlock()
			var names []string
			for _, c := range cands {
				names = append(names, fmt.Sprintf("%s:%d/%d", c.Target, c.Attempts, c.Failures))
			}
			seen = append(seen, names)
			return len(cands) - 1
		})
		f := newFleet(t, 3, list, gwtransport.WithStrategy(last))
		f.servers[2].SetFault(&gatewaytest.Fault{Status: 500})
		tgt, _ := f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, "p1/m", tgt)
		assert.Equal(t, [][]string{{"p0/m:0/0", "p1/m:0/0", "p2/m:0/0"}, {"p0/m:0/0", "p1/m:0/0"}}, seen)
	})
	t.Run("custom index out of range picks the first", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithStrategy(gwtransport.CustomStrategy(func([]gwtransport.Candidate) int { return 99 })))
		tgt, _ := f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, "p0/m", tgt)
	})
}

func TestTimeWindows(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	tests := []struct {
		name  string
		local string // time of day in Paris
		want  string
	}{
		{"inside a window that crosses midnight, before midnight", "23:30", "p1/m"},
		{"inside it, after midnight", "05:59", "p1/m"},
		{"at its end (excluded bound)", "06:00", "p0/m"},
		{"outside", "12:00", "p0/m"},
		{"inside the second window", "13:15", "p1/m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, 2, list, gwtransport.WithTimeZone("Europe/Paris"),
				gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"p0/m": {{Start: "22:00", End: "06:00"}, {Start: "13:00", End: "13:30"}}}))
			var h, m int
			_, _ = fmt.Sscanf(tc.local, "%d:%d", &h, &m)
			f.clock.now = time.Date(2026, 7, 1, h, m, 0, 0, paris)
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			assert.Equal(t, tc.want, tgt)
		})
	}
	t.Run("every target excluded", func(t *testing.T) {
		f := newFleet(t, 1, list, gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"p0/m": {{Start: "00:00", End: "23:59"}}}))
		f.clock.now = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
		req, _ := http.NewRequest(http.MethodPost, f.servers[0].URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		_, err := f.tr.RoundTrip(req)
		require.ErrorIs(t, err, gwtransport.ErrNoTarget)
		assert.Contains(t, err.Error(), "p0/m: in its excluded hours 00:00-23:59")
		assert.Zero(t, f.servers[0].Count())
	})
}

func TestBadWindowsAndZones(t *testing.T) {
	tests := []struct {
		name    string
		opt     gwtransport.Option
		wantErr string
	}{
		{"not HH:MM", gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"openai/a": {{Start: "9:00", End: "10:00"}}}), `"9:00" is not HH:MM`},
		{"hour out of range", gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"openai/a": {{Start: "24:00", End: "10:00"}}}), "not a time of day"},
		{"minute out of range", gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"openai/a": {{Start: "10:00", End: "10:60"}}}), "not a time of day"},
		{"empty window", gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"openai/a": {{Start: "10:00", End: "10:00"}}}), "ambiguous"},
		{"unknown target", gwtransport.WithTimeWindows(map[string][]gwtransport.Window{"openai/b": {{Start: "10:00", End: "11:00"}}}), "not one of the models"},
		{"bad zone", gwtransport.WithTimeZone("Mars/Olympus"), `time zone "Mars/Olympus"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gwtransport.NewTransport(nil, []string{"openai/a"}, noEnv(), tc.opt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestPreferences(t *testing.T) {
	f := newFleet(t, 3, list, gwtransport.WithAliases(map[string]string{"p2/m": "strong"}))
	tests := []struct {
		name   string
		ctx    context.Context
		header map[string]string
		want   string
	}{
		{"none", context.Background(), nil, "p0/m"},
		{"header by target", context.Background(), map[string]string{gwtransport.HeaderPrefer: "p1/m"}, "p1/m"},
		{"header by alias", context.Background(), map[string]string{gwtransport.HeaderPrefer: "strong"}, "p2/m"},
		{"context", gwtransport.ContextWithPreference(context.Background(), "p1/m"), nil, "p1/m"},
		{"context wins over header", gwtransport.ContextWithPreference(context.Background(), "strong"), map[string]string{gwtransport.HeaderPrefer: "p1/m"}, "p2/m"},
		{"unknown preference is ignored", context.Background(), map[string]string{gwtransport.HeaderPrefer: "nope"}, "p0/m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt, _ := f.send(t, tc.ctx, "gateway", tc.header)
			assert.Equal(t, tc.want, tgt)
		})
	}
	for _, s := range f.servers {
		for _, r := range s.Journal() {
			assert.Empty(t, r.Header.Values(gwtransport.HeaderPrefer), "the preference header never reaches a provider")
		}
	}
	// A preferred target that fails falls back to the others.
	f.servers[1].SetFault(&gatewaytest.Fault{Status: 503})
	tgt, _ := f.send(t, context.Background(), "gateway", map[string]string{gwtransport.HeaderPrefer: "p1/m"})
	assert.Equal(t, "p0/m", tgt)
	// The alias is also a model name a request may address.
	tgt, _ = f.send(t, context.Background(), "strong", nil)
	assert.Equal(t, "p2/m", tgt)
}

func TestNamedRoutes(t *testing.T) {
	f := newFleet(t, 3, list,
		gwtransport.WithMaxRetries(2),
		gwtransport.WithRoute("gateway-cheap", []string{"p2/m", "p1/m"}, gwtransport.WithMaxRetries(0), gwtransport.WithStrategy(gwtransport.StrategyOrdered)))
	f.servers[2].SetFault(&gatewaytest.Fault{Status: 500})
	tgt, _ := f.send(t, context.Background(), "gateway-cheap", nil)
	assert.Equal(t, "p1/m", tgt)
	assert.Equal(t, []int{0, 1, 1}, f.counts(), "the cheap route's own retries: none")
	tgt, _ = f.send(t, context.Background(), "gateway", nil)
	assert.Equal(t, "p0/m", tgt)

	_, err := gwtransport.NewTransport(nil, []string{"openai/a"}, noEnv(), gwtransport.WithRoute("gateway", []string{"openai/b"}))
	require.ErrorContains(t, err, `route "gateway" is defined twice`)
	_, err = gwtransport.NewTransport(nil, []string{"openai/a"}, noEnv(), gwtransport.WithRoute("cheap", []string{"nope/b"}))
	require.ErrorContains(t, err, `unknown provider "nope"`)
}

func TestKeyPools(t *testing.T) {
	keys := []string{"k1", "k2", "k3"}
	newPool := func(t *testing.T, interval time.Duration) (*gatewaytest.Server, *gatewaytest.Server, *fakeClock, *gwtransport.Transport) {
		pool := server(t, "pool", "")
		other := server(t, "other", "")
		clock := newFakeClock()
		tr, err := gwtransport.NewTransport(nil, []string{"pool/m", "other/m"}, noEnv(), gwtransport.WithClock(clock), gwtransport.WithMaxRetries(0),
			gwtransport.WithProvider(gwtransport.Provider{Name: "pool", BaseURL: pool.URL, APIKeys: keys, KeyInterval: gwtransport.Duration(interval)}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "other", BaseURL: other.URL, Auth: gwtransport.AuthNone}))
		require.NoError(t, err)
		return pool, other, clock, tr
	}
	send := func(t *testing.T, tr *gwtransport.Transport, url string) string {
		req, _ := http.NewRequest(http.MethodPost, url+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.Header.Get(gwtransport.HeaderTarget)
	}
	used := func(s *gatewaytest.Server) []string {
		var out []string
		for _, r := range s.Journal() {
			for i, k := range keys {
				if r.Header.Get("Authorization") == gatewaytest.Mask("Bearer "+k) {
					out = append(out, fmt.Sprint("k", i+1))
				}
			}
		}
		return out
	}

	t.Run("rotation", func(t *testing.T) {
		pool, other, _, tr := newPool(t, 0)
		for i := 0; i < 4; i++ {
			send(t, tr, other.URL)
		}
		assert.Equal(t, []string{"k1", "k2", "k3", "k1"}, used(pool))
	})
	t.Run("a rate-limited key rests for its Retry-After; a refused key is disabled", func(t *testing.T) {
		pool, other, clock, tr := newPool(t, 0)
		pool.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}}, gatewaytest.Fault{Status: 401})
		// k1: 429, k2: 401, and each time the next key goes at once, with
		// no wait and no retry used up (WithMaxRetries(0)).
		assert.Equal(t, "pool/m", send(t, tr, other.URL))
		assert.Empty(t, clock.Sleeps())
		for i := 0; i < 3; i++ {
			assert.Equal(t, "pool/m", send(t, tr, other.URL)) // k3 only
		}
		assert.Equal(t, []string{"k1", "k2", "k3", "k3", "k3", "k3"}, used(pool))
		st := statsOf(tr.Stats(), "pool/m")
		require.Len(t, st.Keys, 3)
		assert.Equal(t, "resting", st.Keys[0].State)
		assert.Equal(t, clock.Now().Add(30*time.Second), st.Keys[0].Until)
		assert.Equal(t, "disabled", st.Keys[1].State)
		assert.Equal(t, "active", st.Keys[2].State)
		assert.Equal(t, int64(4), st.Keys[2].Uses)

		clock.Sleep(context.Background(), 31*time.Second)
		send(t, tr, other.URL)
		assert.Equal(t, "k1", used(pool)[6], "k1 is back after its rest")
	})
	t.Run("minimum interval per key; when every key rests, the next target", func(t *testing.T) {
		pool, other, clock, tr := newPool(t, 10*time.Second)
		var served []string
		for i := 0; i < 4; i++ {
			served = append(served, send(t, tr, other.URL))
		}
		assert.Equal(t, []string{"pool/m", "pool/m", "pool/m", "other/m"}, served)
		clock.Sleep(context.Background(), 10*time.Second)
		assert.Equal(t, "pool/m", send(t, tr, other.URL))
		assert.Equal(t, []string{"k1", "k2", "k3", "k1"}, used(pool))
	})
	t.Run("keys never appear in stats, errors or logs", func(t *testing.T) {
		var logs bytes.Buffer
		pool := server(t, "pool", "")
		pool.SetFault(&gatewaytest.Fault{Status: 401})
		tr, err := gwtransport.NewTransport(nil, []string{"pool/m"}, noEnv(), gwtransport.WithMaxRetries(0),
			gwtransport.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
			gwtransport.WithProvider(gwtransport.Provider{Name: "pool", BaseURL: pool.URL, APIKeys: []string{"sk-secret-1", "sk-secret-2"}}))
		require.NoError(t, err)
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest(http.MethodPost, pool.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
			res, err := tr.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			} else {
				assert.NotContains(t, err.Error(), "sk-secret")
			}
		}
		assert.NotContains(t, fmt.Sprintf("%+v", tr.Stats()), "sk-secret")
		assert.NotContains(t, logs.String(), "sk-secret")
		assert.Contains(t, logs.String(), "key_index=0 state=disabled")
	})
}

func statsOf(all []gwtransport.TargetStats, target string) gwtransport.TargetStats {
	for _, s := range all {
		if s.Target == target {
			return s
		}
	}
	return gwtransport.TargetStats{}
}

func TestCircuitBreaker(t *testing.T) {
	breaker := gwtransport.Breaker{ConsecutiveFailures: 3, Cooldown: gwtransport.Duration(10 * time.Second)}
	t.Run("opens, probes after the cooldown, closes on success", func(t *testing.T) {
		var events []string
		f := newFleet(t, 2, list, gwtransport.WithCircuitBreaker(breaker), gwtransport.WithOnEvent(func(e gwtransport.Event) {
			if e.Kind == gwtransport.EventBreaker {
				events = append(events, e.Target+" "+e.State)
			}
		}))
		f.servers[0].SetFault(&gatewaytest.Fault{Status: 503})
		for i := 0; i < 5; i++ {
			tgt, _ := f.send(t, context.Background(), "gateway", nil)
			assert.Equal(t, "p1/m", tgt)
		}
		assert.Equal(t, 3, f.servers[0].Count(), "open after 3 failures: requests 4 and 5 skip p0")
		st := statsOf(f.tr.Stats(), "p0/m")
		assert.Equal(t, gwtransport.BreakerOpen, st.Breaker)
		assert.Equal(t, f.clock.Now().Add(10*time.Second), st.BreakerUntil)
		assert.Contains(t, st.Excluded, "circuit open until")

		f.clock.Sleep(context.Background(), 10*time.Second)
		tgt, _ := f.send(t, context.Background(), "gateway", nil) // probe fails
		assert.Equal(t, "p1/m", tgt)
		assert.Equal(t, 4, f.servers[0].Count())
		tgt, _ = f.send(t, context.Background(), "gateway", nil) // open again
		assert.Equal(t, "p1/m", tgt)
		assert.Equal(t, 4, f.servers[0].Count())

		f.servers[0].SetFault(nil)
		f.clock.Sleep(context.Background(), 10*time.Second)
		tgt, _ = f.send(t, context.Background(), "gateway", nil) // probe succeeds
		assert.Equal(t, "p0/m", tgt)
		tgt, _ = f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, "p0/m", tgt)
		assert.Equal(t, []string{"p0/m open", "p0/m half-open", "p0/m open", "p0/m half-open", "p0/m closed"}, events)
	})
	t.Run("failure rate", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 100, FailureRate: 0.5, Window: 4, MinAttempts: 4}))
		for _, fail := range []bool{false, true, false, true} {
			if fail {
				f.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
			}
			f.send(t, context.Background(), "gateway", nil)
		}
		assert.Equal(t, gwtransport.BreakerOpen, statsOf(f.tr.Stats(), "p0/m").Breaker, "2 of the last 4 failed")
	})
	t.Run("Retry-After longer than the cooldown sets it", func(t *testing.T) {
		f := newFleet(t, 2, list, gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(10 * time.Second)}))
		start := f.clock.Now()
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503, Header: map[string]string{"Retry-After": "60"}})
		f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, start.Add(60*time.Second), statsOf(f.tr.Stats(), "p0/m").BreakerUntil)
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503, Header: map[string]string{"Retry-After": "5"}})
		f.clock.Sleep(context.Background(), 61*time.Second)
		f.send(t, context.Background(), "gateway", nil) // the probe fails with Retry-After 5
		assert.Equal(t, start.Add(61*time.Second+10*time.Second), statsOf(f.tr.Stats(), "p0/m").BreakerUntil, "cooldown, not the shorter Retry-After")
		f.servers[0].Enqueue(gatewaytest.Fault{Status: 503, Header: map[string]string{"Retry-After": "120"}})
		f.clock.Sleep(context.Background(), 10*time.Second)
		f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, start.Add(71*time.Second+120*time.Second), statsOf(f.tr.Stats(), "p0/m").BreakerUntil, "the longer Retry-After sets the cooldown")
	})
}

// Scenario 15 with the circuit breaker (the default): while the primary is
// down the fallback serves without the primary being hammered; after it
// recovers the breaker's probe brings it back within 30 s.
func TestScenario15WithBreaker(t *testing.T) {
	p := newPair(t, gwtransport.WithMaxRetries(1))
	recovered, attemptsWhileDown := outage(t, p)
	assert.LessOrEqual(t, recovered, 30*time.Second)
	assert.Less(t, attemptsWhileDown, 15, "15 requests while down; without a breaker each would try the primary twice (30)")
}

func TestEventsAndLogging(t *testing.T) {
	var logs bytes.Buffer
	var kinds []gwtransport.EventKind
	p := newPair(t, gwtransport.WithMaxRetries(0),
		gwtransport.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		gwtransport.WithOnEvent(func(e gwtransport.Event) { kinds = append(kinds, e.Kind) }))
	p.primary.SetFault(&gatewaytest.Fault{Status: 503})
	_, _, _, err := p.ask(t, context.Background(), false)
	require.NoError(t, err)
	assert.Equal(t, []gwtransport.EventKind{gwtransport.EventAttempt, gwtransport.EventFallback, gwtransport.EventAttempt}, kinds)
	out := logs.String()
	assert.Contains(t, out, `level=INFO msg="gwtransport fallback" route=gateway target=openai/gpt-4o next=fb/fallback-model`)
	assert.Contains(t, out, "status=503 action=retry")
	for _, secret := range []string{"key-p", "key-f"} {
		assert.NotContains(t, out, secret)
	}
}

func TestStats(t *testing.T) {
	primary := server(t, "primary", "key-p")
	fallback := server(t, "fallback", "key-f")
	client := openaiClient(primary, "key-p")
	m := mustInit(t, client, []string{"openai/gpt-4o", "fb/fallback-model"}, noEnv(), provider("fb", fallback, "key-f"),
		gwtransport.WithMaxRetries(0), gwtransport.WithAliases(map[string]string{"fb/fallback-model": "backup"}))
	primary.Enqueue(gatewaytest.Fault{Status: 500})
	for i := 0; i < 3; i++ {
		_, _, err := chat(t, client, "gateway")
		require.NoError(t, err)
	}
	st := m.Stats()
	require.Len(t, st, 2)
	assert.Positive(t, st[0].Latency)
	st[0].Latency, st[1].Latency = 0, 0
	assert.Equal(t, gwtransport.TargetStats{Route: "gateway", Target: "openai/gpt-4o", Provider: "openai", Model: "gpt-4o", Weight: 1,
		Breaker: gwtransport.BreakerClosed, Attempts: 3, Successes: 2, Failures: 1}, st[0])
	assert.Equal(t, gwtransport.TargetStats{Route: "gateway", Target: "fb/fallback-model", Provider: "fb", Model: "fallback-model", Alias: "backup", Weight: 1,
		Breaker: gwtransport.BreakerClosed, Attempts: 1, Successes: 1, Keys: []gwtransport.KeyStats{{Index: 0, State: "active", Uses: 1}}}, st[1])
	assert.Equal(t, []string{"gateway"}, m.Routes())
	assert.Equal(t, []string{"openai/gpt-4o", "fb/fallback-model"}, m.Models("gateway"))
	assert.Nil(t, m.Models("nope"))
}
