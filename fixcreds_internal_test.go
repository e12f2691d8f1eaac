package gwtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reachable returns every error reachable from err by Unwrap.
func reachable(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch w := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, reachable(w.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range w.Unwrap() {
			out = append(out, reachable(e)...)
		}
	}
	return out
}

// queryErr is an error type of its own whose message shows a query.
type queryErr struct{ u string }

func (e *queryErr) Error() string { return "fetching " + e.u }

// Every shape of chain: single and multiple unwrapping, *url.Error at the
// top, in the middle and twice, a leaf that shows a query. No node
// reachable from the redacted error shows the secret, errors.As still
// finds a *url.Error (the redacted copy) and errors.Is still finds the
// sentinels that showed no query.
func TestRedactErrorWholeChain(t *testing.T) {
	const secret = "code=S3CRET"
	u := "https://fn.example/api/chat/completions?" + secret
	reset := &url.Error{Op: "Post", URL: u, Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	cases := []struct {
		name     string
		err      error
		wantURL  bool // errors.As finds a *url.Error
		isReset  bool // errors.Is(ECONNRESET) holds
		isCancel bool // errors.Is(context.Canceled) holds
	}{
		{"url.Error", reset, true, true, false},
		{"wrapped url.Error", fmt.Errorf("logging: %w", reset), true, true, false},
		{"twice wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", reset)), true, true, false},
		{"joined", errors.Join(io.EOF, fmt.Errorf("mw: %w", reset)), true, true, false},
		{"multi %w", fmt.Errorf("x: %w; y: %w", context.Canceled, reset), true, true, true},
		{"url.Error in url.Error", &url.Error{Op: "Get", URL: u, Err: fmt.Errorf("inner: %w", &url.Error{Op: "Post", URL: u, Err: context.Canceled})}, true, false, true},
		{"own leaf type", fmt.Errorf("w: %w", &queryErr{u: u}), false, false, false},
		{"plain leaf", errors.New("GET " + u + " failed"), false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, tc.err.Error(), secret, "the case must leak before redaction")
			got := redactError(tc.err)
			require.Error(t, got)
			for _, e := range reachable(got) {
				assert.NotContains(t, e.Error(), secret, "%T", e)
				if ue, ok := e.(*url.Error); ok {
					assert.NotContains(t, ue.URL, secret)
				}
				var q *queryErr
				assert.False(t, errors.As(e, &q), "the original leaf is unreachable")
			}
			var ue *url.Error
			assert.Equal(t, tc.wantURL, errors.As(got, &ue))
			if tc.wantURL {
				assert.Equal(t, "https://fn.example/api/chat/completions?REDACTED", ue.URL)
			}
			assert.Equal(t, tc.isReset, errors.Is(got, syscall.ECONNRESET))
			assert.Equal(t, tc.isCancel, errors.Is(got, context.Canceled))
		})
	}
}

// An error without a query anywhere in its chain is returned as is.
func TestRedactErrorKeepsCleanChains(t *testing.T) {
	for _, err := range []error{
		io.EOF,
		fmt.Errorf("w: %w", context.DeadlineExceeded),
		&url.Error{Op: "Post", URL: "https://h/v1/chat/completions", Err: syscall.ECONNRESET},
		errors.Join(io.EOF, fmt.Errorf("x: %w", syscall.ECONNRESET)),
		fmt.Errorf("what? %w", io.EOF), // a "?" that is no query
	} {
		assert.Same(t, err, redactError(err), "%v", err)
	}
	assert.Nil(t, redactError(nil))
}

// The deployment is everything between /openai/deployments/ and a known
// operation: go-openai puts a model as is, slashes included.
func TestDeploymentPathOperation(t *testing.T) {
	tab, err := newOriginTable(map[string]*provider{}, &provider{name: "openai", style: StyleOpenAI})
	require.NoError(t, err)
	for _, tc := range []struct{ path, base, op, err string }{
		{"/openai/deployments/gpt-4o/chat/completions", "", "chat/completions", ""},
		{"/openai/deployments/b/gpt-4o/chat/completions", "", "chat/completions", ""},
		{"/x/openai/deployments/a/b/c/embeddings/", "/x", "embeddings", ""},
		{"/openai/deployments/d/completions", "", "completions", ""},
		{"/openai/deployments/d/images/generations", "", "images/generations", ""},
		{"/openai/deployments/d/files", "", "", "gwtransport: cannot route /openai/deployments/d/files: no operation that takes a model after the deployment"},
		{"/openai/deployments/chat/completions/x", "", "", "gwtransport: cannot route /openai/deployments/chat/completions/x: no operation that takes a model after the deployment"},
		{"/openai/deployments/embeddings", "", "", "gwtransport: cannot route /openai/deployments/embeddings: no operation that takes a model after the deployment"},
	} {
		o, err := tab.parse(&url.URL{Scheme: "https", Host: "h", Path: tc.path}, http.Header{})
		if tc.err != "" {
			require.EqualError(t, err, tc.err, tc.path)
			continue
		}
		require.NoError(t, err, tc.path)
		assert.True(t, o.deployment, tc.path)
		assert.Equal(t, tc.base, o.basePath, tc.path)
		assert.Equal(t, tc.op, o.op, tc.path)
	}
}

// Host spellings compare equal: case, default port, trailing dot of a
// fully qualified name, with and without a port, IPv6 literals intact.
func TestNormalizeSchemeHost(t *testing.T) {
	for _, tc := range []struct{ scheme, host, want string }{
		{"HTTP", "LOCALHOST.:8080", "http://localhost:8080"},
		{"https", "api.openai.com.", "https://api.openai.com"},
		{"https", "api.openai.com.:443", "https://api.openai.com"},
		{"http", "h..:80", "http://h"},
		{"http", "[::1]:80", "http://[::1]"},
		{"http", "[::1]", "http://[::1]"},
		{"http", "h:8080", "http://h:8080"},
	} {
		s, h := normalizeSchemeHost(tc.scheme, tc.host)
		assert.Equal(t, tc.want, s+"://"+h, tc.host)
	}
}

// The gateway's header helpers see every spelling of a name and allocate
// nothing when the header is absent.
func TestHeaderKeyAnySpelling(t *testing.T) {
	h := http.Header{"Content-Type": {"a"}, "x-gwtransport-prefer": {" p/m "}, "X-GWTRANSPORT-PREFER": nil}
	assert.True(t, hasHeaderKey(h, HeaderPrefer))
	assert.Equal(t, " p/m ", headerKeyValue(h, HeaderPrefer))
	assert.False(t, hasHeaderKey(h, "Content-Length"))
	req := (&http.Request{Header: h}).WithContext(context.Background())
	assert.Equal(t, "p/m", preference(req))
	delHeaderKey(h, HeaderPrefer)
	assert.Equal(t, http.Header{"Content-Type": {"a"}}, h)
	clean := http.Header{"Content-Type": {"a"}, "Authorization": {"b"}, "User-Agent": {"c"}}
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		_ = hasHeaderKey(clean, HeaderPrefer)
		_ = headerKeyValue(clean, HeaderPrefer)
	}))
}
