package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// r2World is two providers p0, p1 and a shared clock; mk makes a replica.
type r2World struct {
	r      *redisServer
	clock  *fakeClock
	p0, p1 *gatewaytest.Server
	opts   []gwtransport.Option
	models []string
	real   bool
}

func r2NewWorld(t *testing.T, extra ...gwtransport.Option) *r2World {
	w := &r2World{r: startRedis(t), clock: newFakeClock()}
	w.p0 = gatewaytest.NewServer(gatewaytest.WithName("p0"))
	w.p1 = gatewaytest.NewServer(gatewaytest.WithName("p1"))
	t.Cleanup(w.p0.Close)
	t.Cleanup(w.p1.Close)
	w.opts = append([]gwtransport.Option{oneFailureOpens,
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: w.p0.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: w.p1.URL, Auth: gwtransport.AuthNone})}, extra...)
	w.models = []string{"p0/m", "p1/m"}
	return w
}

func (w *r2World) mk(t *testing.T, so ...redisstore.Option) *rvReplica {
	var c gwtransport.Clock = w.clock
	if w.real {
		c = r2RealClock{}
	}
	return rvNew(t, w.r.Addr(), c, w.models, append([]redisstore.Option{generous}, so...), w.opts...)
}

// r2RealClock is the wall clock: Redis keeps facts in its own clock, which
// a fake clock's jumps do not move.
type r2RealClock struct{}

func (r2RealClock) Now() time.Time { return time.Now() }
func (r2RealClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

var r2ShortCooldown = gwtransport.WithCircuitBreaker(gwtransport.Breaker{ConsecutiveFailures: 1, Cooldown: gwtransport.Duration(500 * time.Millisecond)})

// A replica (re)started while another replica probes a target past its
// cooldown (a rolling deploy, a crashed replica back up) learns nothing of
// the half-open breaker: the resynchronisation reads the open-until,
// already past, and ignores it, and never reads the probe lease. Its
// breaker is closed and it sends its requests to the target while the
// probe is out: the probe is not "exactly one" request to the target, and
// the newcomer does not fall back like the other replicas.
func TestReview2ReplicaJoiningMidProbeSendsToTarget(t *testing.T) {
	w := r2NewWorld(t, r2ShortCooldown)
	w.real = true
	a := w.mk(t)
	b := w.mk(t)
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Eventually(t, func() bool { return b.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	time.Sleep(600 * time.Millisecond) // past the cooldown
	w.p0.SetFault(&gatewaytest.Fault{Delay: 700 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = a.send(context.Background(), w.p0.URL)
	}()
	require.Eventually(t, func() bool { return w.p0.Count() == 2 }, 2*time.Second, time.Millisecond, "A's probe is out")
	got, err = b.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got, "B, which heard the announcement, falls back")

	c := w.mk(t) // a replica (re)started mid-probe
	got, err = c.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got, "A's probe is out: the new replica falls back too (its breaker: %s)", c.stat("p0/m").Breaker)
	wg.Wait()
	assert.Equal(t, 2, w.p0.Count(), "the failure, then exactly one probe")
}

// The same while the breaker is still open (before the cooldown ends): a
// replica started then must keep the target out (held, kept as evidence).
func TestReview2HeldReplicaJoiningWhileOpen(t *testing.T) {
	w := r2NewWorld(t)
	a := w.mk(t)
	w.p0.Enqueue(gatewaytest.Fault{Status: 500})
	_, err := a.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	w.clock.Advance(5 * time.Second)
	c := w.mk(t)
	require.Eventually(t, func() bool { return c.stat("p0/m").Breaker == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond)
	got, err := c.send(context.Background(), w.p0.URL)
	require.NoError(t, err)
	assert.Equal(t, "p1/m", got)
}
