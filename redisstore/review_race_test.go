package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// A replica that starts (NewTransport) while the shared state holds an
// open breaker: Store.Bind signals the resynchronisation, whose
// Mirror.Apply runs in the maintainer goroutine while bindStore is still
// writing the breakers' share/index fields. Run with -race: DATA RACE
// (live.go bindStore vs live_breaker.go dropLease/remoteOpen).
func TestReviewBindRacesResync(t *testing.T) {
	r := startRedis(t)
	c := newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous}, gateway: []gwtransport.Option{oneFailureOpens}})
	c.servers[0].Enqueue(gatewaytest.Fault{Status: 500})
	_, err := c.send(t, 0)
	require.NoError(t, err)
	cl := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer cl.Close()
	fp := c.replicas[0].store.l.Fingerprint
	require.Eventually(t, func() bool {
		n, _ := cl.Exists(context.Background(), "gwtransport:"+fp+":b:0").Result()
		return n == 1
	}, 5*time.Second, time.Millisecond)
	// New replicas join, one after the other.
	for i := 0; i < 5; i++ {
		newCluster(t, clusterOpts{replicas: 1, providers: 2, addr: r.Addr(), store: []redisstore.Option{generous}, gateway: []gwtransport.Option{oneFailureOpens}})
	}
}
