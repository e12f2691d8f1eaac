package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// Many concurrent requests on a one-key pool with a KeyInterval, two
// targets of the same provider: each request is sent at most
// WithMaxAttempts times, never twice to the same target when it was
// answered, and ends (served or ErrNoTarget with RetryAfter) within its
// bounds.
func TestRV3KeyRaceSoak(t *testing.T) {
	re := regexp.MustCompile(`req-(\d+)`)
	reM := regexp.MustCompile(`"model":"(m\d?)"`)
	var mu sync.Mutex
	sends := map[string]int{}
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		id := re.FindString(string(b)) + "/" + reM.FindStringSubmatch(string(b))[1]
		mu.Lock()
		sends[id]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer local.Close()
	hc := &http.Client{}
	mustInit(t, hc, []string{"local/m", "local/m2"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: local.URL, APIKeys: []string{"k1", "k2"}, KeyInterval: gwtransport.Duration(10 * time.Millisecond)}),
		gwtransport.WithMaxRetries(0),
		gwtransport.WithMaxAttempts(2),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithMaxRetryWait(30*time.Millisecond),
	)
	const n = 60
	var wg sync.WaitGroup
	errs := make([]error, n)
	trails := make([][]gwtransport.Attempt, n)
	durs := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "POST", local.URL+"/v1/chat/completions",
				stringsReader(fmt.Sprintf(`{"model":"gateway","messages":[{"role":"user","content":"req-%d"}]}`, i)))
			start := time.Now()
			res, err := hc.Do(req)
			durs[i] = time.Since(start)
			trails[i] = trail.Attempts()
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}(i)
	}
	wg.Wait()
	served, noTarget := 0, 0
	for i := 0; i < n; i++ {
		total := 0
		for _, m := range []string{"m", "m2"} {
			c := sends[fmt.Sprintf("req-%d/%s", i, m)]
			assert.LessOrEqual(t, c, 1, "req-%d sent twice to %s", i, m)
			total += c
		}
		assert.LessOrEqual(t, total, 2, "req-%d", i)
		assert.Less(t, durs[i], 2*time.Second, "req-%d", i)
		if errs[i] == nil {
			served++
			continue
		}
		require.True(t, errors.Is(errs[i], gwtransport.ErrNoTarget), "req-%d: %v", i, errs[i])
		noTarget++
		d, ok := gwtransport.RetryAfterOf(errs[i])
		assert.True(t, ok && d > 0 && d <= 10*time.Millisecond, "req-%d RetryAfter %v %v", i, d, ok)
		var cw time.Duration
		for _, a := range trails[i] {
			cw += a.CoolingWait
		}
		_ = cw
	}
	t.Logf("served %d, ErrNoTarget %d", served, noTarget)
}
