// Package gatewaytest runs an in-process, OpenAI-compatible provider for
// tests and examples: chat completions (streamed and not), legacy
// completions, embeddings and the Responses API, on the OpenAI path scheme
// and Azure's deployment paths, with programmable faults and a journal of
// the requests it received.
//
//	p := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-a"))
//	defer p.Close()
//	p.Enqueue(gatewaytest.Fault{Status: 503})      // the next request fails
//	client := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-a"))
//
// It listens on 127.0.0.1 only.
package gatewaytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Fault is what the server does to one request instead of answering it
// normally. The zero Fault answers normally.
type Fault struct {
	// Status, when non-zero, answers with this status and an OpenAI-style
	// error body made of Code, Type and Message (or Body, when set).
	Status  int
	Code    string // the error's "code"
	Type    string // the error's "type"
	Message string // the error's "message"
	Body    string // the whole error body, instead of Code, Type and Message
	// Header is added to the response (Retry-After, say).
	Header map[string]string
	// Delay waits before the response headers.
	Delay time.Duration
	// Reset drops the connection before any response.
	Reset bool
	// Hang accepts the request and never answers (until the client gives
	// up or the server closes).
	Hang bool

	// The stream faults apply to streamed requests.

	// FirstEventDelay sends the headers at once and the first event after
	// this delay.
	FirstEventDelay time.Duration
	// ErrorEvent answers 200 with a first event that is an error.
	ErrorEvent bool
	// CutAfter drops the connection after this many content events.
	CutAfter int
	// StallAfter stops sending (without closing) after this many content
	// events.
	StallAfter int
	// MalformedAt replaces content event number MalformedAt (from 1) with
	// data that is not JSON.
	MalformedAt int
	// NoDone completes the stream (finish reason included) without the
	// [DONE] sentinel; with HoldOpen the connection then stays open.
	NoDone   bool
	HoldOpen bool // see NoDone and Script
	// Prelude is written as is right after a stream's headers, before its
	// first event: comments, keep-alives, pings, lifecycle events.
	Prelude string
	// Script, when set, is the whole streamed answer (after Prelude),
	// written as is in parts split after each "\n\n", each flushed, with
	// ScriptPause between them; then the connection closes, or with
	// HoldOpen stays open.
	Script      string
	ScriptPause time.Duration // see Script

	// reply is this request's answer text when it differs from the
	// server's (a continuation: see continuation.go).
	reply *string

	// The body faults apply to non-streamed answers (see bodyfaults.go).

	// BodyCutAfter, when positive, sends the headers with the full
	// Content-Length, then this many bytes of the body (at most all but
	// its last byte), then drops the connection.
	BodyCutAfter int
	// BodyStallAfter, when positive, sends the headers with the full
	// Content-Length, then this many bytes of the body (at most all but
	// its last byte), then stalls without closing until the client gives
	// up or the server closes.
	BodyStallAfter int
}

// Request is one request as the server received it.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is the URL path, e.g. "/v1/chat/completions" or
	// "/openai/deployments/gpt-4o/chat/completions".
	Path string
	// Query is the raw query string (Azure's api-version, say).
	Query string
	// Model is the body's "model"; Deployment the Azure deployment in the
	// path, if any.
	Model      string
	Deployment string // see Model
	// Stream reports whether the body asked for a stream.
	Stream bool
	// Header is the request header with every secret replaced by [Mask].
	Header http.Header
	// Body is the raw body.
	Body []byte
}

// Option configures a Server.
type Option func(*Server)

// WithName names the server; its answers say "Hello from <name>".
func WithName(name string) Option { return func(s *Server) { s.name = name } }

// WithAPIKey makes the server answer 401 unless the request carries
// "Authorization: Bearer <key>" or "api-key: <key>".
func WithAPIKey(key string) Option { return func(s *Server) { s.key = key } }

// WithStreamChunks sets the number of content events of a streamed answer
// (default 5).
func WithStreamChunks(n int) Option { return func(s *Server) { s.chunks = n } }

// WithSecretHeaders adds header names whose values the journal masks.
func WithSecretHeaders(names ...string) Option {
	return func(s *Server) {
		for _, n := range names {
			s.secret[http.CanonicalHeaderKey(n)] = true
		}
	}
}

// Server is a fake OpenAI-compatible provider. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the OpenAI-style base URL, ending in /v1.
	URL string
	// Endpoint is the bare server URL, as Azure clients take it.
	Endpoint string

	name   string
	text   *string // WithReply
	cont   string  // WithContinuation
	noPre  bool    // WithPrefillRejected
	key    string
	chunks int
	secret map[string]bool
	srv    *httptest.Server
	done   chan struct{}

	mu      sync.Mutex
	queue   []Fault
	always  *Fault
	journal []Request
}

// NewServer starts a server on 127.0.0.1. Close it when done.
func NewServer(opts ...Option) *Server {
	s := &Server{
		name:   "provider",
		chunks: 5,
		done:   make(chan struct{}),
		secret: map[string]bool{
			"Authorization": true, "Api-Key": true, "X-Api-Key": true,
			"Openai-Organization": true, "Openai-Project": true, "Cookie": true,
		},
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.Endpoint = s.srv.URL
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the server, ending hanging requests.
func (s *Server) Close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Enqueue adds faults applied to the next requests, one each, in order.
func (s *Server) Enqueue(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, faults...)
}

// SetFault applies f to every request once the queue is empty; nil makes
// the server healthy again.
func (s *Server) SetFault(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = f
}

// Journal returns the requests received so far.
func (s *Server) Journal() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.journal...)
}

// Count returns the number of requests received so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.journal)
}

// Reset clears the journal, the queue and the standing fault.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal, s.queue, s.always = nil, nil, nil
}

// Mask is how the journal shows a secret header value: a short, stable
// fingerprint, so tests can tell which key arrived without storing it.
func Mask(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "masked:" + hex.EncodeToString(sum[:6])
}

func (s *Server) next() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		f := s.queue[0]
		s.queue = s.queue[1:]
		return f
	}
	if s.always != nil {
		return *s.always
	}
	return Fault{}
}

type requestBody struct {
	Model  string          `json:"model"`
	Stream bool            `json:"stream"`
	Input  json.RawMessage `json:"input"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var rb requestBody
	_ = json.Unmarshal(body, &rb)
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Model: rb.Model, Stream: rb.Stream, Body: body, Header: r.Header.Clone()}
	if i := strings.Index(r.URL.Path, "/deployments/"); i >= 0 {
		rest := r.URL.Path[i+len("/deployments/"):]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			rec.Deployment = rest[:j]
		}
	}
	for k := range rec.Header {
		if s.secret[k] {
			for i, v := range rec.Header[k] {
				rec.Header[k][i] = Mask(v)
			}
		}
	}
	s.mu.Lock()
	s.journal = append(s.journal, rec)
	s.mu.Unlock()

	if s.key != "" && r.Header.Get("Authorization") != "Bearer "+s.key && r.Header.Get("Api-Key") != s.key {
		writeError(w, http.StatusUnauthorized, "invalid_api_key", "invalid_request_error", "Incorrect API key provided.")
		return
	}
	f := s.next()
	if f.Delay > 0 && !s.sleep(r, f.Delay) {
		return
	}
	switch {
	case f.Reset:
		s.reset(w, true)
		return
	case f.Hang:
		s.sleep(r, time.Hour)
		return
	}
	for k, v := range f.Header {
		w.Header().Set(k, v)
	}
	if f.Status != 0 {
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
		writeError(w, f.Status, f.Code, f.Type, f.Message)
		return
	}
	if !s.continuation(w, body, &f) {
		return
	}
	if !rb.Stream && (f.BodyCutAfter > 0 || f.BodyStallAfter > 0) {
		w = &faultyBody{ResponseWriter: w, s: s, r: r, f: f}
	}
	model := rb.Model
	if model == "" {
		model = rec.Deployment
	}
	op := r.URL.Path
	switch {
	case strings.HasSuffix(op, "/chat/completions"):
		if rb.Stream {
			s.streamChat(w, r, model, f)
			return
		}
		writeJSON(w, chatCompletion(model, s.replyFor(f)))
	case strings.HasSuffix(op, "/completions"):
		writeJSON(w, map[string]any{
			"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model,
			"choices": []any{map[string]any{"index": 0, "text": s.reply(), "finish_reason": "stop"}},
			"usage":   usage(),
		})
	case strings.HasSuffix(op, "/embeddings"):
		writeJSON(w, map[string]any{
			"object": "list", "model": model,
			"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.1, 0.2, 0.3}}},
			"usage": map[string]any{"prompt_tokens": 3, "total_tokens": 3},
		})
	case strings.HasSuffix(op, "/responses"):
		if rb.Stream {
			s.streamResponse(w, r, model, f)
			return
		}
		writeJSON(w, response(model, s.reply()))
	default:
		writeError(w, http.StatusNotFound, "not_found", "invalid_request_error", "unknown path "+op)
	}
}

func (s *Server) reply() string {
	if s.text != nil {
		return *s.text
	}
	return "Hello from " + s.name
}

// sleep waits d, or until the client goes away or the server closes; it
// reports whether the full wait elapsed.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.done:
	}
	return false
}

// reset drops the connection, with a TCP RST when rst is set.
func (s *Server) reset(w http.ResponseWriter, rst bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		if tc, ok := conn.(interface{ SetLinger(int) error }); ok && rst {
			_ = tc.SetLinger(0) // RST rather than FIN
		}
		conn.Close()
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, typ, msg string) {
	if msg == "" {
		msg = http.StatusText(status)
	}
	if typ == "" {
		typ = "server_error"
		if status < 500 {
			typ = "invalid_request_error"
		}
	}
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func usage() map[string]any {
	return map[string]any{"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
}

func chatCompletion(model, text string) map[string]any {
	return map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text},
		}},
		"usage": usage(),
	}
}

func response(model, text string) map[string]any {
	return map[string]any{
		"id": "resp_1", "object": "response", "created_at": 1, "model": model, "status": "completed",
		"output": []any{map[string]any{
			"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}},
		}},
		"usage": map[string]any{"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
	}
}

// streamWriter writes SSE events and flushes each.
type streamWriter struct {
	w  http.ResponseWriter
	fl http.Flusher
}

func (sw streamWriter) event(name string, data any) {
	var b bytes.Buffer
	if name != "" {
		fmt.Fprintf(&b, "event: %s\n", name)
	}
	switch d := data.(type) {
	case string:
		fmt.Fprintf(&b, "data: %s\n\n", d)
	default:
		j, _ := json.Marshal(d)
		fmt.Fprintf(&b, "data: %s\n\n", j)
	}
	_, _ = sw.w.Write(b.Bytes())
	sw.fl.Flush()
}

func (s *Server) startStream(w http.ResponseWriter) streamWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	fl.Flush()
	return streamWriter{w: w, fl: fl}
}

// tokens returns the words of the streamed answer.
func (s *Server) tokens() []string {
	out := make([]string, s.chunks)
	for i := range out {
		out[i] = fmt.Sprintf("tok%d ", i+1)
	}
	out[0] = s.reply() + " "
	return out
}

// interrupt applies the mid-stream faults before content event i (from 1);
// it reports whether the stream must end now.
func (s *Server) interrupt(sw streamWriter, r *http.Request, f Fault, i int) bool {
	switch {
	case f.CutAfter > 0 && i > f.CutAfter:
		// A plain close: an RST could discard the events already sent.
		s.reset(sw.w, false)
		return true
	case f.StallAfter > 0 && i > f.StallAfter:
		s.sleep(r, time.Hour)
		return true
	case f.MalformedAt == i:
		_, _ = io.WriteString(sw.w, "data: {\"choices\": [ this is not json\n\n")
		sw.fl.Flush()
		return false
	}
	return false
}

// scripted writes a fault's Prelude and Script; it reports whether the
// Script was the whole answer.
func (s *Server) scripted(sw streamWriter, r *http.Request, f Fault) bool {
	if f.Prelude != "" {
		_, _ = io.WriteString(sw.w, f.Prelude)
		sw.fl.Flush()
	}
	if f.Script == "" {
		return false
	}
	for rest := f.Script; rest != ""; {
		part := rest
		if i := strings.Index(rest, "\n\n"); i >= 0 {
			part = rest[:i+2]
		}
		rest = rest[len(part):]
		_, _ = io.WriteString(sw.w, part)
		sw.fl.Flush()
		if rest != "" && f.ScriptPause > 0 && !s.sleep(r, f.ScriptPause) {
			return true
		}
	}
	if f.HoldOpen {
		s.sleep(r, time.Hour)
	}
	return true
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, model string, f Fault) {
	sw := s.startStream(w)
	if f.FirstEventDelay > 0 && !s.sleep(r, f.FirstEventDelay) {
		return
	}
	if s.scripted(sw, r, f) {
		return
	}
	if f.ErrorEvent {
		sw.event("", map[string]any{"error": map[string]any{"message": "upstream overloaded", "type": "server_error", "code": "overloaded"}})
		return
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
	}
	for i, tok := range s.tokensFor(f) {
		if s.interrupt(sw, r, f, i+1) {
			return
		}
		if f.MalformedAt == i+1 {
			continue
		}
		delta := map[string]any{"content": tok}
		if i == 0 {
			delta["role"] = "assistant"
		}
		sw.event("", chunk(delta, nil))
	}
	final := chunk(map[string]any{}, "stop")
	final["usage"] = usage()
	sw.event("", final)
	s.finish(sw, r, f)
}

func (s *Server) finish(sw streamWriter, r *http.Request, f Fault) {
	if !f.NoDone {
		sw.event("", "[DONE]")
		return
	}
	if f.HoldOpen {
		s.sleep(r, time.Hour)
	}
}

func (s *Server) streamResponse(w http.ResponseWriter, r *http.Request, model string, f Fault) {
	sw := s.startStream(w)
	if f.FirstEventDelay > 0 && !s.sleep(r, f.FirstEventDelay) {
		return
	}
	if s.scripted(sw, r, f) {
		return
	}
	if f.ErrorEvent {
		sw.event("error", map[string]any{"type": "error", "code": "overloaded", "message": "upstream overloaded", "sequence_number": 0})
		return
	}
	seq := 0
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		sw.event(typ, fields)
	}
	inProgress := response(model, "")
	inProgress["status"] = "in_progress"
	inProgress["output"] = []any{}
	ev("response.created", map[string]any{"response": inProgress})
	text := ""
	for i, tok := range s.tokens() {
		if s.interrupt(sw, r, f, i+1) {
			return
		}
		if f.MalformedAt == i+1 {
			continue
		}
		text += tok
		ev("response.output_text.delta", map[string]any{"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": tok})
	}
	ev("response.completed", map[string]any{"response": response(model, text)})
	s.finish(sw, r, f)
}
