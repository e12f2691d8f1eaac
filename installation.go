package gwtransport

import "sync"

// Installation is returned by [Init]. It knows the clients the gateway was
// installed into and can remove it again.
type Installation struct {
	mu    sync.Mutex
	g     *gateway
	slots []*slot // the installed layers: a Transport or an openai-go hook each
}

// Routes returns the intercepted model names, the default route first.
func (m *Installation) Routes() []string {
	out := make([]string, len(m.g.order))
	for i, rt := range m.g.order {
		out[i] = rt.name
	}
	return out
}

// Models returns a route's targets in their configured order (sorted by
// name for weights), or nil for an unknown route.
func (m *Installation) Models(route string) []string {
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
func (m *Installation) Stats() []TargetStats { return m.g.stats() }

// Uninstall makes every client Init installed the gateway into behave as
// before: requests pass through untouched (to the client's original
// transport, or, for a Transport made by NewTransport, with its own
// configuration). The gateway's layer stays in the client (its Transport,
// its services' options), transparent, so that Uninstall never writes a
// client while requests run; a later Init reactivates it. Only the latest
// Init of a client is undone: when another Init has replaced this one's
// configuration since, Uninstall leaves that one in place. Requests in
// flight finish normally. Calling it twice is harmless.
func (m *Installation) Uninstall() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		s.uninstall(m)
	}
	m.slots = nil
}
