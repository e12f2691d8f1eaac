package gwtransport_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// Control for TestRvPerfContinuationAfterBufferReuse: below 8 KiB the
// gateway copies the body, and the same reuse does not reach the prefill.
func TestRvPerfContinuationAfterBufferReuseSmallControl(t *testing.T) {
	long := strings.Repeat(`Read this long text. `, 100)
	body := strings.Replace(contBody, `"content":"Hi"`, `"content":"`+long+`"`, 1)
	require.Less(t, len(body), 8<<10)
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
	rig.a.Enqueue(breakCases()[0].fault)
	buf := []byte(body)
	req, _ := http.NewRequest(http.MethodPost, rig.a.URL+"/chat/completions", bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer key-p")
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: rig.tr}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	copy(buf, strings.Replace(body, "Read this long text. ", "XXXXXXXXXXXXXXXXXXXX ", -1))
	got := readSSE(res.Body)
	require.NoError(t, got.err)
	j := rig.b.Journal()
	require.Len(t, j, 1)
	assert.Contains(t, string(j[0].Body), `"content":"`+long+`"`)
}

// Above WithMaxBodyBytes, with GetBody: passed through untouched, unread.
// ContentLength lying longer than the bytes: an error, nothing cut sent.
func TestRvPerfMaxBytesAndLyingLength(t *testing.T) {
	a := server(t, "a", "key-a")
	tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a"},
		noEnv(), provider("aprov", a, "key-a"), gwtransport.WithMaxBodyBytes(32<<10))
	require.NoError(t, err)
	big := rvBig("T", "gateway", 64<<10)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer key-a")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Len(t, a.Journal(), 1)
	assert.Equal(t, big, string(a.Journal()[0].Body))

	a.Reset()
	mid := rvBig("T", "gateway", 16<<10)
	for _, delta := range []int64{+5, -1} {
		req, _ = http.NewRequest(http.MethodPost, a.URL+"/chat/completions", bytes.NewReader([]byte(mid)))
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength += delta
		res, err = (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		t.Logf("delta %+d: err=%v", delta, err)
		for _, j := range a.Journal() {
			assert.Equal(t, len(mid), len(j.Body), "delta %+d: a cut or padded body reached the provider", delta)
		}
		a.Reset()
	}
}
