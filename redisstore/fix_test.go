package redisstore_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/redisstore"
)

// WithAddr refuses an address Redis can never be reached at, naming it.
func TestWithAddrRefusesBadAddresses(t *testing.T) {
	for addr, want := range map[string]string{
		"redis.internal": `redisstore: address must be host:port, got "redis.internal"`,
		":6379":          `redisstore: address must be host:port, got ":6379"`,
		"redis:0":        `redisstore: address "redis:0": port must be 1 to 65535`,
		"redis:65536":    `redisstore: address "redis:65536": port must be 1 to 65535`,
		"redis:http":     `redisstore: address "redis:http": port must be 1 to 65535`,
	} {
		_, err := redisstore.New(redisstore.WithAddr(addr))
		require.EqualError(t, err, want, addr)
	}
	st, err := redisstore.New(redisstore.WithAddr("[::1]:6379"))
	require.NoError(t, err)
	require.NoError(t, st.Close())
}

// However the Store is printed, the password is not.
func TestStorePrintsNoPasswordWithAnyVerb(t *testing.T) {
	st, err := redisstore.New(redisstore.WithAddr("127.0.0.1:1"), redisstore.WithPassword("pw-SECRET-9876"))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out := fmt.Sprintf(verb, st)
		assert.NotContains(t, out, "pw-SECRET-9876", verb)
		assert.NotContains(t, out, fmt.Sprintf("%x", "pw-SECRET-9876"), verb)
		assert.Contains(t, out, "127.0.0.1:1", verb)
	}
	assert.NotContains(t, st.String(), "pw-SECRET")
	assert.NotContains(t, st.GoString(), "pw-SECRET")
}
