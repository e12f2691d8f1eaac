package gwtransport

import (
	"net/url"
	"reflect"
	"strings"
)

// redacted replaces a query string wherever the gateway would print one.
const redacted = "REDACTED"

// redactError returns err with every URL query string removed from its
// message and from every error its chain reaches. Query strings may hold
// secrets (an Azure Functions "code", a signed URL, a key some proxies
// take as a parameter), and the errors of an attempt reach Attempt.Err,
// the X-Gwtransport-Fallback-Reason header, Error(), events and logs.
//
// The whole chain is redacted, through Unwrap() error and Unwrap() []error
// alike: a *url.Error (what http.Client.Do returns, with the full URL) is
// replaced by a copy whose URL has no query and whose Err is redacted in
// turn, so errors.As reaches the copy; any other error whose message shows
// a query, or that wraps one that does, is replaced by one with the
// redacted message that unwraps to its redacted children. An error without
// a query anywhere below it is kept as is, so errors.Is against sentinels
// such as syscall.ECONNRESET or context.DeadlineExceeded still holds.
func redactError(err error) error {
	return cleanError(err, redactQueries)
}

// cleanError is redactError with another cleaning of the text: clean
// returns its argument unchanged when there is nothing to hide (the
// gateway also masks the secrets it knows this way).
func cleanError(err error, clean func(string) string) error {
	if err == nil {
		return nil
	}
	return redactNode(err, 0, clean)
}

// maxRedactDepth bounds the walk of a pathological (cyclic or very deep)
// chain; below it, what is left is replaced by its redacted message.
const maxRedactDepth = 64

// redactNode returns err redacted (see redactError): err itself when
// nothing it reaches shows a query.
func redactNode(err error, depth int, cleanText func(string) string) error {
	if depth >= maxRedactDepth {
		msg := err.Error()
		if clean := cleanText(msg); clean != msg {
			return &redactedError{msg: clean}
		}
		return err
	}
	if ue, ok := err.(*url.Error); ok {
		if ue == nil {
			return err
		}
		u := cleanText(redactURL(ue.URL))
		var inner error
		if ue.Err != nil {
			inner = redactNode(ue.Err, depth+1, cleanText)
		}
		if u == ue.URL && inner == ue.Err {
			return err
		}
		return &url.Error{Op: ue.Op, URL: u, Err: inner}
	}
	switch w := err.(type) {
	case interface{ Unwrap() error }:
		child := w.Unwrap()
		if child == nil {
			break
		}
		rc := redactNode(child, depth+1, cleanText)
		msg := err.Error()
		clean := cleanText(msg)
		if rc == child && clean == msg {
			return err
		}
		return &redactedError{msg: clean, orig: err, err: rc}
	case interface{ Unwrap() []error }:
		children := w.Unwrap()
		var rcs []error
		for i, c := range children {
			if c == nil {
				continue
			}
			if rc := redactNode(c, depth+1, cleanText); rc != c && rcs == nil {
				rcs = make([]error, 0, len(children))
				for _, k := range children[:i] {
					if k != nil {
						rcs = append(rcs, k)
					}
				}
				rcs = append(rcs, rc)
			} else if rcs != nil {
				rcs = append(rcs, rc)
			}
		}
		msg := err.Error()
		clean := cleanText(msg)
		if rcs == nil && clean == msg {
			return err
		}
		if rcs == nil {
			for _, c := range children {
				if c != nil {
					rcs = append(rcs, c)
				}
			}
		}
		return &redactedJoin{msg: clean, orig: err, errs: rcs}
	}
	msg := err.Error()
	if clean := cleanText(msg); clean != msg {
		return &redactedError{msg: clean, orig: err}
	}
	return err
}

// redactedError stands for an error whose message showed a query string,
// or that wrapped one that did: its message is redacted and it unwraps to
// the redacted form of what the original wrapped. The original is not
// reachable; its own Is method, if any, is still consulted.
type redactedError struct {
	msg  string
	orig error // the original, for Is only; never returned
	err  error // the redacted wrapped error, or nil
}

// Error returns the message without query strings.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the redacted form of the error the original wrapped.
func (e *redactedError) Unwrap() error { return e.err }

// Is reports what the original's own Is method reports, if it has one.
func (e *redactedError) Is(target error) bool { return origIs(e.orig, target) }

// redactedJoin is redactedError for an error that wraps several.
type redactedJoin struct {
	msg  string
	orig error
	errs []error
}

// Error returns the message without query strings.
func (e *redactedJoin) Error() string { return e.msg }

// Unwrap returns the redacted forms of the errors the original wrapped.
func (e *redactedJoin) Unwrap() []error { return e.errs }

// Is reports what the original's own Is method reports, if it has one.
func (e *redactedJoin) Is(target error) bool { return origIs(e.orig, target) }

// origIs calls orig's own Is method (not its chain's), which answers a
// boolean and so shows no query.
func origIs(orig, target error) bool {
	if orig == nil {
		return false
	}
	if reflect.TypeOf(orig).Comparable() && orig == target {
		return true
	}
	if x, ok := orig.(interface{ Is(error) bool }); ok {
		return x.Is(target)
	}
	return false
}

// redactURL returns a URL string without its query (and fragment).
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i] + "?" + redacted
	}
	return s
}

// redactQueries removes from s every query string of a URL or request
// target: the text after a "?" that follows a URL, a path, or a word
// and that reads as parameters ("name=value"), up to the next white space
// or quote.
func redactQueries(s string) string {
	if strings.IndexByte(s, '?') < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '?' || i == 0 || isURLEnd(s[i-1]) {
			continue
		}
		end := i + 1
		for end < len(s) && !isURLEnd(s[end]) {
			end++
		}
		if end == i+1 {
			continue
		}
		start := i - 1
		for start > 0 && !isURLEnd(s[start-1]) {
			start--
		}
		before, query := s[start:i], s[i+1:end]
		if !strings.Contains(before, "://") && !strings.HasPrefix(before, "/") && !strings.Contains(query, "=") {
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last : i+1])
		b.WriteString(redacted)
		last = end
		i = end - 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// isURLEnd reports whether c ends a URL in running text.
func isURLEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}
