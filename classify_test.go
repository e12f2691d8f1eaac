package gwtransport_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRefusalAfterOwnFailure attacks the rule "a fallback's refusal never
// hides the earlier target's failure" from both sides: it applies only when
// a different target failed before. A target's own 400 on its retry (after
// its own 503) is final: the caller gets that 400 and no other target is
// tried, whatever came before at that same target.
func TestRefusalAfterOwnFailure(t *testing.T) {
	tests := []struct {
		name       string
		retries    int
		faults     [3][]gatewaytest.Fault
		wantStatus int
		wantMsg    string // the error message of the caller's body; "" for a success
		wantTarget string
		wantCounts []int
		wantReason string
	}{
		{
			name: "own 400 on the retry after own 503 fails fast", retries: 2,
			faults:     [3][]gatewaytest.Fault{{{Status: 503, Message: "overloaded"}, {Status: 400, Message: "bad parameter"}}},
			wantStatus: 400, wantMsg: "bad parameter", wantTarget: "p0/m", wantCounts: []int{2, 0, 0},
			wantReason: "p0/m#1 503 server_error; p0/m#2 400 invalid_request_error",
		},
		{
			name: "own 400 after two own 503s fails fast", retries: 2,
			faults:     [3][]gatewaytest.Fault{{{Status: 503}, {Status: 502}, {Status: 400, Message: "bad parameter"}}},
			wantStatus: 400, wantMsg: "bad parameter", wantTarget: "p0/m", wantCounts: []int{3, 0, 0},
			wantReason: "p0/m#1 503 server_error; p0/m#2 502 server_error; p0/m#3 400 invalid_request_error",
		},
		{
			name: "own 400 on the first attempt fails fast", retries: 2,
			faults:     [3][]gatewaytest.Fault{{{Status: 400, Message: "bad parameter"}}},
			wantStatus: 400, wantMsg: "bad parameter", wantTarget: "p0/m", wantCounts: []int{1, 0, 0},
			wantReason: "p0/m#1 400 invalid_request_error",
		},
		{
			name: "a fallback's 400 does not hide the primary's 503", retries: 0,
			faults: [3][]gatewaytest.Fault{
				{{Status: 503, Message: "primary overloaded"}},
				{{Status: 400, Message: "prefill not supported"}},
				{{Status: 400, Message: "prefill not supported either"}},
			},
			wantStatus: 503, wantMsg: "primary overloaded", wantTarget: "p0/m", wantCounts: []int{1, 1, 1},
			wantReason: "p0/m#1 503 server_error; p1/m#1 400 invalid_request_error; p2/m#1 400 invalid_request_error",
		},
		{
			name: "a fallback's 400 on its own retry is still a fallback's refusal", retries: 1,
			faults: [3][]gatewaytest.Fault{
				{{Status: 503, Message: "primary overloaded"}, {Status: 503, Message: "primary overloaded"}},
				{{Status: 503}, {Status: 400, Message: "prefill not supported"}},
			},
			wantStatus: 200, wantTarget: "p2/m", wantCounts: []int{2, 2, 1},
			wantReason: "p0/m#1 503 server_error; p0/m#2 503 server_error; p1/m#1 503 server_error; p1/m#2 400 invalid_request_error",
		},
		{
			name: "a fallback's 404 does not hide the primary's 503", retries: 0,
			faults: [3][]gatewaytest.Fault{
				{{Status: 503, Message: "primary overloaded"}},
				{{Status: 404, Code: "model_not_found", Message: "no such model"}},
				{{Status: 401, Message: "bad key"}},
			},
			wantStatus: 503, wantMsg: "primary overloaded", wantTarget: "p0/m", wantCounts: []int{1, 1, 1},
			wantReason: "p0/m#1 503 server_error; p1/m#1 404 model_not_found; p2/m#1 401 invalid_request_error",
		},
		{
			name: "a fallback's context length refusal does not hide the primary's 429", retries: 0,
			faults: [3][]gatewaytest.Fault{
				{{Status: 429, Message: "slow down"}},
				{{Status: 400, Code: "context_length_exceeded", Message: "too long for this model"}},
				{{Status: 400, Code: "context_length_exceeded", Message: "too long for this one too"}},
			},
			wantStatus: 429, wantMsg: "slow down", wantTarget: "p0/m", wantCounts: []int{1, 1, 1},
			wantReason: "p0/m#1 429 invalid_request_error; p1/m#1 400 context_length_exceeded; p2/m#1 400 context_length_exceeded",
		},
		{
			name: "the first target's own refusals: the first is kept", retries: 0,
			faults: [3][]gatewaytest.Fault{
				{{Status: 401, Message: "bad primary key"}},
				{{Status: 404, Message: "no such model"}},
				{{Status: 403, Message: "forbidden"}},
			},
			wantStatus: 401, wantMsg: "bad primary key", wantTarget: "p0/m", wantCounts: []int{1, 1, 1},
			wantReason: "p0/m#1 401 invalid_request_error; p1/m#1 404 invalid_request_error; p2/m#1 403 invalid_request_error",
		},
		{
			name: "own 404 after own 503 is that target's final word, a later 503 wins", retries: 1,
			faults: [3][]gatewaytest.Fault{
				{{Status: 503, Message: "primary overloaded"}, {Status: 404, Message: "gone"}},
				{{Status: 503, Message: "fallback overloaded"}, {Status: 503, Message: "fallback overloaded"}},
				{{Status: 503, Message: "third overloaded"}, {Status: 503, Message: "third overloaded"}},
			},
			wantStatus: 503, wantMsg: "third overloaded", wantTarget: "p2/m", wantCounts: []int{2, 2, 2},
			wantReason: "p0/m#1 503 server_error; p0/m#2 404 invalid_request_error; p1/m#1 503 server_error; p1/m#2 503 server_error; p2/m#1 503 server_error; p2/m#2 503 server_error",
		},
		{
			name: "a fallback's 400 then a later real failure: the caller gets the last real one", retries: 0,
			faults: [3][]gatewaytest.Fault{
				{{Status: 503, Message: "primary overloaded"}},
				{{Status: 400, Message: "prefill not supported"}},
				{{Status: 500, Message: "third broke"}},
			},
			wantStatus: 500, wantMsg: "third broke", wantTarget: "p2/m", wantCounts: []int{1, 1, 1},
			wantReason: "p0/m#1 503 server_error; p1/m#1 400 invalid_request_error; p2/m#1 500 server_error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, 3, list, gwtransport.WithMaxRetries(tc.retries), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
			for i, fs := range tc.faults {
				f.servers[i].Enqueue(fs...)
			}
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, f.servers[0].URL+"/chat/completions",
				strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			res, err := f.hc.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			assert.Equal(t, tc.wantStatus, res.StatusCode)
			assert.Equal(t, tc.wantTarget, res.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, tc.wantReason, res.Header.Get(gwtransport.HeaderFallbackReason))
			assert.Equal(t, tc.wantCounts, f.counts())
			for i, s := range f.servers {
				for _, r := range s.Journal() {
					assert.Equal(t, "m", r.Model, "server p%d", i)
				}
			}
			if tc.wantMsg != "" {
				var e struct {
					Error struct{ Message string } `json:"error"`
				}
				require.NoError(t, json.Unmarshal(body, &e), "%s", body)
				assert.Equal(t, tc.wantMsg, e.Error.Message)
				assert.Equal(t, "false", res.Header.Get("X-Should-Retry"))
			} else {
				assert.Contains(t, string(body), "Hello from p2")
			}
		})
	}
}

// TestClassificationOverTheWire: error bodies as providers send them,
// through real servers: which targets are tried, how often, and whether
// the gateway waits.
func TestClassificationOverTheWire(t *testing.T) {
	tests := []struct {
		name       string
		fault      gatewaytest.Fault
		wantCounts []int
		wantSleeps int
	}{
		{"429 insufficient_quota: next target at once", gatewaytest.Fault{Status: 429, Code: "insufficient_quota", Type: "insufficient_quota", Message: "You exceeded your current quota"}, []int{1, 1}, 0},
		{"429 rate limit: retried after a wait", gatewaytest.Fault{Status: 429, Code: "rate_limit_exceeded"}, []int{3, 1}, 2},
		{"Gemini-style array body, context window: next target", gatewaytest.Fault{Status: 400, Body: `[{"error":{"code":400,"message":"The input token count exceeds the context window","status":"INVALID_ARGUMENT"}}]`}, []int{1, 1}, 0},
		{"400 model_not_found: next target", gatewaytest.Fault{Status: 400, Code: "model_not_found"}, []int{1, 1}, 0},
		{"400 other: fail fast", gatewaytest.Fault{Status: 400, Code: "invalid_value"}, []int{1, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, 2, list, gwtransport.WithMaxRetries(2), gwtransport.WithBackoff(gwtransport.Backoff{Initial: 100 * time.Millisecond}))
			f.servers[0].SetFault(&tc.fault)
			f.send(t, context.Background(), "gateway", nil)
			assert.Equal(t, tc.wantCounts, f.counts())
			assert.Len(t, f.clock.Sleeps(), tc.wantSleeps)
		})
	}
}
