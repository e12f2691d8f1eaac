package redisstore_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/redisstore"
)

// TestReviewReadmeOptionsTable: every option the README's redisstore
// table names exists, with the default it states.
func TestReviewReadmeOptionsTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(b)
	rows := map[string]string{
		"`WithAddr`, `WithDB`, `WithUsername` | `127.0.0.1:6379`, 0, none": redisstore.DefaultAddr,
		"`WithPrefix(p)` | `gwtransport`":                                  redisstore.DefaultPrefix,
		"`WithTimeout(d)` | 10 ms":                                         redisstore.DefaultTimeout.String(),
		"`WithRetry(d)` | 1 s":                                             redisstore.DefaultRetry.String(),
		"`WithLatencyEvery(d)` | 1 s":                                      redisstore.DefaultLatencyEvery.String(),
		"`WithQueue(n)` | 4096":                                            "4096",
	}
	for row := range rows {
		assert.True(t, strings.Contains(readme, "| "+row+" |"), "README row %q", row)
	}
	assert.Equal(t, "127.0.0.1:6379", redisstore.DefaultAddr)
	assert.Equal(t, "gwtransport", redisstore.DefaultPrefix)
	assert.Equal(t, 10*time.Millisecond, redisstore.DefaultTimeout)
	assert.Equal(t, time.Second, redisstore.DefaultRetry)
	assert.Equal(t, time.Second, redisstore.DefaultLatencyEvery)
	assert.Equal(t, 4096, redisstore.DefaultQueue)
	_ = []redisstore.Option{redisstore.WithAddr("x:1"), redisstore.WithDB(0), redisstore.WithUsername("u"), redisstore.WithPassword("p"),
		redisstore.WithPrefix("p"), redisstore.WithTimeout(time.Millisecond), redisstore.WithRetry(time.Second),
		redisstore.WithLatencyEvery(time.Second), redisstore.WithQueue(1), redisstore.WithPasswordEnv("PATH")}
	// "an unset variable is an error from New"
	_, err = redisstore.New(redisstore.WithPasswordEnv("RNEW_SURELY_UNSET_VARIABLE"))
	assert.Error(t, err)
}
