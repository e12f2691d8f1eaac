package gwtransport

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
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
	// The forms a provider may echo a secret in besides its own: URL
	// encodings, and JSON's escaped solidus.
	for _, v := range out {
		for _, f := range []string{url.QueryEscape(v), url.PathEscape(v), strings.ReplaceAll(v, "/", `\/`)} {
			if f != v && !slices.Contains(out, f) {
				out = append(out, f)
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
// returns b itself when there is nothing to mask. A JSON string in it may
// spell a key with other escapes ("\u0073k-..."): every quoted string that
// holds a backslash is decoded, and replaced, masked, when it holds a key.
// Everything else stays byte for byte, whether or not the body is JSON.
func (g *gateway) maskSecretBytes(b []byte) []byte {
	if len(g.secrets) == 0 {
		return b
	}
	for _, v := range g.secrets {
		if bytes.Contains(b, []byte(v)) {
			b = bytes.ReplaceAll(b, []byte(v), []byte(redactedSecret))
		}
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end, escaped := stringEnd(b, i)
		if end < 0 {
			break
		}
		if escaped {
			if s, err := decodeString(b[i : end+1]); err == nil {
				if m := g.maskSecrets(string(s)); m != string(s) {
					out = append(append(out, b[last:i]...), quoteJSON(m)...)
					last = end + 1
				}
			}
		}
		i = end
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at b[i], or -1, and whether the string has escapes.
func stringEnd(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return -1, escaped
}

// quoteJSON encodes s as a JSON string, without HTML escaping.
func quoteJSON(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// maskHeader masks the secrets the gateway knows in the values of a
// response's header (a provider echoing a key it was sent).
func (g *gateway) maskHeader(h http.Header) {
	if len(g.secrets) == 0 {
		return
	}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = g.maskSecrets(v) // the response's own header: written in place
		}
		// A key echoed in a header's name (canonicalised: any case).
		for _, sec := range g.secrets {
			if strings.Contains(strings.ToLower(k), strings.ToLower(sec)) {
				delete(h, k)
				break
			}
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
