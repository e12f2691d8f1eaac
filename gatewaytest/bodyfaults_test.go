package gatewaytest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// healthy returns the whole answer the server gives to body at path.
func healthy(t *testing.T, s *gatewaytest.Server, path, body string) string {
	t.Helper()
	res, got, err := post(t, s.URL+path, body, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return got
}

// TestBodyCutAfter: every non-streamed operation announces its full
// Content-Length, sends exactly the bytes asked for (at most all but the
// last), then drops the connection: the client reads that prefix of the
// healthy answer and then io.ErrUnexpectedEOF, never a clean end.
func TestBodyCutAfter(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithName("p"))
	defer s.Close()
	for _, op := range []struct{ path, body string }{
		{"/chat/completions", `{"model":"m","messages":[]}`},
		{"/completions", `{"model":"m","prompt":"x"}`},
		{"/embeddings", `{"model":"m","input":"x"}`},
		{"/responses", `{"model":"m","input":"x"}`},
	} {
		full := healthy(t, s, op.path, op.body)
		for _, n := range []int{1, 7, len(full) / 2, len(full) - 1, len(full), len(full) + 50} {
			t.Run(op.path+"/"+strconv.Itoa(n), func(t *testing.T) {
				want := min(n, len(full)-1)
				s.Enqueue(gatewaytest.Fault{BodyCutAfter: n})
				req, _ := http.NewRequest(http.MethodPost, s.URL+op.path, strings.NewReader(op.body))
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer res.Body.Close()
				assert.Equal(t, http.StatusOK, res.StatusCode)
				assert.Equal(t, int64(len(full)), res.ContentLength)
				got, err := io.ReadAll(res.Body)
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
				assert.Equal(t, full[:want], string(got))
			})
		}
	}
	assert.Equal(t, 4*7, s.Count())
}

// TestBodyStallAfter: the server sends the asked prefix and then neither
// sends nor closes: the client's read blocks until the client gives up.
func TestBodyStallAfter(t *testing.T) {
	s := gatewaytest.NewServer()
	defer s.Close()
	full := healthy(t, s, "/chat/completions", `{"model":"m"}`)
	for _, n := range []int{1, len(full) / 2, len(full) + 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			want := min(n, len(full)-1)
			s.Enqueue(gatewaytest.Fault{BodyStallAfter: n})
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/chat/completions", strings.NewReader(`{"model":"m"}`))
			start := time.Now()
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			assert.Equal(t, int64(len(full)), res.ContentLength)
			got, err := io.ReadAll(res.Body)
			assert.True(t, errors.Is(err, context.DeadlineExceeded), "the read ends only when the client gives up: %v", err)
			assert.GreaterOrEqual(t, time.Since(start), 140*time.Millisecond)
			assert.Equal(t, full[:want], string(got))
		})
	}
}

// TestBodyStallEndsWhenServerCloses: Close ends a stalled body (the read
// fails, it does not hang).
func TestBodyStallEndsWhenServerCloses(t *testing.T) {
	s := gatewaytest.NewServer()
	s.Enqueue(gatewaytest.Fault{BodyStallAfter: 3})
	res, err := http.Post(s.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	require.NoError(t, err)
	defer res.Body.Close()
	buf := make([]byte, 3)
	_, err = io.ReadFull(res.Body, buf)
	require.NoError(t, err)
	s.Close()
	_, err = io.ReadAll(res.Body)
	assert.Error(t, err)
}

// TestBodyFaultsLeaveStreamsAlone: a streamed request is answered as a
// whole stream, whatever the body faults say.
func TestBodyFaultsLeaveStreamsAlone(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithStreamChunks(2))
	defer s.Close()
	s.Enqueue(gatewaytest.Fault{BodyCutAfter: 5}, gatewaytest.Fault{BodyStallAfter: 5})
	for i := 0; i < 2; i++ {
		res, body, err := post(t, s.URL+"/chat/completions", `{"model":"m","stream":true}`, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.True(t, strings.HasSuffix(body, "data: [DONE]\n\n"), body)
	}
}
