package gwtransport

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Action is what the gateway does after an attempt.
type Action int

const (
	// Succeed hands the response to the caller.
	Succeed Action = iota
	// RetrySame waits (backoff or Retry-After) and tries the same target
	// again, while its retries last; then it fails over.
	RetrySame
	// NextTarget moves to the next target at once, without waiting.
	NextTarget
	// FailFast returns the provider's response to the caller (unchanged
	// but for the secrets the gateway masks and its own headers): the
	// request itself is at fault and no target would accept it. After
	// another target failed it means "next target": a fallback's refusal
	// never hides the earlier failure.
	FailFast
)

// String returns the action's name.
func (a Action) String() string {
	switch a {
	case Succeed:
		return "succeed"
	case RetrySame:
		return "retry"
	case NextTarget:
		return "next-target"
	case FailFast:
		return "fail-fast"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Outcome describes one attempt for a [Policy] to judge.
type Outcome struct {
	// Target is the "<provider>/<model>" attempted.
	Target string
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Header is the response header, nil when no response arrived.
	Header http.Header
	// Code, Type and Message come from the provider's error body (OpenAI,
	// Azure, Mistral and similar shapes), or from an SSE error event.
	Code, Type, Message string
	// Err is the transport error, when no usable response arrived; for a
	// non-streamed 2xx, why its body was not handed over
	// ([ErrResponseTruncated], [ErrResponseIdle], [ErrResponseMalformed],
	// [ErrResponseFailed]).
	Err error
	// Timeout reports that the attempt's own timeout (or the stream's
	// first-event limit) fired.
	Timeout bool
}

// ContextLengthExceeded reports whether the provider rejected the request as
// too long for the model's context window.
func (o Outcome) ContextLengthExceeded() bool {
	msg := strings.ToLower(o.Message)
	return o.Code == "context_length_exceeded" || o.Type == "context_length_exceeded" ||
		strings.Contains(msg, "maximum context length") || strings.Contains(msg, "context window")
}

// ModelNotFound reports whether the provider does not serve the model (a
// 400 model_not_found, say): the target is at fault, not the request.
func (o Outcome) ModelNotFound() bool {
	return o.Code == "model_not_found" || o.Type == "model_not_found" || o.Code == "DeploymentNotFound"
}

// QuotaExhausted reports whether the provider refused for an exhausted
// quota or billing limit (OpenAI's 429 insufficient_quota): waiting does
// not help.
func (o Outcome) QuotaExhausted() bool {
	return o.Code == "insufficient_quota" || o.Type == "insufficient_quota"
}

// ContentPolicy reports whether the provider refused the content itself
// (OpenAI's content_policy_violation, Azure's content_filter).
func (o Outcome) ContentPolicy() bool {
	for _, s := range [...]string{o.Code, o.Type} {
		switch s {
		case "content_policy_violation", "content_filter", "ResponsibleAIPolicyViolation", "content_policy":
			return true
		}
	}
	return false
}

// Policy decides the [Action] after an attempt. It must be safe for
// concurrent use.
type Policy func(Outcome) Action

// DefaultPolicy is the gateway's error classification:
//
//   - 2xx: Succeed.
//   - network errors before the response headers, 408, 409, 429 and 5xx:
//     RetrySame (then the next target when the retries are used up);
//   - the attempt's own timeout, 401, 402, 403, 404, 3xx, a 4xx with
//     context_length_exceeded or model_not_found, a 429 with
//     insufficient_quota, an error event at the start of a stream:
//     NextTarget at once;
//   - an informational status as the final answer (an unsolicited 101):
//     NextTarget at once, its body unread;
//   - content-policy refusals and every other 4xx: FailFast;
//   - a non-streamed 2xx whose body is cut, stalls or is malformed
//     ([ErrResponseTruncated], [ErrResponseIdle], [ErrResponseMalformed]):
//     RetrySame, as a 5xx; one whose body is an error in band
//     ([ErrResponseFailed]): as that error with a 5xx status (see
//     [ErrResponseFailed]).
func DefaultPolicy(o Outcome) Action {
	switch {
	case o.Status == 0:
		if o.Timeout {
			return NextTarget
		}
		return RetrySame
	case o.Status >= 200 && o.Status < 300:
		if o.Err != nil && (brokenBody(o.Err) || errors.Is(o.Err, ErrResponseFailed)) {
			return verifiedFailure(o)
		}
		if o.Code != "" || o.Type != "" || o.Message != "" || o.Err != nil {
			// A 200 whose stream opened with an error event or broke
			// before its first event.
			if o.ContentPolicy() {
				return FailFast
			}
			return NextTarget
		}
		return Succeed
	case o.Status > 0 && o.Status < 200:
		// An informational status as the final answer (an unsolicited
		// 101): the target does not speak HTTP as it should.
		return NextTarget
	case o.Status >= 300 && o.Status < 400:
		return NextTarget
	case o.Status == http.StatusTooManyRequests && o.QuotaExhausted():
		return NextTarget
	case o.Status == http.StatusRequestTimeout, o.Status == http.StatusConflict,
		o.Status == http.StatusTooManyRequests, o.Status >= 500:
		return RetrySame
	case o.ContentPolicy():
		return FailFast
	case o.Status == http.StatusUnauthorized, o.Status == http.StatusPaymentRequired,
		o.Status == http.StatusForbidden, o.Status == http.StatusNotFound:
		return NextTarget
	case o.ContextLengthExceeded(), o.ModelNotFound():
		return NextTarget
	default:
		return FailFast
	}
}

// parseErrorBody fills o.Code, o.Type and o.Message from an error body in
// any of the shapes OpenAI-compatible providers send:
// {"error":{"code","type","message","innererror":{"code"}}},
// {"error":"text"}, or {"code","type","message"} at the top level, or the
// first element of an array of these (Gemini's OpenAI-compatible
// endpoint). It reads only what it is given (callers bound it), decodes
// nothing else, and ignores bodies that are neither.
func parseErrorBody(o *Outcome, body []byte) {
	if i := skipSpace(body, 0); i < len(body) && body[i] == '[' {
		j := skipSpace(body, i+1)
		if j >= len(body) || body[j] != '{' {
			return
		}
		end, err := skipContainer(body, j)
		if err != nil {
			return
		}
		body = body[j:end]
	}
	var top, inner Outcome
	var errObj []byte
	err := eachMember(body, func(name []byte, v span) error {
		val := body[v.start:v.end]
		switch errorField(name) {
		case "error":
			if val[0] == '"' {
				top.Message = jsonText(val)
			} else if val[0] == '{' {
				errObj = val
			}
		default:
			setErrorField(&top, name, val)
		}
		return nil
	})
	if err != nil {
		return
	}
	if errObj != nil {
		_ = eachMember(errObj, func(name []byte, v span) error {
			val := errObj[v.start:v.end]
			if errorField(name) == "innererror" && val[0] == '{' {
				_ = eachMember(val, func(n []byte, iv span) error {
					if errorField(n) == "code" {
						inner.Code = jsonText(val[iv.start:iv.end])
					}
					return nil
				})
				return nil
			}
			setErrorField(&top, name, val)
			return nil
		})
	}
	o.Code, o.Type, o.Message = top.Code, top.Type, top.Message
	if inner.Code != "" && !o.ContentPolicy() && inner.ContentPolicy() {
		// Azure puts the content filter verdict one level down.
		o.Code = inner.Code
	}
}

// errorField returns the decoded name of an error body member.
func errorField(name []byte) string {
	s, err := decodeString(name)
	if err != nil {
		return ""
	}
	return string(s)
}

func setErrorField(o *Outcome, name, val []byte) {
	switch errorField(name) {
	case "code":
		o.Code = jsonText(val)
	case "type":
		o.Type = jsonText(val)
	case "message":
		o.Message = jsonText(val)
	}
}

// jsonText renders a JSON string or number value as text; other values
// (null, objects) render as "".
func jsonText(val []byte) string {
	switch {
	case len(val) == 0:
		return ""
	case val[0] == '"':
		s, err := decodeString(val)
		if err != nil {
			return ""
		}
		return string(s)
	case val[0] == '-' || (val[0] >= '0' && val[0] <= '9'):
		return string(val)
	}
	return ""
}

// RetryAfter returns the wait a response asks for: "retry-after-ms"
// (milliseconds, digits with an optional decimal fraction: "250",
// "1.5"), else "Retry-After" as delta-seconds (digits only, RFC 9110) or
// as an HTTP date measured from now. Anything else is ignored: no sign, no
// exponent, no hex, no underscore, no Inf or NaN, no space inside. ok is
// false when neither header is present and valid.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if h == nil {
		return 0, false
	}
	if d, ok := parseMillis(trimOWS(h.Get("Retry-After-Ms"))); ok {
		return d, true
	}
	v := trimOWS(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if isDecimal(v, false) {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs > 1e9 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

// parseMillis reads retry-after-ms: 1*DIGIT ["." 1*DIGIT] milliseconds,
// below 10^12, exactly (to the nanosecond, truncated).
func parseMillis(v string) (time.Duration, bool) {
	if !isDecimal(v, true) {
		return 0, false
	}
	whole, frac, _ := strings.Cut(v, ".")
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 12 {
		return 0, false
	}
	ms, _ := strconv.ParseInt("0"+whole, 10, 64)
	if ms >= 1e12 {
		return 0, false
	}
	frac = (frac + "000000")[:6] // nanoseconds of the fraction
	ns, _ := strconv.ParseInt(frac, 10, 64)
	return time.Duration(ms)*time.Millisecond + time.Duration(ns), true
}

// trimOWS removes the optional white space (spaces and tabs) around a
// header value.
func trimOWS(v string) string { return strings.Trim(v, " \t") }

// isDecimal reports whether v is 1*DIGIT, or with fraction 1*DIGIT
// ["." 1*DIGIT].
func isDecimal(v string, fraction bool) bool {
	digits, dot := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && fraction && !dot && digits > 0:
			dot, digits = true, 0
		default:
			return false
		}
	}
	return digits > 0
}

// errTimeout is the cause recorded when an attempt's own timeout fires.
// It reports Timeout() true, as a network timeout does, so that a tracer
// classifying errors by that method sees it as one.
var errTimeout error = timeoutError{}

// timeoutError is errTimeout's type.
type timeoutError struct{}

func (timeoutError) Error() string { return "attempt timed out" }

// Timeout reports that the error is a timeout.
func (timeoutError) Timeout() bool { return true }
