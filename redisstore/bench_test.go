package redisstore_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// benchBound is the request-path bound of the benchmark: the default 2 ms
// is often exceeded on a loaded machine, which then measures the fallback.
var benchBound = flag.Duration("redisstore.bound", 50*time.Millisecond, "request-path bound of BenchmarkGatewayStore")

// opCounter counts the commands sent to Redis, pipelined ones included.
type opCounter struct{ n atomic.Int64 }

func (c *opCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *opCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *opCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// BenchmarkGatewayStore is the gateway path (one request, two targets, a
// local provider) with the memory state and with the Redis store on a
// local redis-server: p50/p99 per request, the time Redis adds at both
// (against the memory run just before), and Redis commands per request.
// round_robin asks Redis once per request (its shared counter); ordered
// never does on the request path (facts only).
func BenchmarkGatewayStore(b *testing.B) {
	r := startRedis(b)
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	defer p.Close()
	q := gatewaytest.NewServer(gatewaytest.WithName("p1"))
	defer q.Close()
	for _, strategy := range []gwtransport.Strategy{gwtransport.StrategyOrdered, gwtransport.StrategyRoundRobin} {
		var memP50, memP99 time.Duration
		for _, kind := range []string{"memory", "redis"} {
			b.Run("strategy="+strategy.String()+"/store="+kind, func(b *testing.B) {
				opts := []gwtransport.Option{
					gwtransport.WithEnv(func(string) (string, bool) { return "", false }), gwtransport.WithStrategy(strategy),
					gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p.URL, Auth: gwtransport.AuthNone}),
					gwtransport.WithProvider(gwtransport.Provider{Name: "p1", BaseURL: q.URL, Auth: gwtransport.AuthNone}),
				}
				ops := &opCounter{}
				if kind == "redis" {
					st, err := redisstore.New(redisstore.WithAddr(r.Addr()), redisstore.WithHook(ops), redisstore.WithTimeout(*benchBound))
					require.NoError(b, err)
					defer st.Close()
					opts = append(opts, gwtransport.WithStore(st))
					require.NoError(b, st.Ping(context.Background()))
					defer func() { b.ReportMetric(float64(st.Stats().Errors), "redis-errors") }()
				}
				tr, err := gwtransport.NewTransport(nil, []string{"p0/m", "p1/m"}, opts...)
				require.NoError(b, err)
				hc := &http.Client{Transport: tr}
				send := func() {
					res, err := hc.Post(p.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				for i := 0; i < 20; i++ {
					send() // warm: connections, scripts
				}
				time.Sleep(20 * time.Millisecond)
				ops.n.Store(0)
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					send()
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
				if kind == "memory" {
					memP50, memP99 = p50, p99
					return
				}
				b.ReportMetric(float64((p50 - memP50).Microseconds()), "added-p50-µs")
				b.ReportMetric(float64((p99 - memP99).Microseconds()), "added-p99-µs")
				b.ReportMetric(float64(ops.n.Load())/float64(b.N), "redis-ops/req")
			})
		}
	}
}
