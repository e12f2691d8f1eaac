package gwtransport

import (
	"fmt"
	"time"
)

// Strategy chooses the first target of a request and, after a failure,
// each fallback among the targets left. The built-in strategies are
// variables; [CustomStrategy] wraps a function of your own. Whatever the
// strategy, a target is tried at most once per request (its retries
// aside), and targets excluded by a time window, an open circuit breaker
// or resting keys are not offered.
type Strategy struct {
	name   string
	custom func(cands []Candidate) int
}

// The built-in strategies.
var (
	// StrategyOrdered tries the targets in their configured order (the
	// default for a list of models).
	StrategyOrdered = Strategy{name: "ordered"}
	// StrategyWeighted samples by weight, each fallback among the weights
	// left (the default for a map of weights). A weight of 0 is never used.
	StrategyWeighted = Strategy{name: "weighted"}
	// StrategyRoundRobin starts each request at the next target in turn,
	// per route, and falls back in the same rotation: an even,
	// deterministic spread.
	StrategyRoundRobin = Strategy{name: "round_robin"}
	// StrategyRandom picks uniformly among the targets left.
	StrategyRandom = Strategy{name: "random"}
	// StrategyLowestLatency picks the target with the lowest measured
	// latency (a moving average of its successful attempts); targets not
	// measured yet come first, in order, so every target gets measured.
	StrategyLowestLatency = Strategy{name: "lowest_latency"}
)

// CustomStrategy makes a Strategy from a function that returns the index,
// in cands, of the target to try next. cands holds the targets still
// available for this request, in configured order, with their live
// statistics. An index out of range picks the first candidate.
func CustomStrategy(choose func(cands []Candidate) int) Strategy {
	return Strategy{name: "custom", custom: choose}
}

// ParseStrategy returns the built-in strategy of that name: "ordered",
// "weighted", "round_robin", "random" or "lowest_latency". The deprecated
// "always_first" is still accepted, for one release, as "ordered" (which it
// always was).
func ParseStrategy(name string) (Strategy, error) {
	if name == "always_first" {
		return StrategyOrdered, nil
	}
	for _, s := range []Strategy{StrategyOrdered, StrategyWeighted, StrategyRoundRobin, StrategyRandom, StrategyLowestLatency} {
		if s.name == name {
			return s, nil
		}
	}
	return Strategy{}, fmt.Errorf("gwtransport: unknown strategy %q (want ordered, weighted, round_robin, random or lowest_latency)", name)
}

// String returns the strategy's name.
func (s Strategy) String() string { return s.name }

func (s Strategy) set() bool { return s.name != "" }

// Candidate is a target offered to a custom strategy.
type Candidate struct {
	// Index is the target's position in the route's configuration.
	Index int
	// Target is "<provider>/<model>"; Alias its alias, if any.
	Target, Alias string
	// Weight is the configured weight (1 for a list of models).
	Weight float64
	// Attempts, Failures and Latency are live: the attempts made at this
	// target so far, the failed ones, and the moving average latency of
	// the successful ones (0 before the first).
	Attempts, Failures int64
	Latency            time.Duration // see Attempts
}

// picker yields the targets of one request: the first pick, then each
// fallback, never a target twice.
type picker struct {
	rt       *route
	now      time.Time
	tried    uint64
	first    int        // index of a target the caller asked for first, or -1
	ownCreds *provider  // the provider whose credentials the request carries
	start    int        // round-robin start of this request
	reason   string     // why the last next() found nothing, if targets were excluded
	probe    probeLease // the breaker probe lease of the last target taken, if it is a probe
	// Set by a next() that found targets excluded (see cooling.go): the
	// earliest time one of them comes back and its name, and the breakers
	// of those excluded for another request's probe in flight.
	back       time.Time
	backTarget string
	probing    []*breaker
}

func newPicker(rt *route, first int, now time.Time) picker {
	p := picker{rt: rt, first: first, now: now}
	if rt.strategy.name == "round_robin" {
		p.start = int(rt.rr.next() % uint64(len(rt.targets)))
	}
	return p
}

// available reports whether target i may be tried now, noting why not.
func (p *picker) available(i int) bool {
	if p.tried&(1<<i) != 0 {
		return false
	}
	t := p.rt.targets[i]
	if e := t.exclusion(p.now, p.ownCreds); e.why != "" {
		p.note(t.name + ": " + e.why)
		p.cooling(t, e)
		return false
	}
	return true
}

func (p *picker) note(why string) {
	if p.reason != "" {
		p.reason += "; "
	}
	p.reason += why
}

// next returns the next target to try, or nil when none is left.
func (p *picker) next() *target {
	p.reason = ""
	p.back, p.backTarget, p.probing = time.Time{}, "", p.probing[:0]
	ts := p.rt.targets
	if p.first >= 0 && p.tried&(1<<p.first) == 0 {
		i := p.first
		p.first = -1
		if p.available(i) {
			return p.take(i)
		}
	}
	switch p.rt.strategy.name {
	case "weighted":
		return p.weighted()
	case "round_robin":
		for k := 0; k < len(ts); k++ {
			if i := (p.start + k) % len(ts); p.available(i) {
				return p.take(i)
			}
		}
		return nil
	case "random":
		return p.uniform()
	case "lowest_latency":
		best := -1
		var bestLat time.Duration
		for i := range ts {
			if !p.available(i) {
				continue
			}
			lat := ts[i].stats.latency()
			if best < 0 || lat < bestLat {
				best, bestLat = i, lat
			}
		}
		if best < 0 {
			return nil
		}
		return p.take(best)
	case "custom":
		return p.custom()
	default: // ordered
		for i := range ts {
			if p.available(i) {
				return p.take(i)
			}
		}
		return nil
	}
}

// weighted samples among the available targets with a positive weight, in
// proportion to their weights.
func (p *picker) weighted() *target {
	ts := p.rt.targets
	var avail uint64
	total := 0.0
	last := -1
	for i, t := range ts {
		if t.weight > 0 && p.available(i) {
			avail |= 1 << i
			total += t.weight
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	x := p.rt.s.rand.Float64() * total
	for i, t := range ts {
		if avail&(1<<i) == 0 {
			continue
		}
		if x < t.weight {
			return p.take(i)
		}
		x -= t.weight
	}
	return p.take(last) // rounding left x at the very top
}

func (p *picker) uniform() *target {
	var idx []int
	for i := range p.rt.targets {
		if p.available(i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	k := int(p.rt.s.rand.Float64() * float64(len(idx)))
	if k >= len(idx) {
		k = len(idx) - 1
	}
	return p.take(idx[k])
}

func (p *picker) custom() *target {
	var cands []Candidate
	for i, t := range p.rt.targets {
		if !p.available(i) {
			continue
		}
		a, f, lat := t.stats.snapshot()
		cands = append(cands, Candidate{Index: i, Target: t.name, Alias: t.alias, Weight: t.weight, Attempts: a, Failures: f, Latency: lat})
	}
	if len(cands) == 0 {
		return nil
	}
	k := p.rt.strategy.custom(cands)
	if k < 0 || k >= len(cands) {
		k = 0
	}
	return p.take(cands[k].Index)
}

// admit asks t's breaker to let a request through now, announcing a
// breaker that turns half-open; probe is the lease when the request is its
// probe.
func (rt *route) admit(t *target, now time.Time) (probe probeLease, ok bool) {
	ok, probe, halfOpened := t.breaker.admit(now, t.probeLease())
	if halfOpened {
		rt.emit(Event{Kind: EventBreaker, Time: now, Route: rt.name, Target: t.name, State: string(BreakerHalfOpen)})
	}
	return probe, ok
}

// untake gives a target back, untried: it was never sent (its last free
// key went to another request), and may be picked or waited for again.
func (p *picker) untake(t *target) {
	for i, u := range p.rt.targets {
		if u == t {
			p.tried &^= 1 << i
		}
	}
}

// take hands target i to the request once its breaker admits it. A
// breaker past its cooldown admits the request as its probe, under a lease
// kept in p.probe. A breaker whose probe went to another request meanwhile
// refuses, and the request looks for another target.
func (p *picker) take(i int) *target {
	p.tried |= 1 << i
	p.probe = probeLease{}
	t := p.rt.targets[i]
	probe, ok := p.rt.admit(t, p.now)
	if !ok {
		why := t.name + ": circuit half-open, its probe is in flight"
		n := p.next()
		if n == nil {
			p.note(why)
		}
		return n
	}
	p.probe = probe
	return t
}

// probeLease is how long a probe at t may go without a verdict before
// another request may probe: its attempt timeout, or defaultProbeLease.
func (t *target) probeLease() time.Duration {
	if t.timeout > 0 {
		return t.timeout
	}
	return defaultProbeLease
}
