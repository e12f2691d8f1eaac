package gwtransport

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// gateway is a compiled, immutable configuration. A Transport swaps it
// atomically when Init runs again, so requests in flight finish on the
// configuration they started with.
type gateway struct {
	s             *settings
	route         *route
	byName        map[string]int // target name -> index in route.targets
	providers     map[string]*provider
	clientProv    *provider
	secretHeaders []string
}

// route is an intercepted model name and the targets it spreads over.
type route struct {
	name     string
	targets  []*target
	weighted bool
}

// target is one "<provider>/<model>" with its settings resolved.
type target struct {
	name        string
	model       string
	prov        *provider
	weight      float64
	maxRetries  int
	timeout     time.Duration
	backoff     Backoff
	quotedModel []byte // the model as a JSON string, ready to splice
	messages    []byte // model messages as comma-separated JSON elements
}

// compile validates models and options into a gateway.
func compile(models any, opts []Option) (*gateway, error) {
	s := defaultSettings()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	specs, weighted, err := parseModels(models)
	if err != nil {
		return nil, err
	}
	g := &gateway{s: s, providers: map[string]*provider{}, byName: map[string]int{}}

	defs := BuiltinProviders()
	for _, p := range s.providers {
		if b, ok := defs[p.Name]; ok {
			defs[p.Name] = mergeProvider(b, p)
		} else {
			defs[p.Name] = p
		}
	}
	for name, p := range defs {
		rp, err := resolveProvider(p, s.env)
		if err != nil {
			return nil, err
		}
		g.providers[name] = rp
	}
	if cp, ok := g.providers[s.clientProvider]; ok {
		g.clientProv = cp
	} else {
		return nil, fmt.Errorf("gwtransport: client provider %q is not a known provider", s.clientProvider)
	}
	g.secretHeaders = collectSecretHeaders(g.providers)

	g.route = &route{name: s.routeName, weighted: weighted}
	for i, sp := range specs {
		provName, model, err := splitTarget(sp.name)
		if err != nil {
			return nil, err
		}
		p, ok := g.providers[provName]
		if !ok {
			return nil, fmt.Errorf("gwtransport: model %q: unknown provider %q (known: %s); add it with WithProvider", sp.name, provName, knownProviders(g.providers))
		}
		if sp.name == s.routeName {
			return nil, fmt.Errorf("gwtransport: model %q has the same name as the route", sp.name)
		}
		t := &target{
			name:       sp.name,
			model:      model,
			prov:       p,
			weight:     sp.weight,
			maxRetries: s.maxRetries,
			timeout:    s.timeout,
			backoff:    s.backoff,
		}
		if n, ok := s.modelMaxRetries[sp.name]; ok {
			t.maxRetries = n
		}
		if d, ok := s.modelTimeout[sp.name]; ok {
			t.timeout = d
		}
		if b, ok := s.modelBackoff[sp.name]; ok {
			t.backoff = b
		}
		t.quotedModel, _ = json.Marshal(model)
		if msgs, ok := s.modelMessages[sp.name]; ok {
			if t.messages, err = encodeMessages(sp.name, msgs); err != nil {
				return nil, err
			}
		}
		g.route.targets = append(g.route.targets, t)
		g.byName[sp.name] = i
	}
	for _, m := range []map[string]int{s.modelMaxRetries} {
		if err := g.checkKeys("max retries", keysOf(m)); err != nil {
			return nil, err
		}
	}
	for what, keys := range map[string][]string{
		"timeout":        keysOf(s.modelTimeout),
		"backoff":        keysOf(s.modelBackoff),
		"model messages": keysOf(s.modelMessages),
	} {
		if err := g.checkKeys(what, keys); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// checkKeys rejects per-model settings for models that are not targets: a
// typo there would otherwise be silently ignored.
func (g *gateway) checkKeys(what string, keys []string) error {
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := g.byName[k]; !ok {
			return fmt.Errorf("gwtransport: %s given for %q, which is not one of the models", what, k)
		}
	}
	return nil
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func knownProviders(ps map[string]*provider) string {
	names := keysOf(ps)
	sort.Strings(names)
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// lookup decides whether a request is the gateway's: its model is the route
// name, or one of the route's targets (tried first, with the others as
// fallbacks). first is -1 when the gateway chooses.
func (g *gateway) lookup(model []byte) (rt *route, first int, ok bool) {
	if string(model) == g.route.name {
		return g.route, -1, true
	}
	if i, ok := g.byName[string(model)]; ok {
		return g.route, i, true
	}
	return nil, -1, false
}

// newBackOff returns the backoff of one request at one target.
func (g *gateway) newBackOff(t *target) backoff.BackOff {
	if g.s.newBackOff != nil {
		return g.s.newBackOff(t.name)
	}
	return newJitteredBackOff(t.backoff, g.s.rand)
}

// jitteredBackOff is an exponential backoff from cenkalti/backoff/v4 whose
// jitter draws from the gateway's injectable random source.
type jitteredBackOff struct {
	exp    *backoff.ExponentialBackOff
	jitter float64
	rand   RandSource
}

func newJitteredBackOff(b Backoff, r RandSource) backoff.BackOff {
	if b.Initial <= 0 {
		return &backoff.ZeroBackOff{}
	}
	mult := b.Multiplier
	if mult < 1 {
		mult = 1
	}
	max := b.Max
	if max <= 0 {
		max = time.Duration(1<<63 - 1)
	}
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(b.Initial),
		backoff.WithMultiplier(mult),
		backoff.WithMaxInterval(max),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	return &jitteredBackOff{exp: exp, jitter: b.Jitter, rand: r}
}

// NextBackOff returns the next wait, spread uniformly over ±jitter.
func (j *jitteredBackOff) NextBackOff() time.Duration {
	d := j.exp.NextBackOff()
	if d == backoff.Stop || j.jitter == 0 {
		return d
	}
	f := 1 + j.jitter*(2*j.rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Reset restarts the sequence.
func (j *jitteredBackOff) Reset() { j.exp.Reset() }

// hasCredentials reports whether h carries any credential header.
func (g *gateway) hasCredentials(h http.Header) bool {
	for _, k := range g.secretHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}
