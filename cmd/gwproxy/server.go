package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwtransport/gwtransport"
)

// Server is the proxy: an http.Handler over the engine, with its
// configuration, keys and metrics.
type Server struct {
	path     string                          // the configuration file
	listen   string                          // -listen, overriding proxy.listen
	env      func(string) (string, bool)     // the environment (keys, provider keys)
	log      *slog.Logger                    // JSON logs
	upstream http.RoundTripper               // the engines' base transport (a guard)
	state    atomic.Pointer[state]           // the current configuration
	metrics  *metrics                        // Prometheus
	draining atomic.Bool                     // SIGTERM received: /readyz says 503
	now      func() time.Time                // the clock of the logs and metrics
	wrap     func(http.Handler) http.Handler // telemetry around the API handler, if any
	stopBy   time.Time                       // SIGTERM's time plus shutdown_timeout (set by shutdown)
	running  handlers                        // the handlers running (shutdown waits for the ones it cut)

	// engineOptions are more options for every engine (tests inject a
	// clock, the telemetry its hooks).
	engineOptions []gwtransport.Option
}

// serverConfig is what newServer needs.
type serverConfig struct {
	path     string
	data     []byte // the configuration, instead of reading path
	listen   string
	env      func(string) (string, bool)
	log      *slog.Logger
	base     http.RoundTripper // the transport to providers (default: a clone of http.DefaultTransport)
	engine   []gwtransport.Option
	telemetr *telemetry
}

// newServer loads the configuration and builds the proxy.
func newServer(c serverConfig) (*Server, error) {
	if c.env == nil {
		c.env = os.LookupEnv
	}
	if c.log == nil {
		c.log = newLogger(slog.LevelInfo)
	}
	if c.base == nil {
		c.base = upstreamTransport()
	}
	s := &Server{path: c.path, listen: c.listen, env: c.env, log: c.log, upstream: guard{next: c.base}, now: time.Now, engineOptions: c.engine}
	s.metrics = newMetrics(func() []gwtransport.TargetStats {
		if st := s.state.Load(); st != nil {
			return st.tr.Stats()
		}
		return nil
	})
	if c.telemetr != nil {
		c.telemetr.install(s)
	}
	data := c.data
	if data == nil {
		var err error
		if data, err = os.ReadFile(c.path); err != nil {
			return nil, fmt.Errorf("gwproxy: config: %w", err)
		}
	}
	st, err := s.loadState(data)
	if err != nil {
		if c.path != "" {
			return nil, fmt.Errorf("%w (in %s)", err, c.path)
		}
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// The API's operations, by path.
var operations = map[string]string{
	"/v1/chat/completions": "chat/completions",
	"/v1/responses":        "responses",
	"/v1/embeddings":       "embeddings",
	"/v1/completions":      "completions",
}

// Handler is the proxy's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.draining.Load() || s.state.Load() == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "draining\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	var api http.Handler = http.HandlerFunc(s.serveAPI)
	if s.wrap != nil {
		api = s.wrap(api)
	}
	mux.Handle("/v1/", api)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{Message: "gwproxy: no such endpoint: " + r.URL.Path, Type: "invalid_request_error", Code: "not_found"})
	})
	return s.boundBody(mux)
}

// boundBody bounds the body of every request, on every path, by
// proxy.read_timeout: a client that sends headers and then stalls its body
// holds its connection no longer than that, whether or not the handler
// reads the body. net/http discards an unread body after the handler (to
// reuse the connection), and before writing the answer: every request
// with a body is answered with "Connection: close" unless the handler read
// the body to its end (serveAPI lifts it then), and the discard after the
// answer gives up at the deadline.
func (s *Server) boundBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			d := time.Duration(s.state.Load().proxy.ReadTimeout)
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// apiError is the "error" object of an OpenAI-shaped error body.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
	// Attempts name every attempt of a failed request (gwproxy's
	// addition; clients ignore unknown fields).
	Attempts []attemptJSON `json:"attempts,omitempty"`
}

// attemptJSON is one attempt of a failed request.
type attemptJSON struct {
	Target string `json:"target"`
	Try    int    `json:"try"`
	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	// Summary is the attempt as the engine renders it (never a key, nor
	// a query string).
	Summary string `json:"summary"`
}

func attemptsJSON(as []gwtransport.Attempt) []attemptJSON {
	out := make([]attemptJSON, 0, len(as))
	for _, a := range as {
		out = append(out, attemptJSON{Target: a.Target, Try: a.Try, Status: a.Status, Code: a.Code, Summary: a.String()})
	}
	return out
}

// writeError writes an OpenAI-shaped error.
func writeError(w http.ResponseWriter, status int, e apiError) {
	if e.Code == "" {
		e.Code = nil
	}
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// credentialHeaders are where clients put their proxy key; none of them
// reaches a provider.
var credentialHeaders = []string{"Authorization", "Api-Key", "X-Api-Key"}

// presentedKey is the proxy key a request carries, if any.
func presentedKey(h http.Header) (string, bool) {
	if v := h.Get("Authorization"); v != "" {
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		return strings.TrimSpace(tok), true
	}
	for _, name := range credentialHeaders[1:] {
		if v := h.Get(name); v != "" {
			return v, true
		}
	}
	return "", false
}

// authenticate finds the proxy key a request carries. It compares the
// key's hash with every configured one in constant time, all of them
// every time.
func (st *state) authenticate(h http.Header) (*proxyKey, string) {
	k, ok := presentedKey(h)
	if !ok || k == "" {
		return nil, "missing"
	}
	sum := hashKey(k)
	var found *proxyKey
	for i := range st.keys {
		if subtle.ConstantTimeCompare(sum[:], st.keys[i].hash[:]) == 1 && found == nil {
			found = &st.keys[i]
		}
	}
	if found == nil {
		return nil, "invalid"
	}
	return found, ""
}

// allows reports whether the key may use the route.
func (k *proxyKey) allows(route string) bool { return k.routes == nil || k.routes[route] }

// forwardedHeaders are the caller headers an outgoing request keeps:
// nothing else of the caller's reaches a provider (its proxy key, cookies,
// client telemetry).
var forwardedHeaders = []string{"Accept", "Openai-Beta", "Idempotency-Key", gwtransport.HeaderPrefer}

// outgoingHeader is the header of the request handed to the engine: the
// allowlisted caller headers and a JSON content type only, so that no
// proxy key (Authorization, api-key, x-api-key), cookie or other caller
// header reaches a provider (the engine, too, drops credentials bound for
// another provider).
func outgoingHeader(in http.Header) http.Header {
	out := http.Header{}
	for _, h := range forwardedHeaders {
		if vs := in.Values(h); len(vs) > 0 {
			out[h] = append([]string(nil), vs...)
		}
	}
	// The body was read as a JSON object, whatever the client called it
	// (curl -d sends a form's content type).
	out.Set("Content-Type", "application/json")
	return out
}

// responseHeaders are the provider's response headers handed to the
// client, besides the gateway's own X-Gwtransport-* headers.
var responseHeaders = []string{"Content-Type", "Cache-Control", "Retry-After", "X-Request-Id", "Openai-Processing-Ms"}

// reqLog collects what the access log says of a request.
type reqLog struct {
	endpoint, route, model, key, target string
	status                              int
	stream                              bool
	cut                                 string // why an answer sent with a 2xx was cut on the client's side (client_too_slow)
}

// serveAPI serves /v1/.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := s.state.Load()
	lg := reqLog{endpoint: r.URL.Path}
	ctx, clock := withClock(r.Context())
	ctx, trail := gwtransport.ContextWithTrail(ctx)
	rc := http.NewResponseController(w)
	s.metrics.inFlight.Inc()
	defer func() {
		// Runs on a panic too (a broken stream is aborted with one).
		s.metrics.inFlight.Dec()
		// net/http writes what is buffered, and a chunked answer's end,
		// after the handler: a fresh bound for it.
		s.armWrite(rc)
		total := time.Since(start)
		up := clock.Duration()
		var waits time.Duration
		for _, a := range trail.Attempts() {
			waits += a.Wait + a.CoolingWait
		}
		endpoint := lg.endpoint
		if _, ok := operations[endpoint]; !ok && endpoint != "/v1/models" {
			endpoint = "other" // bounded label values
		}
		s.metrics.requests.WithLabelValues(endpoint, lg.route, strconv.Itoa(lg.status)).Inc()
		if lg.route != "" {
			s.metrics.duration.WithLabelValues(endpoint, lg.route).Observe(total.Seconds())
			s.metrics.upstream.WithLabelValues(endpoint, lg.route).Observe(up.Seconds())
			s.metrics.overhead.WithLabelValues(endpoint, lg.route).Observe(max(0, total-up-waits).Seconds())
		}
		trace.SpanFromContext(ctx).SetAttributes(attribute.Int("http.response.status_code", lg.status), attribute.String("gwtransport.route", lg.route))
		// Never the key, nor the query string.
		args := []any{"method", r.Method, "path", r.URL.Path, "status", lg.status, "key", lg.key,
			"model", lg.model, "route", lg.route, "target", lg.target, "attempts", len(trail.Attempts()),
			"stream", lg.stream, "duration_ms", total.Milliseconds(), "upstream_ms", up.Milliseconds()}
		if lg.cut != "" {
			args = append(args, "error", lg.cut)
		}
		s.log.Info("gwproxy request", args...)
	}()
	fail := func(status int, e apiError) {
		lg.status = status
		s.armWrite(rc)
		writeError(w, status, e)
	}
	key, why := st.authenticate(r.Header)
	if key == nil {
		s.metrics.authFails.WithLabelValues(why).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="gwproxy"`)
		fail(http.StatusUnauthorized, apiError{Message: "gwproxy: " + why + " proxy key: send it as Authorization: Bearer <key>", Type: "invalid_request_error", Code: "invalid_api_key"})
		return
	}
	lg.key = key.name
	if r.URL.Path == "/v1/models" {
		if r.Method != http.MethodGet {
			fail(http.StatusMethodNotAllowed, apiError{Message: "gwproxy: use GET for /v1/models", Type: "invalid_request_error"})
			return
		}
		lg.status = http.StatusOK
		s.armWrite(rc)
		s.serveModels(w, st, key)
		return
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/models/"); ok && r.Method == http.MethodGet {
		s.armWrite(rc)
		lg.status = s.serveModel(w, st, key, id)
		return
	}
	op, ok := operations[r.URL.Path]
	if !ok {
		fail(http.StatusNotFound, apiError{Message: "gwproxy: no such endpoint: " + r.URL.Path, Type: "invalid_request_error", Code: "not_found"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, apiError{Message: "gwproxy: use POST for " + r.URL.Path, Type: "invalid_request_error"})
		return
	}
	body, status, err := s.readBody(w, r, st.proxy)
	if err != nil {
		fail(status, apiError{Message: err.Error(), Type: "invalid_request_error"})
		return
	}
	// The model and the stream flag as the engine reads them: the route
	// checked below is the route the engine serves.
	head, err := readHead(body)
	if err != nil {
		fail(http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Param: "model"})
		return
	}
	model := head.model
	if !head.modelIsString || model == "" {
		fail(http.StatusBadRequest, apiError{Message: "gwproxy: the body has no string \"model\"", Type: "invalid_request_error", Param: "model"})
		return
	}
	lg.model, lg.stream = model, head.stream
	route, ok := st.names[model]
	if !ok {
		fail(http.StatusNotFound, apiError{Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model), Type: "invalid_request_error", Param: "model", Code: "model_not_found"})
		return
	}
	if !key.allows(route) {
		s.metrics.authFails.WithLabelValues("route").Inc()
		fail(http.StatusForbidden, apiError{Message: fmt.Sprintf("gwproxy: proxy key %q may not use route %q", key.name, route), Type: "invalid_request_error", Param: "model", Code: "model_not_allowed"})
		return
	}
	if head.stream && !r.ProtoAtLeast(1, 1) {
		fail(http.StatusHTTPVersionNotSupported, apiError{Message: "gwproxy: streaming needs HTTP/1.1 or later: an HTTP/1.0 answer of unknown length ends at the connection's close, so a broken stream would look complete (behind nginx: proxy_http_version 1.1)", Type: "invalid_request_error", Param: "stream", Code: "http_version_not_supported"})
		return
	}
	lg.route = route
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, originBase+"/"+op, bytes.NewReader(body))
	if err != nil {
		fail(http.StatusInternalServerError, apiError{Message: "gwproxy: " + err.Error(), Type: "server_error"})
		return
	}
	out.Header = outgoingHeader(r.Header)
	res, err := st.tr.RoundTrip(out)
	if err != nil {
		status, e := engineError(err, trail.Attempts())
		if ra, ok := gwtransport.RetryAfterOf(err); ok {
			w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		}
		if r.Context().Err() != nil {
			status = 499 // the client went away; nothing to write to
		}
		fail(status, e)
		return
	}
	defer res.Body.Close()
	lg.target = res.Header.Get(gwtransport.HeaderTarget)
	lg.status = res.StatusCode
	copyHeaders(w.Header(), res.Header)
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		// Any final answer but a 2xx is a failure: a 3xx too (the engine
		// follows no redirect and fails over from one).
		s.armWrite(rc)
		lg.status = s.writeFailure(w, res, route, trail.Attempts())
		return
	}
	// A stream as the engine decides it: a 2xx answer to a request that
	// asked for one, whatever its Content-Type (the engine guards it as a
	// stream, and a break ends it with an error event).
	stream := head.stream
	if stream {
		// A reverse proxy in front (nginx) must not buffer the events.
		w.Header().Set("X-Accel-Buffering", "no")
	}
	if !stream {
		if res.ContentLength < 0 && !r.ProtoAtLeast(1, 1) {
			// An HTTP/1.0 body of unknown length ends at the connection's
			// close: an abort would pass for the end. Read it whole first
			// (it is over max_verified_body, or unverified), and send its
			// length.
			b, err := io.ReadAll(io.LimitReader(res.Body, http10BufferMax+1))
			if err != nil || len(b) > http10BufferMax {
				why := fmt.Sprintf("larger than %d bytes", http10BufferMax)
				if err != nil {
					why = "broken: " + redactError(err)
				}
				w.Header().Del("Content-Type")
				fail(http.StatusBadGateway, apiError{Message: "gwproxy: the answer has no length and is " + why + " (an HTTP/1.0 client cannot tell a cut answer from a complete one; use HTTP/1.1)", Type: "server_error", Code: "upstream_unusable", Attempts: attemptsJSON(trail.Attempts())})
				return
			}
			res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		if res.ContentLength >= 0 {
			// The exact length (the engine's, for a verified body): a
			// client sees an answer cut short as one, over HTTP/1.0 too.
			w.Header().Set("Content-Length", strconv.FormatInt(res.ContentLength, 10))
		}
	}
	w.WriteHeader(res.StatusCode)
	gone, broken := s.copyBody(w, res, trail, stream)
	if broken != nil && r.Context().Err() != nil {
		// The body broke because the client left (its cancellation
		// reached the provider's request).
		lg.status = statusClientGone
		panic(http.ErrAbortHandler)
	}
	switch {
	case broken != nil:
		// The answer was cut (a stream with an error event): a failure
		// in the metrics, the log and the server span, whatever status
		// went out first.
		lg.status = statusBroken
		span := trace.SpanFromContext(ctx)
		span.SetStatus(codes.Error, "the answer broke after its status")
		span.SetAttributes(attribute.String("error.type", "body_broken"))
		panic(http.ErrAbortHandler)
	case gone != nil:
		lg.status = statusClientGone
		if errors.Is(gone, os.ErrDeadlineExceeded) {
			// A write waited proxy.write_timeout: the client stopped
			// reading. The provider's request ends with the handler (its
			// body is closed; the failed write cancelled its context).
			lg.cut = "client_too_slow"
			span := trace.SpanFromContext(ctx)
			span.SetStatus(codes.Error, "the client did not read the answer within proxy.write_timeout")
			span.SetAttributes(attribute.String("error.type", "client_too_slow"))
			s.log.Warn("gwproxy: the client stopped reading; answer cut", "target", lg.target, "write_timeout", s.state.Load().proxy.writeTimeout().String())
		}
	}
}

// The statuses the metrics and the log give an answer that went out
// with a 2xx and did not arrive whole: cut on the provider's side (or
// by the engine: a broken stream), or by the client leaving.
const (
	statusBroken     = http.StatusBadGateway
	statusClientGone = 499
)

// http10BufferMax bounds the answer of unknown length read whole for an
// HTTP/1.0 client, so that it can be sent with its length.
const http10BufferMax = 64 << 20

// readBody reads a request body within the size limit and the body
// timeout. It returns the status to answer with on error.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, p proxyConfig) ([]byte, int, error) {
	// The deadline boundBody set stands until the body is read whole:
	// after a failure, net/http discards what is left of the body, and
	// the deadline bounds that too (the connection closes after the
	// answer).
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.MaxBodyBytes))
	if err == nil {
		// Read to its end: the connection may serve more requests, and
		// no deadline may cut the background read that watches for the
		// client leaving during a long stream.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		w.Header().Del("Connection")
	}
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("gwproxy: the body is larger than %d bytes", p.MaxBodyBytes)
	case errors.As(err, &ne) && ne.Timeout():
		return nil, http.StatusRequestTimeout, errors.New("gwproxy: the body took too long to arrive")
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("gwproxy: reading the body: %w", err)
	}
	return body, 0, nil
}

// engineError is the status and error object of a request no provider
// answered.
func engineError(err error, attempts []gwtransport.Attempt) (int, apiError) {
	e := apiError{Message: redactError(err), Type: "server_error", Attempts: attemptsJSON(attempts)}
	switch {
	case errors.Is(err, gwtransport.ErrMalformedBody):
		e.Type = "invalid_request_error"
		return http.StatusBadRequest, e
	case errors.Is(err, gwtransport.ErrNoTarget):
		e.Code = "no_target_available"
		return http.StatusServiceUnavailable, e
	case errors.Is(err, context.DeadlineExceeded):
		e.Code = "timeout"
		return http.StatusGatewayTimeout, e
	}
	e.Code = "upstream_unreachable"
	return http.StatusBadGateway, e
}

// redactError renders an engine error: the engine's *Error never shows a
// query string; any other error is summarised without its URL.
func redactError(err error) string {
	var ge *gwtransport.Error
	if errors.As(err, &ge) {
		return ge.Error()
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return "gwproxy: " + inner.Error()
		}
	}
	return err.Error()
}

// copyHeaders hands the client the provider's safe response headers and
// the gateway's own.
func copyHeaders(dst, src http.Header) {
	for _, h := range responseHeaders {
		if vs := src.Values(h); len(vs) > 0 {
			dst[h] = append([]string(nil), vs...)
		}
	}
	for k, vs := range src {
		if strings.HasPrefix(k, "X-Gwtransport-") {
			dst[k] = append([]string(nil), vs...)
		}
	}
}

// providerError is the provider's error object, as far as it has one.
type providerError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    any    `json:"code"`
	} `json:"error"`
}

// writeFailure hands the client a final failure: the provider's status
// (502 for a status that is no error, a 3xx: no client may follow a
// provider's redirect nor read it as a success), with an OpenAI-shaped
// body naming every attempt and the provider's own message, type and
// code. It returns the status written.
func (s *Server) writeFailure(w http.ResponseWriter, res *http.Response, route string, attempts []gwtransport.Attempt) int {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var pe providerError
	_ = json.Unmarshal(b, &pe)
	var sum []string
	for _, a := range attempts {
		sum = append(sum, a.String())
	}
	msg := fmt.Sprintf("gwproxy: route %q failed after %d attempt(s): %s", route, len(attempts), strings.Join(sum, "; "))
	if pe.Error.Message != "" {
		msg += ": " + pe.Error.Message
	}
	typ := pe.Error.Type
	if typ == "" {
		typ = "upstream_error"
	}
	status, code := res.StatusCode, pe.Error.Code
	if status < 400 {
		status = http.StatusBadGateway
		msg = fmt.Sprintf("gwproxy: route %q failed after %d attempt(s): %s: the provider answered %d, which is neither a success nor an error", route, len(attempts), strings.Join(sum, "; "), res.StatusCode)
		if code == nil {
			code = "upstream_bad_status"
		}
	}
	w.Header().Del("Content-Length")
	writeError(w, status, apiError{Message: msg, Type: typ, Param: pe.Error.Param, Code: code, Attempts: attemptsJSON(attempts)})
	return status
}

// copyBody streams a response to the client, flushing as it goes: a
// stream goes out event by event. A stream's bytes are forwarded up to
// the end of its last complete event (its blank line) only: the bytes of
// an event still unterminated are held back until its blank line
// arrives. When the body breaks (the engine's error after a committed
// stream, a provider gone), the held-back bytes are dropped, a stream
// ends with an SSE error event, and then the connection is aborted: the
// client never sees a clean end, and never an event the provider did not
// finish (a "data: [DONE]" line cut before its blank line is not
// completed into a [DONE] event).
//
// Each write and flush is bounded by proxy.write_timeout (armWrite).
//
// It reports a client gone (the error of the write that failed: a
// deadline's for a client that stopped reading), or the body's error (the
// caller aborts the connection then).
func (s *Server) copyBody(w http.ResponseWriter, res *http.Response, trail *gwtransport.Trail, stream bool) (gone error, broken error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	var fr sseFramer
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			out := buf[:n]
			if stream {
				out = fr.add(buf[:n])
				if err == nil && fr.held() > maxHeldEvent {
					err = fmt.Errorf("gwproxy: a stream event larger than %d bytes", maxHeldEvent)
				}
			}
			if len(out) > 0 {
				s.armWrite(rc)
				if _, werr := w.Write(out); werr != nil {
					return werr, nil // the client went away; closing the body ends the attempt
				}
				s.armWrite(rc)
				if ferr := rc.Flush(); ferr != nil {
					return ferr, nil
				}
			}
		}
		if err == io.EOF {
			if stream && fr.held() > 0 {
				// The engine ended the stream cleanly with an event
				// unterminated (a stream it does not guard as SSE): its
				// bytes go out as they came.
				s.armWrite(rc)
				if _, werr := w.Write(fr.rest()); werr != nil {
					return werr, nil
				}
				s.armWrite(rc)
				_ = rc.Flush()
			}
			return nil, nil
		}
		if err != nil {
			if stream {
				e := apiError{Message: "gwproxy: the stream broke: " + redactError(err), Type: "server_error", Code: "stream_broken", Attempts: attemptsJSON(trail.Attempts())}
				var se *gwtransport.StreamError
				if errors.As(err, &se) {
					e.Type = "upstream_error"
					if se.Type != "" {
						e.Type = se.Type
					}
					if se.Code != "" {
						e.Code = se.Code
					}
				}
				b, _ := json.Marshal(struct {
					Error apiError `json:"error"`
				}{e})
				// What was forwarded ends with a complete event (or is
				// empty): the error event is an event of its own.
				s.armWrite(rc)
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
				s.armWrite(rc)
				_ = rc.Flush()
			}
			s.log.Warn("gwproxy: response broken; connection aborted", "target", res.Header.Get(gwtransport.HeaderTarget), "error", redactError(err))
			return nil, err
		}
	}
}

// maxHeldEvent bounds the bytes of one stream event held back until its
// blank line: a larger event breaks the stream (the engine bounds one
// line by as much).
const maxHeldEvent = gwtransport.MaxStreamLineBytes

// sseFramer splits a stream's bytes at the ends of its events: add
// returns the bytes up to the end of the last complete event (a blank
// line; line ends CRLF, LF or a lone CR, as the SSE specification reads
// them) and holds the rest back.
type sseFramer struct {
	pending []byte // pending[off:] are the bytes after the last event's end
	off     int    // bytes of pending returned by the last add
	scanned int    // bytes of pending already scanned
	midLine bool   // the scan is inside a line (not at a line's start)
	cr      bool   // the last byte scanned was a CR (a LF after it joins its line end)
	edge    bool   // the last byte scanned ended an event
}

// add takes bytes read and returns those that complete events (valid
// until the next call).
func (f *sseFramer) add(p []byte) []byte {
	if f.off > 0 {
		// The bytes returned last are written: the held ones move to
		// the front (the buffer is reused).
		n := copy(f.pending, f.pending[f.off:])
		f.pending, f.scanned, f.off = f.pending[:n], f.scanned-f.off, 0
	}
	f.pending = append(f.pending, p...)
	end := -1
	for i := f.scanned; i < len(f.pending); i++ {
		c := f.pending[i]
		switch {
		case c == '\n' && f.cr:
			// The LF of a CRLF: the line ended at the CR.
			f.cr = false
			if f.edge {
				end = i + 1
			}
		case c == '\n' || c == '\r':
			f.edge = !f.midLine // a blank line ends the event
			if f.edge {
				end = i + 1
			}
			f.midLine, f.cr = false, c == '\r'
		default:
			f.midLine, f.cr, f.edge = true, false, false
		}
	}
	f.scanned = len(f.pending)
	if end < 0 {
		return nil
	}
	f.off = end
	return f.pending[:end]
}

// held is the number of bytes held back.
func (f *sseFramer) held() int { return len(f.pending) - f.off }

// rest returns the bytes held back.
func (f *sseFramer) rest() []byte { return f.pending[f.off:] }

// modelEntry is an entry of /v1/models.
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// serveModel describes one name the key may send (GET /v1/models/{id});
// any other is 404, as OpenAI answers.
func (s *Server) serveModel(w http.ResponseWriter, st *state, key *proxyKey, id string) int {
	route, ok := st.names[id]
	if !ok || !key.allows(route) {
		writeError(w, http.StatusNotFound, apiError{Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", id), Type: "invalid_request_error", Param: "model", Code: "model_not_found"})
		return http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(modelEntry{ID: id, Object: "model", OwnedBy: "gwproxy"})
	return http.StatusOK
}

// serveModels lists the names the key may send: routes, targets and
// aliases.
func (s *Server) serveModels(w http.ResponseWriter, st *state, key *proxyKey) {
	list := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{Object: "list", Data: []modelEntry{}}
	for _, name := range st.models {
		if key.allows(st.names[name]) {
			list.Data = append(list.Data, modelEntry{ID: name, Object: "model", OwnedBy: "gwproxy"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}
