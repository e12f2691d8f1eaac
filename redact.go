package gwtransport

import (
	"net/url"
	"strings"
)

// redacted replaces a query string wherever the gateway would print one.
const redacted = "REDACTED"

// redactError returns err with every URL query string removed from its
// message. Query strings may hold secrets (an Azure Functions "code", a
// signed URL, a key some proxies take as a parameter), and the errors of
// an attempt reach Attempt.Err, the X-Gwtransport-Fallback-Reason header,
// Error(), events and logs.
//
// The chain is kept: errors.Is and errors.As see the same errors as
// before. A *url.Error (what http.Client.Do returns, with the full URL) is
// replaced by a copy whose URL has no query, so errors.As reaches the copy;
// any other error whose message shows a query is wrapped in one whose
// message does not.
func redactError(err error) error {
	if err == nil {
		return nil
	}
	if ue, ok := err.(*url.Error); ok {
		if u := redactURL(ue.URL); u != ue.URL {
			err = &url.Error{Op: ue.Op, URL: u, Err: ue.Err}
		}
	}
	msg := err.Error()
	if clean := redactQueries(msg); clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

// redactedError is an error whose message had a query string removed; it
// unwraps to the original.
type redactedError struct {
	msg string
	err error
}

// Error returns the message without query strings.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *redactedError) Unwrap() error { return e.err }

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
