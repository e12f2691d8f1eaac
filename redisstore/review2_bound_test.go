package redisstore_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// A quiet replica (a round_robin route, one request now and then): Redis
// is healthy but busy for 50 ms once (another client's slow command; here
// DEBUG SLEEP). The one request in that moment overruns its bound: "a call
// over the bound makes only that request local". But the outage rule
// measures "no call answered for 100 ms" from the last call that
// answered, however long ago: after a quiet spell, one overrun is an
// outage: "Redis unreachable" is logged and the replica goes local until
// the next ping and resynchronisation.
func TestReview2OneOverrunAfterQuietIsOutage(t *testing.T) {
	r := startRedis(t, "--enable-debug-command", "yes")
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(),
		store:   []redisstore.Option{},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	for i := 0; i < 5; i++ {
		_, err := c.send(t, 0)
		require.NoError(t, err)
	}
	time.Sleep(300 * time.Millisecond) // a quiet spell
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cl.Do(context.Background(), "DEBUG", "SLEEP", "0.05").Err()
	}()
	time.Sleep(5 * time.Millisecond)
	_, err := c.send(t, 0)
	require.NoError(t, err)
	<-done
	time.Sleep(50 * time.Millisecond)
	st := c.replicas[0].store.Stats()
	require.EqualValues(t, 1, st.Slow, "the one request in the busy moment overran: %+v", st)
	logs := c.logs[0].String()
	assert.NotContains(t, logs, "Redis unreachable", "one overrun is no outage: %+v", st)
}

// Redis stops answering (SIGSTOP: a stuck Redis, a network partition)
// while every target's breaker is past its cooldown and the targets
// still fail. One request tries the targets in turn; each probe lease is
// asked of Redis under the bound, and each overruns it: the request waits
// 10 ms per target (the bound once per call, not once per request), 40 ms
// in all with four targets, though "an overrun makes only that request
// local" and "the request path never waits on Redis beyond the bound".
func TestReview2OverrunsAddUpWithinOneRequest(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 4, addr: r.Addr(),
		gateway: []gwtransport.Option{oneFailureOpens}})
	for _, s := range c.servers {
		s.SetFault(&gatewaytest.Fault{Status: 500})
	}
	_, err := c.send(t, 0)
	require.Error(t, err)
	for i := range c.servers {
		require.Equal(t, gwtransport.BreakerOpen, c.breakerOf(0, fmt.Sprintf("p%d/m", i)))
	}
	c.clock.Advance(11 * time.Second) // past every cooldown; the targets still fail
	time.Sleep(100 * time.Millisecond)
	_, ok := c.replicas[0].store.sess.NextRoundRobin(0) // Redis answered just now
	require.True(t, ok)
	r.signal(syscall.SIGSTOP)
	defer r.signal(syscall.SIGCONT)
	start := time.Now()
	_, err = c.send(t, 0)
	took := time.Since(start)
	require.Error(t, err, "every target fails")
	st := c.replicas[0].store.Stats()
	t.Logf("request took %s; %+v", took, st)
	assert.EqualValues(t, 1, st.Slow, "one overrun, then the request is local")
	assert.Less(t, took, 25*time.Millisecond, "the request waited on Redis beyond the 10 ms bound")
}
