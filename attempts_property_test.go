package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// scriptedProvider is an upstream that answers each request with the next
// step of a random script (then with its default step), and counts what it
// received per API key.
type scriptedProvider struct {
	mu     sync.Mutex
	script []string
	dflt   string
	byKey  map[string]int
	total  int
	srv    *httptest.Server
}

func newScriptedProvider(t *testing.T) *scriptedProvider {
	p := &scriptedProvider{byKey: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *scriptedProvider) set(script []string, dflt string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script, p.dflt = script, dflt
}

func (p *scriptedProvider) counts() (int, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.byKey))
	for k, v := range p.byKey {
		m[k] = v
	}
	return p.total, m
}

func (p *scriptedProvider) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	step := p.dflt
	if len(p.script) > 0 {
		step, p.script = p.script[0], p.script[1:]
	}
	p.total++
	p.byKey[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
	p.mu.Unlock()
	switch step {
	case "reset":
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
		}
	case "200":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	case "429ra":
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit"}}`)
	default:
		status, _ := strconv.Atoi(step)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":{"message":"step `+step+`","type":"x"}}`)
	}
}

// TestAttemptsBoundedProperty attacks "exactly the attempts the policy
// allows": random providers with key pools, random routes, retries, attempt
// caps and breakers, and random scripts of every failure kind. For every
// request: at most max-attempts attempts; each target visited in one block,
// its tries numbered 1, 2, ... at most retries + 1 + (keys - 1); every
// attempt that was sent reached exactly one upstream, and nothing else did;
// the waits slept are exactly the waits recorded; the response headers
// count the same attempts.
func TestAttemptsBoundedProperty(t *testing.T) {
	steps := []string{"200", "503", "500", "429", "429ra", "408", "409", "401", "403", "404", "400", "reset"}
	rng := rand.New(rand.NewPCG(9, 2026))
	const configs, perConfig = 40, 6
	requests := 0
	for c := 0; c < configs; c++ {
		nProv := 1 + rng.IntN(3)
		provs := make([]*scriptedProvider, nProv)
		keys := make([]int, nProv)
		clock := newFakeClock()
		var coolMu sync.Mutex
		var cooling []time.Duration // waits for cooling targets, from the events
		maxRetries := rng.IntN(4)
		maxAttempts := 1 + rng.IntN(12)
		opts := []gwtransport.Option{noEnv(), seeded(uint64(c)), gwtransport.WithClock(clock),
			gwtransport.WithMaxRetries(maxRetries), gwtransport.WithMaxAttempts(maxAttempts),
			gwtransport.WithClientProvider("p0"), gwtransport.WithOnEvent(func(e gwtransport.Event) {
				if e.Kind == gwtransport.EventWait {
					coolMu.Lock()
					cooling = append(cooling, e.Wait)
					coolMu.Unlock()
				}
			})}
		if rng.IntN(2) == 0 {
			opts = append(opts, gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
		}
		for i := range provs {
			provs[i] = newScriptedProvider(t)
			keys[i] = 1 + rng.IntN(3)
			var pool []string
			for k := 0; k < keys[i]; k++ {
				pool = append(pool, fmt.Sprintf("key-p%d-%d", i, k))
			}
			opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{Name: fmt.Sprintf("p%d", i), BaseURL: provs[i].srv.URL, APIKeys: pool}))
		}
		nTargets := 1 + rng.IntN(5)
		var targets []string
		for i := 0; i < nTargets; i++ {
			targets = append(targets, fmt.Sprintf("p%d/m%d", rng.IntN(nProv), i))
		}
		hc := &http.Client{}
		mustInit(t, hc, targets, opts...)
		keysOf := func(target string) int {
			i, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(target, "/", 2)[0], "p"))
			return keys[i]
		}
		for r := 0; r < perConfig; r++ {
			requests++
			before := make([]int, nProv)
			for i, p := range provs {
				script := make([]string, rng.IntN(8))
				for k := range script {
					script[k] = steps[rng.IntN(len(steps))]
				}
				p.set(script, steps[rng.IntN(len(steps))])
				before[i], _ = p.counts()
			}
			sleptBefore := len(clock.Sleeps())
			coolMu.Lock()
			cooling = nil
			coolMu.Unlock()
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, provs[0].srv.URL+"/chat/completions",
				strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer key-p0-0")
			req.Header.Set("Content-Type", "application/json")
			res, rerr := hc.Do(req)
			if rerr == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			as := trail.Attempts()
			where := fmt.Sprintf("config %d request %d: targets %v retries %d max %d keys %v: %v", c, r, targets, maxRetries, maxAttempts, keys, as)

			sentAll := 0
			for _, a := range as {
				if !errors.Is(a.Err, gwtransport.ErrNoTarget) && !errors.Is(a.Err, gwtransport.ErrMissingCredentials) {
					sentAll++
				}
			}
			require.LessOrEqual(t, sentAll, maxAttempts, where)
			if rerr == nil {
				assert.Equal(t, strconv.Itoa(sentAll), res.Header.Get(gwtransport.HeaderAttempts), where)
			} else {
				var gerr *gwtransport.Error
				require.True(t, errors.As(rerr, &gerr), "%s: %v", where, rerr)
				assert.Len(t, gerr.Attempts, len(as), where)
			}

			// Each target in one block, tries 1..k, k bounded.
			seen := map[string]bool{}
			sent := make([]int, nProv)
			var waits []time.Duration
			var cooled time.Duration
			for i, a := range as {
				cooled += a.CoolingWait
				if i == 0 || as[i-1].Target != a.Target {
					require.False(t, seen[a.Target], "%s: %s tried in two blocks", where, a.Target)
					seen[a.Target] = true
					require.Equal(t, 1, a.Try, where)
				} else {
					require.Equal(t, as[i-1].Try+1, a.Try, where)
				}
				require.LessOrEqual(t, a.Try, maxRetries+1+keysOf(a.Target)-1, where)
				if a.Wait > 0 {
					waits = append(waits, a.Wait)
				}
				if errors.Is(a.Err, gwtransport.ErrNoTarget) || errors.Is(a.Err, gwtransport.ErrMissingCredentials) {
					continue // never sent
				}
				p, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(a.Target, "/", 2)[0], "p"))
				sent[p]++
			}
			for i, p := range provs {
				total, _ := p.counts()
				assert.Equal(t, sent[i], total-before[i], "%s: provider p%d received", where, i)
			}
			// Every sleep is a retry's wait, in order, or a wait for a
			// cooling target (all targets left excluded), each announced by
			// its event; the trail shows the cooling waits before attempts.
			coolMu.Lock()
			coolWaits := append([]time.Duration(nil), cooling...)
			coolMu.Unlock()
			var retrySlept []time.Duration
			var coolTotal time.Duration
			for _, d := range clock.Sleeps()[sleptBefore:] {
				switch {
				case len(retrySlept) < len(waits) && d == waits[len(retrySlept)]:
					retrySlept = append(retrySlept, d)
				case len(coolWaits) > 0 && d == coolWaits[0]:
					coolTotal += d
					coolWaits = coolWaits[1:]
				default:
					retrySlept = append(retrySlept, d) // neither: fails below
				}
			}
			assert.Empty(t, coolWaits, "%s: announced cooling waits not slept", where)
			assert.Equal(t, waits, noWaits(retrySlept), "%s: slept", where)
			assert.LessOrEqual(t, cooled, coolTotal, "%s: cooling waits in the trail", where)
			assert.LessOrEqual(t, coolTotal, gwtransport.DefaultMaxRetryWait, "%s: cooling waits bounded", where)
		}
	}
	t.Logf("%d configurations, %d requests", configs, requests)
}

func noWaits(d []time.Duration) []time.Duration {
	if len(d) == 0 {
		return nil
	}
	return d
}

// TestUnsentTargetsAreNotAttempts: a target skipped without being sent
// (its provider has no key) is listed in the trail but is not an attempt:
// it does not use up WithMaxAttempts, the attempts header does not count
// it, and it never counts against the target's breaker.
func TestUnsentTargetsAreNotAttempts(t *testing.T) {
	b := newScriptedProvider(t)
	b.set(nil, "200")
	hc := &http.Client{}
	mustInit(t, hc, []string{"groq/llama", "b/m"}, noEnv(), gwtransport.WithClock(newFakeClock()), gwtransport.WithMaxAttempts(1),
		gwtransport.WithProvider(gwtransport.Provider{Name: "b", BaseURL: b.srv.URL, APIKeys: []string{"key-b"}}))
	var stats []gwtransport.TargetStats
	for i := 0; i < 8; i++ {
		ctx, trail := gwtransport.ContextWithTrail(context.Background())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res, err := hc.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, "b/m", res.Header.Get(gwtransport.HeaderTarget))
		assert.Equal(t, "1", res.Header.Get(gwtransport.HeaderAttempts))
		as := trail.Attempts()
		require.Len(t, as, 2)
		assert.Equal(t, "groq/llama", as[0].Target)
		assert.ErrorIs(t, as[0].Err, gwtransport.ErrMissingCredentials)
		assert.Contains(t, as[0].Err.Error(), "GROQ_API_KEY")
		assert.Equal(t, gwtransport.Succeed, as[1].Action)
	}
	stats = append(stats, hcStats(t, hc)...)
	require.Len(t, stats, 2)
	assert.Equal(t, gwtransport.BreakerClosed, stats[0].Breaker)
	assert.Zero(t, stats[0].Attempts)
	assert.Zero(t, stats[0].Failures)
	total, _ := b.counts()
	assert.Equal(t, 8, total)
}

func hcStats(t *testing.T, hc *http.Client) []gwtransport.TargetStats {
	t.Helper()
	tr, ok := hc.Transport.(*gwtransport.Transport)
	require.True(t, ok)
	return tr.Stats()
}
