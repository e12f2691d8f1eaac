package gwtransport

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRequestConfigFields: the fields of openai-go's RequestConfig that the
// gateway's hook uses are where it expects them. If a new openai-go moves
// them, the gateway would still route, but without stopping the SDK's
// retries: this test says so first.
func TestRequestConfigFields(t *testing.T) {
	require.True(t, requestConfig.ok, "openai-go's RequestConfig has Body, Request and MaxRetries")
	h := newOpenAIHook()
	require.NotNil(t, h.opt, "the hook option implements option.RequestOption")
	require.Same(t, h, hookOf(h.opt))
	require.Nil(t, hookOf(h.mw))
}

// TestSlotModel: the installation state machine, directly. An older
// owner's uninstall is a no-op; uninstall restores the layer's own
// configuration; reconfigure keeps the owner.
func TestSlotModel(t *testing.T) {
	g1, g2, g3 := &gateway{}, &gateway{}, &gateway{}
	m1, m2 := &Installation{}, &Installation{}
	var s slot
	require.Nil(t, s.load().g, "a zero slot passes through")
	s.reconfigure(g1) // NewTransport's own configuration
	s.install(g2, m1)
	s.install(g3, m2)
	s.uninstall(m1)
	require.Same(t, g3, s.load().g)
	s.reconfigure(g2)
	require.Same(t, m2, s.load().owner)
	s.uninstall(m2)
	require.Same(t, g1, s.load().g)
	require.Nil(t, s.load().owner)
	s.uninstall(m2)
	require.Same(t, g1, s.load().g)
}
