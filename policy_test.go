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
		{"400 context window by message", gwtransport.Outcome{Status: 400, Message: "Your input exceeds the context window of this model."}, gwtransport.NextTarget},
		{"400 model not found", gwtransport.Outcome{Status: 400, Code: "model_not_found"}, gwtransport.NextTarget},
		{"422 model not found", gwtransport.Outcome{Status: 422, Type: "model_not_found"}, gwtransport.NextTarget},
		{"429 insufficient quota", gwtransport.Outcome{Status: 429, Code: "insufficient_quota"}, gwtransport.NextTarget},
		{"429 rate limit", gwtransport.Outcome{Status: 429, Code: "rate_limit_exceeded"}, gwtransport.RetrySame},
		{"200 stream content filter event", gwtransport.Outcome{Status: 200, Code: "content_filter"}, gwtransport.FailFast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, gwtransport.DefaultPolicy(tc.o))
		})
	}
}

// TestRetryAfter: every wire form of Retry-After (RFC 9110: delta-seconds
// or an HTTP date) and retry-after-ms (digits with an optional fraction);
// anything else is ignored, never read as some other number.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	date := now.Add(7 * time.Second)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{"zero", map[string]string{"Retry-After": "0"}, 0, true},
		{"leading zeros", map[string]string{"Retry-After": "007"}, 7 * time.Second, true},
		{"surrounding white space", map[string]string{"Retry-After": " \t3\t "}, 3 * time.Second, true},
		{"largest accepted", map[string]string{"Retry-After": "1000000000"}, 1e9 * time.Second, true},
		{"absurd seconds", map[string]string{"Retry-After": "1000000001"}, 0, false},
		{"overflowing seconds", map[string]string{"Retry-After": "99999999999999999999999"}, 0, false},
		{"fractional seconds are not delta-seconds", map[string]string{"Retry-After": "1.5"}, 0, false},
		{"hex float", map[string]string{"Retry-After": "0x1p4"}, 0, false},
		{"hex", map[string]string{"Retry-After": "0x10"}, 0, false},
		{"underscore", map[string]string{"Retry-After": "1_000"}, 0, false},
		{"plus sign", map[string]string{"Retry-After": "+5"}, 0, false},
		{"negative", map[string]string{"Retry-After": "-1"}, 0, false},
		{"exponent", map[string]string{"Retry-After": "1e3"}, 0, false},
		{"space inside", map[string]string{"Retry-After": "1 0"}, 0, false},
		{"unit", map[string]string{"Retry-After": "5s"}, 0, false},
		{"empty", map[string]string{"Retry-After": ""}, 0, false},
		{"garbage", map[string]string{"Retry-After": "tomorrow"}, 0, false},
		{"NaN", map[string]string{"Retry-After": "NaN"}, 0, false},
		{"infinite", map[string]string{"Retry-After": "+Inf"}, 0, false},
		{"Inf", map[string]string{"Retry-After": "Inf"}, 0, false},
		{"full-width digits", map[string]string{"Retry-After": "\uff15"}, 0, false},
		{"HTTP date (IMF-fixdate)", map[string]string{"Retry-After": date.Format(http.TimeFormat)}, 7 * time.Second, true},
		{"HTTP date (RFC 850)", map[string]string{"Retry-After": date.Format(time.RFC850)}, 7 * time.Second, true},
		{"HTTP date (asctime)", map[string]string{"Retry-After": date.Format(time.ANSIC)}, 7 * time.Second, true},
		{"HTTP date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0, true},
		{"not an HTTP date", map[string]string{"Retry-After": date.Format(time.RFC3339)}, 0, false},
		{"milliseconds win", map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond, true},
		{"fractional milliseconds", map[string]string{"Retry-After-Ms": "1.5"}, 1500 * time.Microsecond, true},
		{"zero milliseconds", map[string]string{"Retry-After-Ms": "0"}, 0, true},
		{"milliseconds with white space", map[string]string{"Retry-After-Ms": " 20 "}, 20 * time.Millisecond, true},
		{"bad milliseconds fall back", map[string]string{"Retry-After-Ms": "soon", "Retry-After": "3"}, 3 * time.Second, true},
		{"hex milliseconds", map[string]string{"Retry-After-Ms": "0x1p4", "Retry-After": "3"}, 3 * time.Second, true},
		{"underscore milliseconds", map[string]string{"Retry-After-Ms": "1_000"}, 0, false},
		{"exponent milliseconds", map[string]string{"Retry-After-Ms": "1e3"}, 0, false},
		{"signed milliseconds", map[string]string{"Retry-After-Ms": "+100"}, 0, false},
		{"negative milliseconds", map[string]string{"Retry-After-Ms": "-100"}, 0, false},
		{"trailing dot", map[string]string{"Retry-After-Ms": "100."}, 0, false},
		{"leading dot", map[string]string{"Retry-After-Ms": ".5"}, 0, false},
		{"two dots", map[string]string{"Retry-After-Ms": "1.2.3"}, 0, false},
		{"comma decimal", map[string]string{"Retry-After-Ms": "1,5"}, 0, false},
		{"NaN milliseconds", map[string]string{"Retry-After-Ms": "NaN"}, 0, false},
		{"infinite milliseconds", map[string]string{"Retry-After-Ms": "Infinity"}, 0, false},
		{"absurd milliseconds", map[string]string{"Retry-After-Ms": "1000000000000"}, 0, false},
		{"space inside milliseconds", map[string]string{"Retry-After-Ms": "1 0"}, 0, false},
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
