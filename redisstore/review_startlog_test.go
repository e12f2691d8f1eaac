package redisstore_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/redisstore"
)

// Redis unreachable at start, and the Store made a moment before the
// Transport (as a program does: New, then build its clients). The first
// failure happens before Bind, when the Store has no logger yet: it is
// marked logged but logged nowhere, and every later failure is the same
// outage: the outage is never logged. (The package's own
// TestRedisWrongPasswordDegrades fails the same way, intermittently.)
func TestReviewOutageAtStartNeverLogged(t *testing.T) {
	r := startRedis(t)
	addr := r.Addr()
	r.kill()
	st, err := redisstore.New(redisstore.WithAddr(addr), redisstore.WithRetry(20*time.Millisecond))
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	time.Sleep(200 * time.Millisecond)
	p := gatewaytest.NewServer(gatewaytest.WithName("p0"))
	defer p.Close()
	logs := &syncBuffer{}
	tr, err := gwtransport.NewTransport(nil, []string{"p0/m"}, gwtransport.WithStore(st),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p0", BaseURL: p.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	require.NoError(t, err)
	rp := &rvReplica{tr: tr}
	for i := 0; i < 5; i++ {
		_, err := rp.send(context.Background(), p.URL)
		require.NoError(t, err)
	}
	time.Sleep(300 * time.Millisecond)
	require.False(t, st.Connected())
	assert.Contains(t, logs.String(), "Redis unreachable", "the outage is logged once on the gateway's logger")
}
