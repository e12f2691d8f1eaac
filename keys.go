package gwtransport

import (
	"sync"
	"time"
)

// keyPool rotates a provider's API keys. A key answered 429 rests for the
// response's Retry-After (1 s when it has none); a key answered 401 or 403
// is disabled for keyDisabledFor; an optional minimum interval spaces the
// uses of each key. Keys are never logged or reported, only their index.
type keyPool struct {
	interval time.Duration

	mu   sync.Mutex
	keys []keyState
	next int
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

// defaultKeyRest is the rest of a rate-limited key without Retry-After.
const defaultKeyRest = time.Second

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

// report updates key i after a response with status; it returns the state
// it put the key in ("resting", "disabled") or "".
func (p *keyPool) report(i, status int, retryAfter time.Duration, now time.Time) string {
	if i < 0 {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ks := &p.keys[i]
	switch status {
	case 429:
		if retryAfter <= 0 {
			retryAfter = defaultKeyRest
		}
		if until := now.Add(retryAfter); until.After(ks.restUntil) {
			ks.restUntil = until
		}
		return "resting"
	case 401, 403:
		ks.disabled = now.Add(keyDisabledFor)
		return "disabled"
	}
	return ""
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
