package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestAnswerCutAfterItsStatusIsAFailure: an answer that went out with a
// 200 and did not arrive whole is no success in gwproxy's metrics and
// access log: cut on the provider's side (a stream broken by the engine,
// an unverified non-streamed body cut), it counts as 502; a client that
// leaves a stream midway counts as 499. A complete answer stays a 200.
func TestAnswerCutAfterItsStatusIsAFailure(t *testing.T) {
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}` + "\n\n"
	for _, tc := range []struct {
		name   string
		fault  gatewaytest.Fault
		stream bool
		leave  bool // the client leaves after the first event
		want   int
	}{
		{name: "stream complete", stream: true, want: 200},
		{name: "stream broken", fault: gatewaytest.Fault{Script: chunk + "data: [DONE]\n"}, stream: true, want: 502},
		{name: "stream left by the client", fault: gatewaytest.Fault{StallAfter: 1}, stream: true, leave: true, want: 499},
		{name: "unverified body complete", want: 200},
		{name: "unverified body cut", fault: gatewaytest.Fault{BodyCutAfter: 40}, want: 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
			cfg = strings.Replace(cfg, "defaults:\n  max_retries: 0\n", "defaults:\n  max_retries: 0\n  max_verified_body: 16\n", 1)
			p := startProxy(t, cfg, proxyOpts{env: env})
			a.Enqueue(tc.fault)
			switch {
			case tc.leave:
				require.NoError(t, review2RawStream(t, p).Close())
			case tc.stream:
				status, got, _ := reviewStream(t, p, "/v1/chat/completions", fmt.Sprintf(streamBody, "gateway"))
				require.Equal(t, 200, status, "%s", got)
			default:
				req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(chatBody, "gateway")))
				req.Header.Set("Authorization", "Bearer "+keyAll)
				res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
				require.NoError(t, err)
				_, rerr := io.ReadAll(res.Body)
				res.Body.Close()
				require.Equal(t, 200, res.StatusCode)
				assert.Equal(t, tc.want != 200, rerr != nil, "read: %v", rerr)
			}
			code := fmt.Sprint(tc.want)
			require.Eventually(t, func() bool {
				v, _ := metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": code})
				return v == 1
			}, 5*time.Second, 5*time.Millisecond, "gwproxy_requests_total{code=%s}", code)
			for _, other := range []string{"200", "499", "502"} {
				if other != code {
					v, _ := metricValue(p.metrics(), "gwproxy_requests_total", map[string]string{"code": other})
					assert.Zero(t, v, "code %s", other)
				}
			}
			var statuses []int
			for _, line := range strings.Split(p.logs.String(), "\n") {
				var l struct {
					Msg    string `json:"msg"`
					Status int    `json:"status"`
				}
				if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "gwproxy request" {
					statuses = append(statuses, l.Status)
				}
			}
			assert.Equal(t, []int{tc.want}, statuses, "the access log's status")
		})
	}
}
