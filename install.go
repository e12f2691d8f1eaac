package gwtransport

import "sync/atomic"

// binding is what an installed layer (a Transport, or the hook in an
// openai-go client) does at the moment: route with g, or, when g is nil,
// pass every request through untouched. A binding is never modified; the
// layer's slot swaps it atomically, so that Init, Uninstall and Reconfigure
// can run while requests are in flight, and each request keeps the binding
// it started with.
type binding struct {
	g *gateway
	// owner is the Installation whose Init installed g, nil for the
	// layer's own configuration (NewTransport, or nothing).
	owner *Installation
	// prev is the layer's own configuration, restored when owner
	// uninstalls: pass-through for a layer Init created, the configuration
	// of a NewTransport.
	prev *binding
}

// passThrough is the binding of a layer no Init owns any more.
var passThrough = &binding{}

// slot holds a layer's current binding.
type slot struct{ p atomic.Pointer[binding] }

// load returns the current binding, pass-through when there is none (a
// zero Transport).
func (s *slot) load() *binding {
	if b := s.p.Load(); b != nil {
		return b
	}
	return passThrough
}

// own returns the binding with owner's removed: the layer's own
// configuration.
func (b *binding) own() *binding {
	if b.owner != nil {
		return b.prev
	}
	return b
}

// install makes g, owned by m, the current configuration. The latest
// install wins; the layer's own configuration is remembered for Uninstall.
func (s *slot) install(g *gateway, m *Installation) {
	for {
		old := s.p.Load()
		prev := passThrough
		if old != nil {
			prev = old.own()
		}
		if s.p.CompareAndSwap(old, &binding{g: g, owner: m, prev: prev}) {
			return
		}
	}
}

// uninstall restores the layer's own configuration, but only while m owns
// the layer: an older Installation never removes a newer installation.
func (s *slot) uninstall(m *Installation) {
	for {
		old := s.p.Load()
		if old == nil || old.owner != m {
			return
		}
		if s.p.CompareAndSwap(old, old.prev) {
			return
		}
	}
}

// reconfigure replaces the gateway of the current binding, keeping its
// owner.
func (s *slot) reconfigure(g *gateway) {
	for {
		old := s.p.Load()
		nb := &binding{g: g}
		if old != nil && old.owner != nil {
			nb.owner, nb.prev = old.owner, old.prev
		}
		if s.p.CompareAndSwap(old, nb) {
			if old != nil && old.g != nil && old.g != g && (old.prev == nil || old.prev.g != old.g) {
				old.g.unbindStore() // replaced: its Store may let its session go
			}
			return
		}
	}
}
