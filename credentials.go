package gwtransport

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// DefaultForwardHeaders returns the caller's request headers that an
// attempt at a provider other than the caller's own carries (see
// [WithForwardHeaders]). Every other header of the caller's request stays
// behind: deny by default. A name ending in "*" is a prefix. Each call
// returns a new slice, so changing it changes nothing else.
//
// The list, and why each carries no secret:
//   - content negotiation: Accept, Accept-Language, Content-Type;
//   - User-Agent;
//   - tracing identifiers, which are random ids and sampling flags:
//     Traceparent and Tracestate (W3C Trace Context), B3 and X-B3-TraceId,
//     X-B3-SpanId, X-B3-ParentSpanId, X-B3-Sampled, X-B3-Flags (Zipkin),
//     Uber-Trace-Id (Jaeger), X-Amzn-Trace-Id (AWS X-Ray),
//     X-Cloud-Trace-Context (Google Cloud), X-Datadog-Trace-Id,
//     X-Datadog-Parent-Id, X-Datadog-Sampling-Priority (Datadog); W3C
//     Baggage is not in the list: it carries arbitrary application values;
//   - SDK telemetry: X-Stainless-* (language, package version, OS,
//     architecture, runtime, retry count, timeout of the official SDKs);
//   - request identity chosen by the client: Idempotency-Key,
//     X-Client-Request-Id;
//   - OpenAI-Beta, a feature flag ("assistants=v2").
func DefaultForwardHeaders() []string {
	return []string{
		"Accept", "Accept-Language", "Content-Type",
		"User-Agent",
		"Traceparent", "Tracestate",
		"B3", "X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags",
		"Uber-Trace-Id", "X-Amzn-Trace-Id", "X-Cloud-Trace-Context",
		"X-Datadog-Trace-Id", "X-Datadog-Parent-Id", "X-Datadog-Sampling-Priority",
		"X-Stainless-*",
		"Idempotency-Key", "X-Client-Request-Id",
		"OpenAI-Beta",
	}
}

// WithForwardHeaders adds names to [DefaultForwardHeaders]: the caller's
// request headers that attempts at a provider other than the caller's own
// carry. A name ending in "*" is a prefix ("X-My-Trace-*"); names are case
// insensitive. Credential headers (Authorization, Api-Key, Cookie, ...,
// and every header configured in a provider's Headers) cannot be
// forwarded: a name or prefix covering one is an error. The option applies
// to the whole gateway; it is refused inside [WithRoute].
func WithForwardHeaders(names ...string) Option {
	return func(s *settings) error {
		for _, n := range names {
			if err := checkForwardName(n); err != nil {
				return err
			}
		}
		// A full slice expression: a route's copy of the settings never
		// writes into the gateway's backing array.
		s.forwardHeaders = append(s.forwardHeaders[:len(s.forwardHeaders):len(s.forwardHeaders)], names...)
		return nil
	}
}

// unforwardable are headers that never cross to another provider, whatever
// the allowlist says: framing headers net/http owns, and the gateway's own.
var unforwardable = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", gatewayHeaderPrefix}

// checkForwardName validates one name of WithForwardHeaders against the
// built-in credential headers.
func checkForwardName(n string) error {
	name, prefix := strings.CutSuffix(n, "*")
	switch {
	case name == "":
		return fmt.Errorf("gwtransport: forwarded header %q: empty name", n)
	case !validHeaderToken(name):
		// Not echoed: a whole "Name: value" line may have been pasted.
		return errors.New("gwtransport: forwarded header: not a header name (a token, with a \"*\" allowed only at the end)")
	}
	name = http.CanonicalHeaderKey(name)
	for _, c := range append(append([]string(nil), credentialHeaders...), unforwardable...) {
		c = http.CanonicalHeaderKey(c)
		if c == name || (prefix && strings.HasPrefix(c, name)) || (strings.HasSuffix(c, "-") && strings.HasPrefix(name, c)) {
			return fmt.Errorf("gwtransport: forwarded header %q covers %s, which never crosses to another provider", n, c)
		}
	}
	return nil
}

// validHeaderToken reports whether s is an RFC 9110 token.
func validHeaderToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 && c != '*':
		default:
			return false
		}
	}
	return s != ""
}

// headerAllowlist is the compiled set of caller headers an attempt at a
// provider other than the caller's own may carry.
type headerAllowlist struct {
	exact    map[string]bool // canonical names
	prefixes []string        // canonical prefixes
	deny     map[string]bool // credential and configured headers: never forwarded
}

// newHeaderAllowlist compiles the default list plus extra. secret are the
// canonical credential header names (built-in and configured); an extra
// name covering one of them is an error, naming the provider whose header
// it is when it is a configured one.
func newHeaderAllowlist(extra []string, secret []string, ps map[string]*provider) (*headerAllowlist, error) {
	a := &headerAllowlist{exact: map[string]bool{}, deny: map[string]bool{}}
	for _, h := range secret {
		a.deny[h] = true
	}
	for _, h := range unforwardable {
		a.deny[http.CanonicalHeaderKey(h)] = true
	}
	add := func(n string, user bool) error {
		name, prefix := strings.CutSuffix(n, "*")
		name = http.CanonicalHeaderKey(name)
		if user {
			for _, h := range secret {
				if h == name || (prefix && strings.HasPrefix(h, name)) {
					return fmt.Errorf("gwtransport: forwarded header %q covers %s, a credential header%s; it never crosses to another provider", n, h, ownerOf(h, ps))
				}
			}
		}
		if prefix {
			a.prefixes = append(a.prefixes, name)
		} else {
			a.exact[name] = true
		}
		return nil
	}
	for _, n := range DefaultForwardHeaders() {
		_ = add(n, false)
	}
	for _, n := range extra {
		if err := add(n, true); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// ownerOf names the providers that configure header h, for error messages.
func ownerOf(h string, ps map[string]*provider) string {
	var names []string
	for _, p := range ps {
		if _, ok := p.headers[h]; ok {
			names = append(names, p.name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return " configured for provider " + strings.Join(names, ", ")
}

// allows reports whether the caller's header name (canonical) may reach a
// provider other than the caller's own.
func (a *headerAllowlist) allows(name string) bool {
	if a.deny[name] || isGatewayHeader(name) {
		return false
	}
	if a.exact[name] {
		return true
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// filter returns a new header holding the allowed headers of src under
// their canonical names. The values are copied: the caller's header is
// never shared with a request to another provider.
func (a *headerAllowlist) filter(src http.Header) http.Header {
	nv := 0
	for _, vs := range src {
		nv += len(vs)
	}
	vals := make([]string, nv) // one backing array, as http.Header.Clone
	out := make(http.Header, len(src))
	for k, vs := range src {
		ck := http.CanonicalHeaderKey(k)
		if len(vs) == 0 || !a.allows(ck) {
			continue
		}
		if prev, ok := out[ck]; ok {
			// The same name under two spellings: keep both values.
			out[ck] = append(prev[:len(prev):len(prev)], vs...)
			continue
		}
		n := copy(vals, vs)
		out[ck] = vals[:n:n]
		vals = vals[n:]
	}
	return out
}

// stripCookies removes the cookies a response from a provider other than
// the caller's own would set: they would land in the caller's cookie jar
// for the host the caller addressed.
func stripCookies(h http.Header) {
	for k := range h {
		if ck := http.CanonicalHeaderKey(k); ck == "Set-Cookie" || ck == "Set-Cookie2" {
			delete(h, k)
		}
	}
}

// errForwardInRoute is returned when WithForwardHeaders is given to a route.
var errForwardInRoute = errors.New("WithForwardHeaders applies to the whole gateway: give it to Init or NewTransport, not to WithRoute")

// hasHeaderKey reports whether h has the header name (canonical) under any
// spelling of it, with or without values. It allocates nothing.
func hasHeaderKey(h http.Header, name string) bool {
	if _, ok := h[name]; ok {
		return true
	}
	for k := range h {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// delHeaderKey removes the header name (canonical) under every spelling.
func delHeaderKey(h http.Header, name string) {
	delete(h, name)
	for k := range h {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// headerKeyValue returns the first value of the header name (canonical)
// under any spelling, the canonical one first.
func headerKeyValue(h http.Header, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if len(vs) > 0 && len(k) == len(name) && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// unsendable reports whether net/http refuses to write r at all: a header
// name that is not a token or a value with a control character (a
// caller's header forwarded as is). Such an attempt failed before
// anything reached the target, so it says nothing about the target's
// availability. It is called only after an attempt failed.
func unsendable(r *http.Request) bool {
	for k, vs := range r.Header {
		if !validHeaderName(k) {
			return true
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return true
			}
		}
	}
	return false
}

// validHeaderName reports whether net/http accepts s as a header name: an
// RFC 9110 token ("*" included, unlike in forwarding patterns).
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '*' && !validHeaderToken(s[i:i+1]) {
			return false
		}
	}
	return s != ""
}
