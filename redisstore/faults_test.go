package redisstore_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
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

// load sends requests from every replica until stop is closed, counting
// them and their failures; progress reports how many were sent so far.
func load(t *testing.T, c *cluster, stop chan struct{}) (wait func() (sent, failed int64), progress func() int64) {
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for r := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.send(t, r); err != nil {
					failed.Add(1)
					t.Logf("replica %d: %v", r, err)
				}
				sent.Add(1)
			}
		}()
	}
	return func() (int64, int64) { wg.Wait(); return sent.Load(), failed.Load() }, sent.Load
}

// SIGKILL Redis under load: no request fails; a breaker opened while it is
// down reaches the other replicas once it is back (the resynchronisation).
func TestRedisKilledUnderLoad(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 3, providers: 2, addr: r.Addr(),
		store:   []redisstore.Option{redisstore.WithTimeout(50 * time.Millisecond)},
		gateway: []gwtransport.Option{oneFailureOpens, gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	stop := make(chan struct{})
	wait, progress := load(t, c, stop)
	// Requests before the kill, and at least 30 more once every replica
	// saw the outage (counted, not timed: a loaded machine is slow).
	require.Eventually(t, func() bool { return progress() >= 10 }, 10*time.Second, time.Millisecond)
	r.kill()
	for i, rep := range c.replicas {
		require.Eventually(t, func() bool { return !rep.store.Connected() }, 5*time.Second, time.Millisecond, "replica %d sees the outage", i)
	}
	during := progress()
	require.Eventually(t, func() bool { return progress() >= during+30 }, 10*time.Second, time.Millisecond)
	close(stop)
	sent, failed := wait()
	require.Zero(t, failed, "of %d requests", sent)

	// Down: replica 0 opens p0's breaker; nobody else can hear of it yet.
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	for {
		got, err := c.send(t, 0)
		require.NoError(t, err)
		if c.breakerOf(0, "p0/m") == gwtransport.BreakerOpen {
			require.Equal(t, "p1/m", got)
			break
		}
	}
	require.Equal(t, gwtransport.BreakerClosed, c.breakerOf(1, "p0/m"))

	r.restart()
	for i := range c.replicas {
		require.Eventually(t, c.replicas[i].store.Connected, 5*time.Second, time.Millisecond, "replica %d reconnects", i)
		require.Eventually(t, func() bool { return c.breakerOf(i, "p0/m") == gwtransport.BreakerOpen }, 5*time.Second, time.Millisecond, "replica %d converges", i)
	}
	for i, l := range c.logs {
		assert.Equal(t, 1, strings.Count(l.String(), "Redis unreachable"), "replica %d logs the outage once: %s", i, l.String())
	}
}

// durations records how long each request-path command took.
type durations struct {
	mu  sync.Mutex
	max time.Duration
	n   int
	err int
}

func (d *durations) DialHook(next redis.DialHook) redis.DialHook { return next }
func (d *durations) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (d *durations) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			el := time.Since(start)
			d.mu.Lock()
			d.n++
			if err != nil {
				d.err++
			}
			d.max = max(d.max, el)
			d.mu.Unlock()
		}
		return err
	}
}

// SIGSTOP Redis (it accepts, never answers): a request waits for it at
// most the bound, then goes on with local state; after 10 bounds without
// an answer Redis is down and requests stop calling it; every request
// succeeds.
func TestRedisStoppedKeepsLatencyBound(t *testing.T) {
	r := startRedis(t)
	const bound = 20 * time.Millisecond
	d := &durations{}
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(),
		store:   []redisstore.Option{redisstore.WithTimeout(bound), redisstore.WithHook(d), redisstore.WithRetry(time.Hour)},
		gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	send := func(n int) {
		for i := 0; i < n; i++ {
			_, err := c.send(t, 0)
			require.NoError(t, err)
		}
	}
	send(5) // the scripts are loaded meanwhile
	d.mu.Lock()
	d.n, d.err, d.max = 0, 0, 0
	d.mu.Unlock()
	send(5)
	d.mu.Lock()
	require.Equal(t, 5, d.n, "one round-robin call per request")
	d.mu.Unlock()
	r.signal(syscall.SIGSTOP)
	defer r.signal(syscall.SIGCONT)
	// Requests for 400 ms (an overrun makes the calls of the next bound
	// local too, so requests alone no longer take 20 ms each).
	for stop := time.Now().Add(400 * time.Millisecond); time.Now().Before(stop); time.Sleep(2 * time.Millisecond) {
		start := time.Now()
		_, err := c.send(t, 0)
		require.NoError(t, err)
		assert.Less(t, time.Since(start), time.Second)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// A call overrunning its bound only makes that request local; once
	// calls overran for max(10 x bound, 100 ms) with none answering, Redis
	// is down and the next requests do not call it: 200 ms, at most one
	// call per 20 ms, 10 calls at most.
	require.LessOrEqual(t, d.n-5, 11, "the calls time out for 200 ms, then the requests do not wait for Redis")
	require.GreaterOrEqual(t, d.err, 1)
	require.Equal(t, d.n-5, d.err, "every call after the stop timed out")
	require.Less(t, d.max, bound+150*time.Millisecond, "the wait is bounded (slack for a loaded machine)")
	require.False(t, c.replicas[0].store.Connected())
}

// Wrong password at start: the Store degrades to local state (requests
// succeed), logs the error once without the password, and Ping reports it.
func TestRedisWrongPasswordDegrades(t *testing.T) {
	r := startRedis(t, "--requirepass", "the-right-one")
	const wrong = "w0ng-s3cr3t-pw"
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), noConnect: true,
		store: []redisstore.Option{redisstore.WithPassword(wrong)}, gateway: []gwtransport.Option{gwtransport.WithStrategy(gwtransport.StrategyRoundRobin)}})
	err := c.replicas[0].store.Ping(context.Background())
	require.ErrorContains(t, err, "WRONGPASS")
	require.NotContains(t, err.Error(), wrong)
	served := map[string]int{}
	for i := 0; i < 10; i++ {
		got, err := c.send(t, 0)
		require.NoError(t, err)
		served[got]++
	}
	require.Equal(t, map[string]int{"p0/m": 5, "p1/m": 5}, served, "local round-robin")
	require.False(t, c.replicas[0].store.Connected())
	require.Eventually(t, func() bool { return strings.Contains(c.logs[0].String(), "WRONGPASS") }, 5*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond) // several retries
	logs := c.logs[0].String()
	require.Equal(t, 1, strings.Count(logs, "Redis unreachable"), logs)
	require.NotContains(t, logs, wrong)
}

// Unreachable address at start: degrade, Ping names the address.
func TestRedisUnreachableAtStart(t *testing.T) {
	r := startRedis(t)
	addr := r.Addr()
	r.kill()
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: addr, noConnect: true, gateway: []gwtransport.Option{oneFailureOpens}})
	err := c.replicas[0].store.Ping(context.Background())
	require.ErrorContains(t, err, addr)
	require.ErrorContains(t, err, "connection refused")
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	got, err := c.send(t, 0)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Equal(t, gwtransport.BreakerOpen, c.breakerOf(0, "p0/m"), "local state works")
	// Redis comes up: the replica connects and writes its open breaker.
	r.restart()
	require.Eventually(t, c.replicas[0].store.Connected, 5*time.Second, time.Millisecond)
	cl := redis.NewClient(&redis.Options{Addr: addr})
	defer cl.Close()
	require.Eventually(t, func() bool {
		keys, _ := cl.Keys(context.Background(), "gwtransport:*:b:*").Result()
		return len(keys) == 1
	}, 5*time.Second, time.Millisecond)
}

// A variable named for the password that is not set is an error of New.
func TestPasswordEnvUnset(t *testing.T) {
	_, err := redisstore.New(redisstore.WithPasswordEnv("GWT_TEST_SURELY_UNSET_PW"))
	require.EqualError(t, err, "redisstore: password variable GWT_TEST_SURELY_UNSET_PW is not set")
}
