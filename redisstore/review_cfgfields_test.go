package redisstore_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/redisstore"
)

// A state.redis section with an address Redis can never be reached at
// ("no port") or a database Redis does not have is accepted by
// LoadConfig and NewTransport: no error names the field; the gateway
// starts and degrades to local state (a configured Store cannot even be
// Pinged: the program never sees it).
func TestReviewConfigBadRedisFieldsAccepted(t *testing.T) {
	defer func() { require.NoError(t, redisstore.CloseConfigured()) }()
	for field, y := range map[string]string{
		"state.redis.addr": "addr: redis.internal",
		"state.redis.db":   "db: 4096",
	} {
		cfg, err := gwtransport.LoadConfig([]byte(fmt.Sprintf(`
models:
  - target: p0/m
providers:
  - name: p0
    base_url: http://127.0.0.1:1
    auth: none
state:
  redis:
    %s
`, y)))
		if err == nil {
			_, err = gwtransport.NewTransport(nil, gwtransport.FromConfig, gwtransport.WithConfig(cfg))
		}
		if assert.Error(t, err, "%s: %s", field, y) {
			assert.Contains(t, err.Error(), field)
		}
	}
}

// The password, given with WithPassword or read from password_env, is in
// the Store's fields: printing the Store (a %+v in a log line, a debug
// dump) prints it.
func TestReviewStorePrintsPassword(t *testing.T) {
	st, err := redisstore.New(redisstore.WithAddr("127.0.0.1:1"), redisstore.WithPassword("pw-SECRET-9876"))
	require.NoError(t, err)
	require.NoError(t, st.Close()) // its goroutines stopped: printing it races with nothing
	assert.NotContains(t, fmt.Sprintf("%+v", st), "pw-SECRET-9876")
}
