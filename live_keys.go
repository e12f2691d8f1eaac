package gwtransport

import (
	"sync"
	"time"
)

// keyPool rotates a provider's API keys. Each key is a small state
// machine driven by the injected clock:
//
//	state     event                           next state
//	active    429 with Retry-After r           resting until now+min(r, max rest), never shortened (no Retry-After: no rest)
//	active    401, 403                        disabled until now+keyDisabledFor
//	resting   429                             resting, extended up to now+max rest
//	any       401, 403                        disabled until now+keyDisabledFor
//	resting   the clock passes its end        active
//	disabled  the clock passes its end        active
//	any       another replica's rest          resting until its end, never shortened (with a Store)
//	any       another replica's disablement   disabled until its end, never shortened (with a Store)
//
// An optional minimum interval spaces the uses of each key. Keys are never
// logged or reported, only their index.
type keyPool struct {
	interval time.Duration

	mu   sync.Mutex
	keys []keyState
	next int
	seen time.Time // the latest time the pool was given

	// share is the Store's session (nil without one) and index the
	// pool's provider in its Layout: rests and disablements are handed to
	// it (see live.go). Uses and KeyInterval stay per replica.
	share StoreSession
	index int
}

// remoteRest applies another replica's rest (or disablement) of key i
// until the given time; rests only ever extend.
func (p *keyPool) remoteRest(i int, disabled bool, until time.Time) {
	if i < 0 || i >= len(p.keys) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &p.keys[i].restUntil
	if disabled {
		t = &p.keys[i].disabled
	}
	if until.After(*t) {
		*t = until
	}
}

// rewind keeps a clock set back from stretching rests: when now is before
// the latest time seen, every key keeps the time it had left then (and the
// time since its last use). Called with p.mu held, first thing.
func (p *keyPool) rewind(now time.Time) {
	if now.Before(p.seen) {
		back := now.Sub(p.seen)
		for i := range p.keys {
			ks := &p.keys[i]
			for _, t := range []*time.Time{&ks.restUntil, &ks.disabled, &ks.lastUsed} {
				if !t.IsZero() {
					*t = t.Add(back)
				}
			}
		}
	}
	p.seen = now
}

// keyState is one key and its live state.
type keyState struct {
	secret    string
	restUntil time.Time
	disabled  time.Time // disabled until
	lastUsed  time.Time
	uses      int64
}

// keyDisabledFor is how long a key refused with 401 or 403 stays out, so a
// key fixed at the provider comes back without a restart.
const keyDisabledFor = 10 * time.Minute

// defaultKeyRest is the rest of a rate-limited key without Retry-After:
// none. Nothing says how long the limit lasts; the backoff spaces the
// retries, and another key of the pool is used first when there is one (a
// rest here would outlast the first backoff and turn every 429 of a
// single-key provider into a failover, against the retry rule).
const defaultKeyRest = 0

func newKeyPool(secrets []string, interval time.Duration) *keyPool {
	if len(secrets) == 0 {
		return nil
	}
	p := &keyPool{interval: interval, keys: make([]keyState, len(secrets))}
	for i, s := range secrets {
		p.keys[i].secret = s
	}
	return p
}

// acquire returns the next usable key in rotation, or -1 when every key
// rests.
func (p *keyPool) acquire(now time.Time) (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewind(now)
	for k := 0; k < len(p.keys); k++ {
		i := (p.next + k) % len(p.keys)
		if !p.usable(i, now) {
			continue
		}
		ks := &p.keys[i]
		ks.lastUsed = now
		ks.uses++
		p.next = i + 1
		return i, ks.secret
	}
	return -1, ""
}

// anyUsable reports whether some key could be used now.
func (p *keyPool) anyUsable(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewind(now)
	for i := range p.keys {
		if p.usable(i, now) {
			return true
		}
	}
	return false
}

func (p *keyPool) usable(i int, now time.Time) bool {
	ks := &p.keys[i]
	switch {
	case now.Before(ks.disabled), now.Before(ks.restUntil):
		return false
	case p.interval > 0 && !ks.lastUsed.IsZero() && now.Sub(ks.lastUsed) < p.interval:
		return false
	}
	return true
}

// nextUsable returns the earliest time from now at which some key is usable.
func (p *keyPool) nextUsable(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewind(now)
	var first time.Time
	for i := range p.keys {
		ks := &p.keys[i]
		at := now
		for _, t := range [...]time.Time{ks.disabled, ks.restUntil} {
			if t.After(at) {
				at = t
			}
		}
		if p.interval > 0 && !ks.lastUsed.IsZero() {
			if t := ks.lastUsed.Add(p.interval); t.After(at) {
				at = t
			}
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// size is the number of keys.
func (p *keyPool) size() int { return len(p.keys) }

// report updates key i after a response with status; it returns the state
// it put the key in ("resting", "disabled") or "". retryAfter is the
// response's Retry-After (0 if none); the rest it sets is at most maxRest
// (no cap when maxRest is 0).
func (p *keyPool) report(i, status int, retryAfter, maxRest time.Duration, now time.Time) string {
	if i < 0 {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewind(now)
	ks := &p.keys[i]
	switch status {
	case 429:
		if retryAfter <= 0 {
			retryAfter = defaultKeyRest
		}
		retryAfter = capRest(retryAfter, maxRest)
		if retryAfter <= 0 {
			return "" // no rest: nothing changed
		}
		if until := now.Add(retryAfter); until.After(ks.restUntil) {
			ks.restUntil = until
			p.publish(Fact{Kind: FactKeyResting, Key: i, At: now, Until: until})
		}
		return "resting"
	case 401, 403:
		ks.disabled = now.Add(keyDisabledFor)
		p.publish(Fact{Kind: FactKeyDisabled, Key: i, At: now, Until: ks.disabled})
		return "disabled"
	}
	return ""
}

// publish hands a change to the Store, if any.
func (p *keyPool) publish(f Fact) {
	if p.share != nil {
		f.Provider = p.index
		p.share.Publish(f)
	}
}

// KeyStats describes one API key of a provider, without the key.
type KeyStats struct {
	// Index is the key's position in the provider's configuration.
	Index int
	// State is "active", "resting" (rate limited) or "disabled" (refused).
	State string
	// Until is when a resting or disabled key comes back.
	Until time.Time
	// Uses counts the attempts made with the key.
	Uses int64
}

func (p *keyPool) stats(now time.Time) []KeyStats {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewind(now)
	out := make([]KeyStats, len(p.keys))
	for i, ks := range p.keys {
		st := KeyStats{Index: i, State: "active", Uses: ks.uses}
		switch {
		case now.Before(ks.disabled):
			st.State, st.Until = "disabled", ks.disabled
		case now.Before(ks.restUntil):
			st.State, st.Until = "resting", ks.restUntil
		}
		out[i] = st
	}
	return out
}
