package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// The deprecated names still work, one release, exactly as their
// replacements. (staticcheck does not flag deprecated names used inside
// the module that declares them, so these uses need no lint:ignore; other
// modules get SA1019.)

func TestDeprecatedRetryManager(t *testing.T) {
	// The deprecated alias, on purpose.
	var m *gwtransport.RetryManager
	m, err := gwtransport.Init(&http.Client{}, []string{"openai/a", "openai/b"}, noEnv())
	require.NoError(t, err)
	defer m.Uninstall()
	var inst *gwtransport.Installation = m
	assert.Equal(t, []string{"openai/a", "openai/b"}, inst.Models("gateway"))
}

func TestDeprecatedHeaderReason(t *testing.T) {
	// The deprecated alias, on purpose.
	assert.Equal(t, "X-Gwtransport-Fallback-Reason", gwtransport.HeaderReason)
	f := newFleet(t, 2, list)
	f.servers[0].SetFault(&gatewaytest.Fault{Status: 500})
	res, err := f.hc.Post(f.servers[0].URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	assert.Equal(t, "p1/m", res.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "p0/m#1 500 server_error", res.Header.Get(gwtransport.HeaderFallbackReason))
	// The deprecated alias, on purpose.
	assert.Equal(t, "p0/m#1 500 server_error", res.Header.Get(gwtransport.HeaderReason))
}

func TestDeprecatedWithBackOffFactory(t *testing.T) {
	var asked []string
	// The deprecated alias, on purpose.
	factory := gwtransport.WithBackOffFactory(func(target string) backoff.BackOff {
		asked = append(asked, target)
		return &backoff.StopBackOff{}
	})
	f := newFleet(t, 2, list, gwtransport.WithMaxRetries(3), factory)
	f.servers[0].SetFault(&gatewaytest.Fault{Status: 500})
	target, _ := f.send(t, context.Background(), "gateway", nil)
	assert.Equal(t, "p1/m", target, "backoff.Stop moves on to the next target")
	assert.Equal(t, 1, f.servers[0].Count(), "no retry after backoff.Stop")
	assert.Equal(t, []string{"p0/m"}, asked)
}

func TestDeprecatedContextHelpers(t *testing.T) {
	f := newFleet(t, 3, list)
	// The deprecated alias, on purpose.
	ctx, trail := gwtransport.WithTrail(context.Background())
	// The deprecated alias, on purpose.
	ctx = gwtransport.WithPreference(ctx, "p2/m")
	target, _ := f.send(t, ctx, "gateway", nil)
	assert.Equal(t, "p2/m", target)
	got := trail.Attempts()
	require.Len(t, got, 1)
	assert.Equal(t, "p2/m", got[0].Target)
	assert.Equal(t, http.StatusOK, got[0].Status)
}

func TestDeprecatedStrategyAlwaysFirst(t *testing.T) {
	// The deprecated alias, on purpose.
	st := gwtransport.StrategyAlwaysFirst
	assert.Equal(t, gwtransport.StrategyOrdered, st)
	assert.Equal(t, "ordered", st.String())
	parsed, err := gwtransport.ParseStrategy("always_first")
	require.NoError(t, err)
	assert.Equal(t, gwtransport.StrategyOrdered, parsed, "config files saying always_first still load")
	f := newFleet(t, 3, func(names []string) any { return map[string]float64{names[0]: 1, names[1]: 5, names[2]: 5} },
		gwtransport.WithStrategy(st))
	for i := 0; i < 5; i++ {
		target, _ := f.send(t, context.Background(), "gateway", nil)
		assert.Equal(t, "p0/m", target)
	}
}

func TestDeprecatedReconfigureMethod(t *testing.T) {
	a, b := server(t, "a", ""), server(t, "b", "")
	opts := []gwtransport.Option{noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, Auth: gwtransport.AuthNone})}
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m"}, opts...)
	require.NoError(t, err)
	target := func() string {
		res, err := (&http.Client{Transport: tr}).Post(a.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res.Body.Close()
		return res.Header.Get(gwtransport.HeaderTarget)
	}
	assert.Equal(t, "pa/m", target())
	// The deprecated method, on purpose.
	require.NoError(t, tr.Reconfigure(map[string]float64{"pb/m": 1}, opts...))
	assert.Equal(t, "pb/m", target())
	// The deprecated method, on purpose.
	assert.EqualError(t, tr.Reconfigure(42, opts...), "gwtransport: models must be a []string (priority order) or a map[string]float64 (weights), got int")
	// The deprecated method, on purpose.
	assert.EqualError(t, tr.Reconfigure(gwtransport.FromConfig, opts...), "gwtransport: no models: FromConfig takes them from WithConfig, which gave none (and no route was added)")
	assert.Equal(t, "pb/m", target(), "a failed Reconfigure keeps the configuration")
}
