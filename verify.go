package gwtransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Errors of a non-streamed 2xx response that the gateway read before
// handing it over (see [WithMaxVerifiedBody]). Each fails the attempt as a
// 5xx would under [DefaultPolicy] (a retry of the same target, then the
// next target; a breaker failure), is the Err of its [Attempt], and is
// reached by errors.Is through the final [*Error]. The caller never
// receives such a body as a success.
var (
	// ErrResponseTruncated: the body ended before it was complete: before
	// its Content-Length, in the middle of a chunk, or by a reset.
	ErrResponseTruncated = errors.New("gwtransport: response body ended before it was complete")
	// ErrResponseIdle: a read of the body waited on the provider longer
	// than the body idle limit (WithBodyIdle).
	ErrResponseIdle = errors.New("gwtransport: response body stalled past the idle limit")
	// ErrResponseMalformed: the body is not valid JSON while its
	// Content-Type says JSON (its media type contains "json", in any case:
	// application/json, +json, application/jsonl...), or while it starts
	// like JSON (its first byte after white space is '{' or '[') and its
	// Content-Type is absent or not a binary type (audio, image, video,
	// font, model, application/octet-stream), whatever its Content-Type
	// and Content-Encoding (other than a compression) say. A JSON
	// sequence type (JSON Lines, NDJSON, json-seq) must hold one value or
	// more, each valid.
	ErrResponseMalformed = errors.New("gwtransport: response body is not the JSON it says it is")
	// ErrResponseFailed: a 2xx body read as JSON (see
	// ErrResponseMalformed; also a valid JSON body of any other type, and
	// for a JSON sequence its first value) is an object with a top-level
	// "error" member that is not null: an error in band. Its code and type
	// are read as an error response's ([Outcome].Code, Type, Message): a
	// content-policy refusal fails fast, context_length_exceeded,
	// model_not_found and insufficient_quota fail over, anything else is
	// retried like a 5xx. Unless the policy fails fast on it, such a body
	// is never handed to the caller; when it does, the caller gets the
	// provider's body (keys masked) with the error status it implies in
	// place of the 2xx (400 for a content-policy refusal, see
	// [HeaderStatusRewritten]), so that SDKs raise it as an API error.
	ErrResponseFailed = errors.New("gwtransport: 2xx response carries an error")
)

// brokenBody reports whether err says a 2xx response's body could not be
// used (cut, stalled, malformed): no usable response arrived.
func brokenBody(err error) bool {
	return errors.Is(err, ErrResponseTruncated) || errors.Is(err, ErrResponseIdle) || errors.Is(err, ErrResponseMalformed)
}

// unusable reports whether err says a 2xx response could not be handed
// over: its body is broken, or an error in band.
func unusable(err error) bool {
	return brokenBody(err) || errors.Is(err, ErrResponseFailed)
}

// verifyInitial is the buffer a body of unknown length starts with.
const verifyInitial = 16 << 10

// verifyFirstAlloc bounds the first allocation for a body of declared
// length: a body up to the default bound is read into one exact
// allocation; a larger declared one grows as it actually arrives.
const verifyFirstAlloc = DefaultMaxVerifiedBody + 1

// verify reads a non-streamed 2xx response to its end before it is handed
// over, within s.verifyMax bytes and with each read bounded by s.bodyIdle.
// On success res is complete, in memory, with an exact length, its
// trailers gated (they exist once the body reached its end), and the
// attempt's context cancelled; a body over the bound is handed over as the
// bytes read so far followed by the rest, unverified. bad reports an
// attempt failure: o is its outcome, and f, for an in-band error, the
// response to keep (its body is the provider's answer, its status the one
// inBandStatus gives it when it is handed over). cancel ends the
// attempt's context; ctx is the caller's.
func verify(ctx context.Context, res *http.Response, s *settings, cancel context.CancelFunc, wd *watchdog, target string) (o Outcome, f *failure, bad bool) {
	limit := s.verifyMax
	if limit <= 0 || res.ContentLength > limit {
		return o, nil, false // not verified: the response is handed over as it is
	}
	// The buffer never grows past the bound and one spare byte (which reads
	// the end), and a declared length buys at most verifyFirstAlloc bytes
	// at once: a provider's Content-Length is a claim, not a promise.
	ceiling := limit + 1
	if ceiling < limit {
		ceiling = limit // the bound is the largest int64
	}
	size := int64(verifyInitial)
	if res.ContentLength >= 0 {
		size = min(res.ContentLength+1, verifyFirstAlloc)
	}
	buf := make([]byte, 0, min(size, ceiling))

	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit && !wd.idled() {
				break // larger than the bound: handed over unverified
			}
			if wd.idled() {
				// The idle limit fired as the last read returned: the
				// context is gone, the rest cannot be read.
				res.Body.Close()
				return Outcome{Status: res.StatusCode, Header: res.Header,
					Err: fmt.Errorf("%w (%s) after %d bytes", ErrResponseIdle, s.bodyIdle, len(buf))}, nil, true
			}
			grown := make([]byte, len(buf), min(int64(2*cap(buf)), ceiling))
			copy(grown, buf)
			buf = grown
		}
		wd.readStart(s.bodyIdle) // the attempt's watchdog bounds the read
		n, err := res.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		wd.readDone() // if it fired, the context is gone: the next read says so
		if err == io.EOF {
			return verified(res, buf, cancel, target)
		}
		if err == nil {
			continue
		}
		res.Body.Close()
		o = Outcome{Status: res.StatusCode, Header: res.Header}
		switch {
		case ctx.Err() != nil:
			// The caller gave up: that says nothing about the target.
			o.Status, o.Err = 0, ctx.Err()
		case wd.idled():
			o.Err = fmt.Errorf("%w (%s) after %d bytes", ErrResponseIdle, s.bodyIdle, len(buf))
		default:
			o.Err = fmt.Errorf("%w after %d%s bytes: %w", ErrResponseTruncated, len(buf), of(res.ContentLength), err)
		}
		return o, nil, true
	}
	// More than the bound: the bytes read so far, then the rest, each byte
	// once.
	res.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), res.Body), res.Body}
	return o, nil, false
}

// of renders " of n" for a known length.
func of(n int64) string {
	if n < 0 {
		return ""
	}
	return " of " + strconv.FormatInt(n, 10)
}

// verified checks a body read to its end and makes it the response's.
func verified(res *http.Response, body []byte, cancel context.CancelFunc, target string) (Outcome, *failure, bool) {
	res.Body.Close() // at its end: the trailers are filled in, and gated
	cancel()         // nothing is left to read upstream
	o := Outcome{Status: res.StatusCode, Header: res.Header}
	if check, strict, seq := jsonReading(res, body); check {
		value, ok := body, validJSON(body)
		if seq {
			value, ok = firstValue(body)
		}
		switch {
		case !ok && strict:
			o.Err = fmt.Errorf("%w (%d bytes, Content-Type %q)", ErrResponseMalformed, len(body), contentType(res.Header))
			return o, nil, true
		case ok && inBandError(value):
			parseErrorBody(&o, value)
			if o.Code == "" && o.Type == "" && o.Message == "" {
				o.Message = "error member"
			}
			o.Err = ErrResponseFailed
			res.Body = http.NoBody
			return o, &failure{res: res, body: body, target: target, truncated: len(body) > maxErrorBody,
				status: inBandStatus(o)}, true
		}
	}
	mb := &memBody{b: body}
	mb.Reset(body)
	res.Body = mb
	res.ContentLength = int64(len(body))
	res.TransferEncoding = nil
	res.Header.Del("Transfer-Encoding")
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return o, nil, false
}

// jsonReading says how a verified body is read, at least as broadly as
// the SDKs read it (go-openai decodes any 200 as JSON whatever its
// Content-Type; openai-go any media type containing "application/json" or
// ending in +json; neither minds a Content-Encoding net/http does not
// decode, such as "UTF-8"). check: the body is parsed, and valid JSON
// with a top-level error is an error in band. It is, when the Content-Type
// says JSON (its media type contains "json") or the body looks like JSON
// (its first byte after white space is '{' or '['), whatever the
// Content-Type and Content-Encoding say. strict: a body that is not valid
// JSON is [ErrResponseMalformed]; it is when the Content-Type says JSON, or
// when the body looks like JSON and its Content-Type is not a binary one
// (audio, image, video, font, model, application/octet-stream: such a body
// is malformed JSON only by accident, and is handed over). seq: the
// media type is a JSON sequence (JSON Lines, NDJSON, json-seq): every value
// must be valid, and the first is the one judged (the SDKs decode the first
// value). Not read: a body compressed by a coding the caller decodes itself
// (gzip, deflate, br, zstd, compress), and an empty 204 or 205.
func jsonReading(res *http.Response, body []byte) (check, strict, seq bool) {
	if compressed(res.Header) {
		return false, false, false
	}
	if len(body) == 0 && (res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusResetContent) {
		return false, false, false
	}
	ct := contentType(res.Header)
	says := strings.Contains(ct, "json")
	i := skipSpace(body, 0)
	looks := i < len(body) && (body[i] == '{' || body[i] == '[')
	seq = says && (strings.Contains(ct, "jsonl") || strings.Contains(ct, "ndjson") ||
		strings.Contains(ct, "json-seq") || strings.Contains(ct, "ldjson"))
	return says || looks, says || looks && !binaryType(ct), seq
}

// compressed reports whether a Content-Encoding names a compression: the
// body is still compressed (net/http decodes only what it asked for
// itself), and its reader decodes it. Any other coding ("identity", or a
// charset sent by mistake such as "UTF-8") changes nothing: the SDKs read
// the bytes as they are.
func compressed(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(c)) {
			case "gzip", "x-gzip", "deflate", "br", "zstd", "compress", "x-compress":
				return true
			}
		}
	}
	return false
}

// binaryType reports whether a media type is of binary content, which
// starts like JSON only by accident.
func binaryType(ct string) bool {
	top, _, _ := strings.Cut(ct, "/")
	switch top {
	case "audio", "image", "video", "font", "model":
		return true
	}
	return ct == "application/octet-stream"
}

// firstValue checks a JSON sequence (values separated by white space, a
// record separator for json-seq) and returns its first value; ok is false
// when the body holds no value or one that is not valid JSON.
func firstValue(body []byte) (first []byte, ok bool) {
	body = bytes.ReplaceAll(body, []byte{0x1e}, []byte{' '}) // RFC 7464 record separators
	dec := json.NewDecoder(bytes.NewReader(body))
	for n := 0; ; n++ {
		var v json.RawMessage
		if err := dec.Decode(&v); err == io.EOF {
			return first, n > 0
		} else if err != nil {
			return nil, false
		}
		if n == 0 {
			first = v
		}
	}
}

// inBandStatus is the status an error in band is handed to the caller
// with, in place of the provider's 2xx, so that an SDK raises it as the
// API error it is (an SDK reads a 2xx with no choices as a success): the
// error's own numeric code when it is an HTTP error status (as some
// routers send, "code": 429), else the status its classification implies:
// 400 for a content-policy refusal, a context too long or an
// invalid_request_error, 401 authentication_error, 403 permission_error,
// 404 model_not_found or not_found_error, 429 insufficient_quota or
// rate_limit_error, and 502 Bad Gateway for any other (a server_error,
// say: the provider answered with an error the gateway cannot qualify).
func inBandStatus(o Outcome) int {
	if n, err := strconv.Atoi(o.Code); err == nil && n >= 400 && n <= 599 {
		return n
	}
	switch {
	case o.ContentPolicy(), o.ContextLengthExceeded():
		return http.StatusBadRequest
	case o.ModelNotFound():
		return http.StatusNotFound
	case o.QuotaExhausted():
		return http.StatusTooManyRequests
	}
	switch o.Type {
	case "invalid_request_error":
		return http.StatusBadRequest
	case "authentication_error":
		return http.StatusUnauthorized
	case "permission_error":
		return http.StatusForbidden
	case "not_found_error":
		return http.StatusNotFound
	case "rate_limit_error", "rate_limit_exceeded":
		return http.StatusTooManyRequests
	}
	return http.StatusBadGateway
}

// rewriteStatus gives an error in band handed to the caller the status
// inBandStatus chose, and names the provider's own in
// [HeaderStatusRewritten]. It runs after the gateway's headers are set
// (they drop any X-Gwtransport-* header the provider sent).
func rewriteStatus(res *http.Response, status int) {
	if status == 0 || status == res.StatusCode {
		return
	}
	res.Header.Set(HeaderStatusRewritten, strconv.Itoa(res.StatusCode))
	res.StatusCode = status
	res.Status = strconv.Itoa(status) + " " + http.StatusText(status)
}

// contentType returns the media type of a Content-Type header, lower case,
// without parameters.
func contentType(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// inBandError reports whether a valid JSON body is an object with a
// top-level "error" member that is not null, under any spelling
// encoding/json matches to "error" ("Error", "ERROR"). A null error is a
// success's (the Responses API sends "error": null).
func inBandError(body []byte) bool {
	found := false
	_ = eachMember(body, func(name []byte, v span) error {
		if key, _ := guardKey(name); key == keyError && string(body[v.start:v.end]) != "null" {
			found = true
		}
		return nil
	})
	return found
}

// verifiedFailure is DefaultPolicy's action for a verified non-streamed
// 2xx that failed: a broken body is retried as a 5xx is; an error in band
// is judged by its code and type as the same error with a 5xx status.
func verifiedFailure(o Outcome) Action {
	switch {
	case !errors.Is(o.Err, ErrResponseFailed):
		return RetrySame
	case o.ContentPolicy():
		return FailFast
	case o.ContextLengthExceeded(), o.ModelNotFound(), o.QuotaExhausted():
		return NextTarget
	}
	return RetrySame
}

// memBody is a verified body, in memory.
type memBody struct {
	bytes.Reader
	b []byte // the body, read by an Observer (observer.go)
}

// Close does nothing: the upstream body is closed already.
func (*memBody) Close() error { return nil }
