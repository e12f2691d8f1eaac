package gwtransport_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestCredentialIsolationProperty: random sets of providers, each with its
// own key and its own secret header, random target lists and random
// faults; across thousands of requests no provider ever sees another's
// secret, and each sees its own key on every request.
func TestCredentialIsolationProperty(t *testing.T) {
	const configs, perConfig = 40, 50
	rng := rand.New(rand.NewPCG(2026, 11))
	total := 0
	for c := 0; c < configs; c++ {
		n := 2 + rng.IntN(4)
		names := make([]string, n)
		secretHeaders := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("p%d", i)
			secretHeaders[i] = "X-Secret-" + names[i]
		}
		servers := make([]*gatewaytest.Server, n)
		// The fake clock: once every breaker is open, requests wait for the
		// earliest to cool down, on this clock, not for real.
		opts := []gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(rng.IntN(2)), gwtransport.WithBackoff(gwtransport.Backoff{}), seeded(uint64(c)), gwtransport.WithClock(newFakeClock())}
		for i, name := range names {
			servers[i] = gatewaytest.NewServer(gatewaytest.WithName(name), gatewaytest.WithAPIKey("key-"+name), gatewaytest.WithSecretHeaders(secretHeaders...))
			defer servers[i].Close()
			auth := gwtransport.AuthBearer
			if rng.IntN(3) == 0 {
				auth = gwtransport.AuthAPIKey
			}
			opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{
				Name: name, BaseURL: servers[i].URL, APIKey: "key-" + name, Auth: auth,
				Headers: map[string]string{secretHeaders[i]: "secret-" + name},
			}))
			switch rng.IntN(4) {
			case 0:
				servers[i].SetFault(&gatewaytest.Fault{Status: 503})
			case 1:
				servers[i].SetFault(&gatewaytest.Fault{Reset: true})
			}
		}
		// The caller's client serves p0: its own key and secret header.
		opts = append(opts, gwtransport.WithClientProvider("p0"))
		var targets []string
		for _, i := range rng.Perm(n)[:1+rng.IntN(n)] {
			targets = append(targets, names[i]+"/model-"+names[i])
		}
		tr, err := gwtransport.NewTransport(nil, targets, opts...)
		require.NoError(t, err)
		hc := &http.Client{Transport: tr}
		for r := 0; r < perConfig; r++ {
			stream := rng.IntN(2) == 0
			req, _ := http.NewRequest(http.MethodPost, servers[0].URL+"/chat/completions",
				strings.NewReader(fmt.Sprintf(`{"model":"gateway","stream":%t,"messages":[]}`, stream)))
			req.Header.Set("Authorization", "Bearer key-p0")
			req.Header.Set("Api-Key", "key-p0")
			req.Header.Set(secretHeaders[0], "secret-p0")
			res, err := hc.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			total++
		}
		for i, s := range servers {
			for _, rec := range s.Journal() {
				for j := range names {
					if j == i {
						continue
					}
					for _, h := range []string{"Authorization", "Api-Key", secretHeaders[j]} {
						for _, v := range rec.Header.Values(h) {
							assert.NotContains(t, []string{
								gatewaytest.Mask("Bearer key-" + names[j]), gatewaytest.Mask("key-" + names[j]), gatewaytest.Mask("secret-" + names[j]),
							}, v, "config %d: %s received %s's %s", c, names[i], names[j], h)
						}
					}
				}
				own := rec.Header.Get("Authorization") == gatewaytest.Mask("Bearer key-"+names[i]) || rec.Header.Get("Api-Key") == gatewaytest.Mask("key-"+names[i])
				assert.True(t, own, "config %d: %s did not receive its own key: %s %s model %q, Authorization %q, Api-Key %q, User-Agent %q",
					c, names[i], rec.Method, rec.Path, rec.Model, rec.Header.Get("Authorization"), rec.Header.Get("Api-Key"), rec.Header.Get("User-Agent"))
				assert.Equal(t, gatewaytest.Mask("secret-"+names[i]), rec.Header.Get(secretHeaders[i]), "config %d: %s's own secret header", c, names[i])
			}
		}
	}
	t.Logf("%d configurations, %d requests", configs, total)
}

// TestConcurrentRequests: 1,000 requests at once through one transport,
// streamed and not, with a failing primary and a primary that resets;
// every request is served. Without circuit breakers the attempt counts are
// exact; with them (the default) the broken targets see fewer attempts.
func TestConcurrentRequests(t *testing.T) {
	for _, breakers := range []bool{false, true} {
		t.Run(fmt.Sprintf("breakers=%t", breakers), func(t *testing.T) { concurrentRequests(t, breakers) })
	}
}

func concurrentRequests(t *testing.T, breakers bool) {
	const n = 1000
	down := server(t, "down", "")
	flaky := server(t, "flaky", "")
	ok := server(t, "ok", "")
	down.SetFault(&gatewaytest.Fault{Status: 503})
	flaky.SetFault(&gatewaytest.Fault{Reset: true})
	opts := []gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(1), gwtransport.WithBackoff(gwtransport.Backoff{}),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: !breakers})}
	for name, s := range map[string]*gatewaytest.Server{"down": down, "flaky": flaky, "ok": ok} {
		opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s.URL, Auth: gwtransport.AuthNone}))
	}
	tr, err := gwtransport.NewTransport(&http.Transport{MaxIdleConnsPerHost: n}, []string{"down/a", "flaky/b", "ok/c"}, opts...)
	require.NoError(t, err)
	hc := &http.Client{Transport: tr}
	defer tr.Base().(*http.Transport).CloseIdleConnections()

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(stream bool) {
			defer wg.Done()
			ctx, trail := gwtransport.ContextWithTrail(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ok.URL+"/chat/completions",
				strings.NewReader(fmt.Sprintf(`{"model":"gateway","stream":%t,"messages":[]}`, stream)))
			res, err := hc.Do(req)
			if err != nil {
				errs <- err
				return
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			switch {
			case err != nil:
				errs <- err
			case res.StatusCode != 200 || res.Header.Get(gwtransport.HeaderTarget) != "ok/c":
				errs <- fmt.Errorf("status %d from %s", res.StatusCode, res.Header.Get(gwtransport.HeaderTarget))
			case !strings.Contains(string(body), "Hello from ok"):
				errs <- fmt.Errorf("body %q", body)
			case !breakers && len(trail.Attempts()) != 5:
				errs <- fmt.Errorf("%d attempts", len(trail.Attempts()))
			}
		}(i%2 == 0)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, n, ok.Count())
	if breakers {
		assert.Less(t, down.Count(), 2*n, "the open breaker spared the broken target")
		assert.Less(t, flaky.Count(), 2*n)
		return
	}
	assert.Equal(t, 2*n, down.Count())
	assert.Equal(t, 2*n, flaky.Count())
}
