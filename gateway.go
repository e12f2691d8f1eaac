package gwtransport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// gateway is a compiled, immutable configuration with its live state
// (breakers, key pools, statistics). A Transport swaps it atomically when
// Init runs again, so requests in flight finish on the configuration they
// started with.
type gateway struct {
	s             *settings
	routes        map[string]*route
	order         []*route // routes in configuration order, the default first
	providers     map[string]*provider
	secretHeaders []string
	secretSet     map[string]bool  // secretHeaders as a set
	secrets       []string         // every key and configured header value, longest first (see scrub)
	maxSecretForm int              // the longest a secret can be spelled in a body
	origins       *originTable     // resolves which provider a request's client serves
	forward       *headerAllowlist // caller headers that may reach another provider
	live          []*target        // every route's targets, in Layout order (live.go), with a Store
	pools         []*keyPool       // the key pools of the Layout's providers, with a Store
	session       StoreSession     // the Store's session, nil without one (live.go)
}

// route is an intercepted model name and the targets it spreads over, with
// its own settings.
type route struct {
	name     string
	s        *settings
	targets  []*target
	byName   map[string]int // target name and alias -> index
	strategy Strategy
	rr       atomicCounter // round-robin position
	prepends bool          // some target has model messages
}

// target is one "<provider>/<model>" of a route with its settings resolved
// and its live state.
type target struct {
	name        string
	model       string
	alias       string
	prov        *provider
	weight      float64
	maxRetries  int
	timeout     time.Duration
	firstEvent  time.Duration // a stream's first-event limit, 0 for none (see attemptLimit)
	backoff     Backoff
	quotedModel []byte // the model as a JSON string, ready to splice
	messages    []byte // model messages as comma-separated JSON elements
	windows     []window
	loc         *time.Location
	breaker     *breaker
	stats       targetStats
	cont        Continuation // how it continues a prefill (continuation.go)
}

// compile validates models and options into a gateway.
func compile(models any, opts []Option) (*gateway, error) {
	s := defaultSettings()
	if err := s.apply(opts); err != nil {
		return nil, err
	}
	g := &gateway{s: s, providers: map[string]*provider{}, routes: map[string]*route{}}
	if err := g.compileProviders(); err != nil {
		return nil, err
	}
	if models == nil {
		models = s.defaultModels
	}
	if models != nil || len(s.routes) == 0 {
		if err := g.addRoute(s.routeName, models, s); err != nil {
			return nil, err
		}
	}
	for _, rs := range s.routes {
		rset := s.clone()
		if err := rset.apply(rs.opts); err != nil {
			return nil, fmt.Errorf("gwtransport: route %q: %w", rs.name, unprefix(err))
		}
		if len(rset.forwardHeaders) != len(s.forwardHeaders) {
			return nil, fmt.Errorf("gwtransport: route %q: %w", rs.name, errForwardInRoute)
		}
		if err := g.addRoute(rs.name, rs.models, rset); err != nil {
			return nil, err
		}
	}
	if err := g.checkPerModelKeys(); err != nil {
		return nil, err
	}
	if err := g.checkCredentials(); err != nil {
		return nil, err
	}
	if err := g.bindStore(); err != nil {
		return nil, err
	}
	return g, nil
}

// checkPerModelKeys rejects per-model settings for models that are no
// route's target: a typo there would otherwise be silently ignored.
func (g *gateway) checkPerModelKeys() error {
	names := map[string]bool{}
	for _, rt := range g.order {
		for _, t := range rt.targets {
			names[t.name] = true
		}
	}
	for _, rt := range g.order {
		s := rt.s
		for _, c := range []struct {
			what string
			keys []string
		}{
			{"max retries", keysOf(s.modelMaxRetries)},
			{"timeout", keysOf(s.modelTimeout)},
			{"stream first-event limit", keysOf(s.modelFirstEvent)},
			{"backoff", keysOf(s.modelBackoff)},
			{"model messages", keysOf(s.modelMessages)},
			{"alias", keysOf(s.aliases)},
			{"time windows", keysOf(s.windows)},
			{"continuation", keysOf(s.modelContinuation)},
		} {
			sort.Strings(c.keys)
			for _, k := range c.keys {
				if !names[k] {
					return fmt.Errorf("gwtransport: %s given for %q, which is not one of the models", c.what, k)
				}
			}
		}
	}
	return nil
}

// unprefix drops the package prefix of an error message about to be
// wrapped with more context.
func unprefix(err error) error {
	msg := strings.TrimPrefix(err.Error(), "gwtransport: ")
	return errors.New(msg)
}

func (g *gateway) compileProviders() error {
	s := g.s
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
			return err
		}
		g.providers[name] = rp
	}
	cp, ok := g.providers[s.clientProvider]
	if !ok {
		return fmt.Errorf("gwtransport: client provider %q is not a known provider", s.clientProvider)
	}
	g.secretHeaders = collectSecretHeaders(g.providers)
	g.secrets = collectSecrets(g.providers)
	for _, v := range g.secrets {
		// A \u-escaped secret is up to six times as long (see readErrorBody).
		g.maxSecretForm = max(g.maxSecretForm, 6*len(v))
	}
	g.secretSet = make(map[string]bool, len(g.secretHeaders))
	for _, h := range g.secretHeaders {
		g.secretSet[h] = true
	}
	var err error
	if g.origins, err = newOriginTable(g.providers, cp); err != nil {
		return err
	}
	g.forward, err = newHeaderAllowlist(s.forwardHeaders, g.secretHeaders, g.providers)
	return err
}

// addRoute compiles one route.
func (g *gateway) addRoute(name string, models any, s *settings) error {
	if _, dup := g.routes[name]; dup {
		return fmt.Errorf("gwtransport: route %q is defined twice", name)
	}
	specs, weighted, err := parseModels(models)
	if err != nil {
		return routeErr(name, g, err)
	}
	rt := &route{name: name, s: s, byName: map[string]int{}, strategy: s.strategy}
	if !rt.strategy.set() {
		rt.strategy = StrategyOrdered
		if weighted {
			rt.strategy = StrategyWeighted
		}
	}
	for i, sp := range specs {
		t, err := g.newTarget(name, sp, s)
		if err != nil {
			return err
		}
		for _, key := range []string{t.name, t.alias} {
			if key == "" {
				continue
			}
			if key == name {
				return fmt.Errorf("gwtransport: route %q: model or alias %q has the same name as the route", name, key)
			}
			if _, dup := rt.byName[key]; dup {
				return fmt.Errorf("gwtransport: route %q: %q names two targets", name, key)
			}
			rt.byName[key] = i
		}
		rt.targets = append(rt.targets, t)
		rt.prepends = rt.prepends || len(t.messages) > 0
	}
	g.routes[name] = rt
	g.order = append(g.order, rt)
	return nil
}

func routeErr(name string, g *gateway, err error) error {
	if len(g.order) == 0 && len(g.s.routes) == 0 {
		return err
	}
	return fmt.Errorf("gwtransport: route %q: %w", name, unprefix(err))
}

// newTarget resolves one target of a route.
func (g *gateway) newTarget(routeName string, sp modelSpec, s *settings) (*target, error) {
	provName, model, err := splitTarget(sp.name)
	if err != nil {
		return nil, err
	}
	p, ok := g.providers[provName]
	if !ok {
		return nil, fmt.Errorf("gwtransport: model %q: unknown provider %q (known: %s); add it with WithProvider", sp.name, provName, knownProviders(g.providers))
	}
	t := &target{
		name:       sp.name,
		model:      model,
		alias:      s.aliases[sp.name],
		prov:       p,
		weight:     sp.weight,
		maxRetries: s.maxRetries,
		timeout:    s.timeout,
		firstEvent: s.firstEvent,
		backoff:    s.backoff,
		breaker:    newBreaker(s.breaker),
		loc:        s.loc,
	}
	if n, ok := s.modelMaxRetries[sp.name]; ok {
		t.maxRetries = n
	}
	if d, ok := s.modelTimeout[sp.name]; ok {
		t.timeout = d
	}
	if d, ok := s.modelFirstEvent[sp.name]; ok {
		t.firstEvent = d
	}
	if b, ok := s.modelBackoff[sp.name]; ok {
		t.backoff = b
	}
	t.cont = s.continuation
	if c, ok := s.modelContinuation[sp.name]; ok {
		t.cont = c
	}
	t.quotedModel, _ = json.Marshal(model)
	if msgs, ok := s.modelMessages[sp.name]; ok {
		if t.messages, err = encodeMessages(sp.name, msgs); err != nil {
			return nil, err
		}
	}
	if ws, ok := s.windows[sp.name]; ok {
		if t.windows, err = parseWindows(sp.name, ws); err != nil {
			return nil, err
		}
	}
	return t, nil
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
	return strings.Join(names, ", ")
}

// lookup decides whether a request is the gateway's: its model is a route
// name, or a target or alias of a route (tried first, with the others as
// fallbacks). first is -1 when the gateway chooses.
func (g *gateway) lookup(model []byte) (rt *route, first int, ok bool) {
	if rt, ok := g.routes[string(model)]; ok {
		return rt, -1, true
	}
	for _, rt := range g.order {
		if i, ok := rt.byName[string(model)]; ok {
			return rt, i, true
		}
	}
	return nil, -1, false
}

// newBackOff returns the backoff of one request at one target.
func (rt *route) newBackOff(t *target) backoff.BackOff {
	if rt.s.newBackOff != nil {
		return rt.s.newBackOff(t.name)
	}
	return newJitteredBackOff(t.backoff, rt.s.rand)
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

// hasCredentials reports whether h carries any credential header, under
// any spelling of its name.
func (g *gateway) hasCredentials(h http.Header) bool {
	for k, vs := range h {
		if len(vs) > 0 && g.secretSet[http.CanonicalHeaderKey(k)] {
			return true
		}
	}
	return false
}
