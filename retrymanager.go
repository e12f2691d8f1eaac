package gwtransport

import (
	"net/http"
	"sync"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// RetryManager is returned by [Init]. It knows the clients the gateway was
// installed into and can remove it again.
type RetryManager struct {
	mu            sync.Mutex
	g             *gateway
	httpClients   []httpInstall
	openaiClients []openaiInstall
}

type httpInstall struct {
	client *http.Client
	t      *Transport
}

type openaiInstall struct {
	client *openai.Client
	hook   *openaiHook
}

// Routes returns the intercepted model names, the default route first.
func (m *RetryManager) Routes() []string {
	out := make([]string, len(m.g.order))
	for i, rt := range m.g.order {
		out[i] = rt.name
	}
	return out
}

// Models returns a route's targets in their configured order (sorted by
// name for weights), or nil for an unknown route.
func (m *RetryManager) Models(route string) []string {
	rt, ok := m.g.routes[route]
	if !ok {
		return nil
	}
	out := make([]string, len(rt.targets))
	for i, t := range rt.targets {
		out[i] = t.name
	}
	return out
}

// Stats reports every target of every route, live: provider, model, alias,
// weight, circuit breaker state, attempts, failures, latency and the state
// of the provider's keys. It never contains a credential. Clients that Init
// installed share this state.
func (m *RetryManager) Stats() []TargetStats { return m.g.stats() }

// Uninstall removes the gateway from every client Init installed it into,
// restoring each as it was: an *http.Client gets its original Transport back
// (unless something else replaced it since), and an openai-go client loses
// the gateway's option from every service. Requests in flight finish
// normally. Calling it twice is harmless.
func (m *RetryManager) Uninstall() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range m.httpClients {
		if in.client.Transport == http.RoundTripper(in.t) && in.t.installed {
			in.client.Transport = in.t.orig
		}
	}
	for _, in := range m.openaiClients {
		hook := in.hook
		eachOptions(in.client, func(opts []option.RequestOption) []option.RequestOption {
			out := make([]option.RequestOption, 0, len(opts))
			for _, o := range opts {
				if h, ok := o.(hookOption); ok && h.hook == hook {
					continue
				}
				out = append(out, o)
			}
			return out
		})
	}
	m.httpClients, m.openaiClients = nil, nil
}
