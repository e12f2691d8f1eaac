package gwtransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestFirstEventPerTarget: through the real openai-go client, against a
// primary that sends its headers at once (or late) and its first token
// after 300 ms. The per-target limit fails it over when shorter, lets it
// answer when longer or 0 (no limit for that target, whatever the route's
// limit), and it bounds the wait for the headers too; a request that does
// not stream is never held to it. Real millisecond timers: the limit is
// the thing under test. (The 15 s default is asserted by
// TestFirstEventResolved.)
func TestFirstEventPerTarget(t *testing.T) {
	const primary = "openai/gpt-4o"
	slowToken := &gatewaytest.Fault{FirstEventDelay: 300 * time.Millisecond}
	slowHeaders := &gatewaytest.Fault{Delay: 300 * time.Millisecond}
	tests := []struct {
		name   string
		opts   []gwtransport.Option
		fault  *gatewaytest.Fault
		stream bool
		want   string // who answers
	}{
		{"shorter per-target limit fails over", []gwtransport.Option{gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 50 * time.Millisecond})}, slowToken, true, "fallback"},
		{"route limit fails over", []gwtransport.Option{gwtransport.WithStreamFirstEvent(50 * time.Millisecond)}, slowToken, true, "fallback"},
		{"longer per-target limit waits", []gwtransport.Option{gwtransport.WithStreamFirstEvent(50 * time.Millisecond), gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 5 * time.Second})}, slowToken, true, "primary"},
		{"per-target 0 lifts the route's limit", []gwtransport.Option{gwtransport.WithStreamFirstEvent(50 * time.Millisecond), gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 0})}, slowToken, true, "primary"},
		{"the limit covers slow headers", []gwtransport.Option{gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 50 * time.Millisecond})}, slowHeaders, true, "fallback"},
		{"not a stream: no first-event limit", []gwtransport.Option{gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 50 * time.Millisecond})}, slowHeaders, false, "primary"},
		{"the attempt timeout still applies under a longer limit", []gwtransport.Option{gwtransport.WithTimeout(50 * time.Millisecond), gwtransport.WithModelFirstEvent(map[string]time.Duration{primary: 5 * time.Second})}, slowToken, true, "fallback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.opts...)
			p.primary.SetFault(tc.fault)
			text, _, raw, err := p.ask(t, context.Background(), tc.stream)
			require.NoError(t, err)
			assert.Equal(t, answer(tc.stream, tc.want), text)
			assert.Equal(t, 1, p.primary.Count())
			if tc.want == "fallback" {
				assert.Equal(t, 1, p.fallback.Count())
				assert.Contains(t, raw.Header.Get(gwtransport.HeaderFallbackReason), "openai/gpt-4o#1 attempt timed out after 50ms")
			} else {
				assert.Zero(t, p.fallback.Count())
			}
		})
	}
}
