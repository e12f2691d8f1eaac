package gwtransport_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gwtransport/gwtransport"
)

func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		name string
		o    gwtransport.Outcome
		want gwtransport.Action
	}{
		{"200", gwtransport.Outcome{Status: 200}, gwtransport.Succeed},
		{"network error", gwtransport.Outcome{Err: assert.AnError}, gwtransport.RetrySame},
		{"attempt timeout", gwtransport.Outcome{Err: assert.AnError, Timeout: true}, gwtransport.NextTarget},
		{"408", gwtransport.Outcome{Status: 408}, gwtransport.RetrySame},
		{"409", gwtransport.Outcome{Status: 409}, gwtransport.RetrySame},
		{"429", gwtransport.Outcome{Status: 429}, gwtransport.RetrySame},
		{"500", gwtransport.Outcome{Status: 500}, gwtransport.RetrySame},
		{"503", gwtransport.Outcome{Status: 503}, gwtransport.RetrySame},
		{"401", gwtransport.Outcome{Status: 401}, gwtransport.NextTarget},
		{"402", gwtransport.Outcome{Status: 402}, gwtransport.NextTarget},
		{"403", gwtransport.Outcome{Status: 403}, gwtransport.NextTarget},
		{"404", gwtransport.Outcome{Status: 404}, gwtransport.NextTarget},
		{"302", gwtransport.Outcome{Status: 302}, gwtransport.NextTarget},
		{"400 context length", gwtransport.Outcome{Status: 400, Code: "context_length_exceeded"}, gwtransport.NextTarget},
		{"400 context length by message", gwtransport.Outcome{Status: 400, Message: "This model's maximum context length is 4097 tokens"}, gwtransport.NextTarget},
		{"400 other", gwtransport.Outcome{Status: 400, Code: "invalid_value"}, gwtransport.FailFast},
		{"422", gwtransport.Outcome{Status: 422}, gwtransport.FailFast},
		{"400 content policy", gwtransport.Outcome{Status: 400, Code: "content_policy_violation"}, gwtransport.FailFast},
		{"400 azure content filter", gwtransport.Outcome{Status: 400, Code: "content_filter"}, gwtransport.FailFast},
		{"403 content policy", gwtransport.Outcome{Status: 403, Code: "content_policy_violation"}, gwtransport.FailFast},
		{"200 stream error event", gwtransport.Outcome{Status: 200, Code: "overloaded"}, gwtransport.NextTarget},
		{"200 stream content filter event", gwtransport.Outcome{Status: 200, Code: "content_filter"}, gwtransport.FailFast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, gwtransport.DefaultPolicy(tc.o))
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{"fractional seconds", map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond, true},
		{"milliseconds win", map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond, true},
		{"bad milliseconds fall back", map[string]string{"Retry-After-Ms": "soon", "Retry-After": "3"}, 3 * time.Second, true},
		{"HTTP date", map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second, true},
		{"HTTP date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0, true},
		{"negative", map[string]string{"Retry-After": "-1"}, 0, false},
		{"garbage", map[string]string{"Retry-After": "tomorrow"}, 0, false},
		{"NaN", map[string]string{"Retry-After": "NaN"}, 0, false},
		{"NaN milliseconds", map[string]string{"Retry-After-Ms": "NaN"}, 0, false},
		{"infinite", map[string]string{"Retry-After": "+Inf"}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := gwtransport.RetryAfter(h, now)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}
