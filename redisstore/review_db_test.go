package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Two deployments kept apart by the Redis database (staging on db 1,
// production on db 0), same configuration, default prefix. Their keys are
// apart, but Redis pub/sub ignores the database: the staging replica's
// breaker opening reaches production through the shared channel.
func TestReviewDBDoesNotIsolateFacts(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p0, _, provs, models := twoLocalProviders(t)
	opts := append([]gwtransport.Option{oneFailureOpens}, provs...)
	prod := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous, redisstore.WithDB(0)}, opts...)
	staging := rvNew(t, r.Addr(), clock, models, []redisstore.Option{generous, redisstore.WithDB(1)}, opts...)
	p0.Enqueue(gatewaytest.Fault{Status: 500})
	got, err := staging.send(context.Background(), p0.URL)
	require.NoError(t, err)
	require.Equal(t, "p1/m", got)
	require.Equal(t, gwtransport.BreakerOpen, staging.stat("p0/m").Breaker)
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, gwtransport.BreakerClosed, prod.stat("p0/m").Breaker, "another database: nothing shared")
}
