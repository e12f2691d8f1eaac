package gwtransport

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// A provider can echo what it received (a key, in an error code) and the
// gateway copies an error's code into the fallback-reason header, the
// trail, events and logs. scrub keeps secrets out of all of them: every
// key and configured header value the gateway knows, and the caller's own
// credential header values, are masked wherever they appear.

// minSecretLen is the shortest value treated as a secret: shorter ones
// would mask ordinary words.
const minSecretLen = 6

// maxCodeLen bounds an error code copied from a provider's body.
const maxCodeLen = 128

// redactedSecret replaces a secret in text.
const redactedSecret = "[REDACTED]"

// collectSecrets returns every key and configured header value of the
// providers, the longest first (so that a key containing another is masked
// whole).
func collectSecrets(ps map[string]*provider) []string {
	var out []string
	add := func(v string) {
		if len(v) >= minSecretLen {
			out = append(out, v)
		}
	}
	for _, p := range ps {
		if p.pool != nil {
			for i := range p.pool.keys {
				add(p.pool.keys[i].secret)
			}
		}
		for _, vs := range p.headers {
			for _, v := range vs {
				add(v)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// scrub returns s with every secret the gateway knows and the value of
// every header of the caller's h that would not cross to another provider
// (deny by default: its credentials, an API-management key...) masked, then bounded to maxCodeLen (masked
// first, so that a secret across the cut is never half shown).
func (g *gateway) scrub(s string, h http.Header) string {
	s = g.maskAll(s, h)
	if len(s) > maxCodeLen {
		s = s[:maxCodeLen]
	}
	return s
}

// maskAll masks in s every secret the gateway knows and the value of every
// header of h that would not cross to another provider.
func (g *gateway) maskAll(s string, h http.Header) string {
	if s == "" {
		return s
	}
	s = g.maskSecrets(s)
	for k, vs := range h {
		// Every header that would not cross to another provider may be a
		// secret (an API-management key, an observability vendor's key),
		// not only the known credential headers.
		if ck := http.CanonicalHeaderKey(k); !g.secretSet[ck] && g.forward.allows(ck) {
			continue
		}
		for _, v := range vs {
			for _, part := range []string{v, credentialOf(v)} {
				if len(part) >= minSecretLen && strings.Contains(s, part) {
					s = strings.ReplaceAll(s, part, redactedSecret)
				}
			}
		}
	}
	return s
}

// maskSecrets masks every key and configured header value the gateway
// knows in s (a provider's error text handed to the caller: another
// provider's key must not reach it).
func (g *gateway) maskSecrets(s string) string {
	for _, v := range g.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, redactedSecret)
		}
	}
	return s
}

// maskSecretBytes is maskSecrets for a failure body handed back; it
// returns b itself when there is nothing to mask. A JSON body may carry a
// key escaped ("sk\/..." or "\u0073k-..."): when a decoded string holds
// one, the body is re-encoded with every string masked.
func (g *gateway) maskSecretBytes(b []byte) []byte {
	if len(g.secrets) == 0 {
		return b
	}
	for _, v := range g.secrets {
		if bytes.Contains(b, []byte(v)) {
			b = bytes.ReplaceAll(b, []byte(v), []byte(redactedSecret))
		}
	}
	if bytes.IndexByte(b, '\\') < 0 || !json.Valid(b) {
		return b // no escape, so nothing hidden from the raw replace
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return b
	}
	masked, changed := g.maskJSON(v)
	if !changed {
		return b
	}
	out, err := json.Marshal(masked)
	if err != nil {
		return b
	}
	return out
}

// maskJSON masks the secrets in every string of a decoded JSON value, keys
// included, and reports whether it changed anything.
func (g *gateway) maskJSON(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		m := g.maskSecrets(x)
		return m, m != x
	case []any:
		changed := false
		for i, e := range x {
			var c bool
			x[i], c = g.maskJSON(e)
			changed = changed || c
		}
		return x, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		for k, e := range x {
			mk := g.maskSecrets(k)
			me, c := g.maskJSON(e)
			out[mk] = me
			changed = changed || c || mk != k
		}
		return out, changed
	}
	return v, false
}

// maskHeader masks the secrets the gateway knows in the values of a
// response's header (a provider echoing a key it was sent).
func (g *gateway) maskHeader(h http.Header) {
	if len(g.secrets) == 0 {
		return
	}
	for _, vs := range h {
		for i, v := range vs {
			vs[i] = g.maskSecrets(v) // the response's own header: written in place
		}
	}
}

// credentialOf returns the credential of an Authorization-style value: the
// part after its scheme ("Bearer", in any case), or the value itself.
func credentialOf(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ' '); i > 0 {
		return strings.TrimSpace(v[i+1:])
	}
	return v
}

// masker masks the secrets the gateway knows and the caller's
// non-forwarded header values (see maskAll); its zero value masks nothing.
type masker struct {
	g *gateway
	h http.Header
}

func (m masker) mask(s string) string {
	if m.g == nil {
		return s
	}
	return m.g.maskAll(s, m.h)
}
