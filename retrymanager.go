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

// Route returns the intercepted model name.
func (m *RetryManager) Route() string { return m.g.route.name }

// Models returns the configured targets in their configured order (sorted by
// name for weights).
func (m *RetryManager) Models() []string {
	out := make([]string, len(m.g.route.targets))
	for i, t := range m.g.route.targets {
		out[i] = t.name
	}
	return out
}

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
