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

// Two replicas in the middle of a key rotation: replica A still has the
// revoked key, replica B already has the new one. Same provider, same
// number of keys, so the same Layout fingerprint. A's 401 on the revoked
// key must not disable B's (different, valid) key: the Store names keys by
// salted fingerprint, but the pub/sub message carries only the index.
func TestReviewKeyFactAppliedToAnotherKey(t *testing.T) {
	r := startRedis(t)
	clock := newFakeClock()
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	t.Cleanup(p.Close)
	mk := func(key string) *rvReplica {
		return rvNew(t, r.Addr(), clock, []string{"p0/m"}, []redisstore.Option{generous},
			gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p.URL, APIKeys: []string{key}}))
	}
	a := mk("sk-revoked-key-1111")
	b := mk("sk-new-valid-key-2222")
	p.Enqueue(gatewaytest.Fault{Status: 401})
	_, err := a.send(context.Background(), p.URL)
	require.Error(t, err, "A's revoked key is refused")
	require.Equal(t, "disabled", a.stat("p0/m").Keys[0].State)
	time.Sleep(300 * time.Millisecond) // A's fact reaches B
	assert.Equal(t, "active", b.stat("p0/m").Keys[0].State, "B's key is another key: A's 401 says nothing about it")
	_, err = b.send(context.Background(), p.URL)
	require.NoError(t, err, "B's valid key still serves")
}
