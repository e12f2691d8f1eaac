package gatewaytest

import (
	"net/http"
	"strconv"
	"time"
)

// faultyBody applies Fault.BodyCutAfter and Fault.BodyStallAfter to a
// non-streamed answer: the answer's body is written whole by one Write,
// announced with its full Content-Length, and broken part way.
type faultyBody struct {
	http.ResponseWriter
	s    *Server
	r    *http.Request
	f    Fault
	done bool
}

// Write sends the headers with len(p) as the Content-Length, then the
// fault's share of p, then cuts or stalls. Later writes are dropped.
func (b *faultyBody) Write(p []byte) (int, error) {
	if b.done {
		return len(p), nil
	}
	b.done = true
	n := b.f.BodyCutAfter
	if n <= 0 {
		n = b.f.BodyStallAfter
	}
	if n > len(p)-1 {
		n = len(p) - 1 // the body is always broken
	}
	if n < 0 {
		n = 0
	}
	b.Header().Set("Content-Length", strconv.Itoa(len(p)))
	b.ResponseWriter.WriteHeader(http.StatusOK)
	_, _ = b.ResponseWriter.Write(p[:n])
	if fl, ok := b.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	if b.f.BodyCutAfter > 0 {
		b.s.reset(b.ResponseWriter, false)
		return len(p), nil
	}
	// Stall: the handler returns only when the client or the server gives
	// up; net/http then closes a connection whose body is short.
	b.s.sleep(b.r, time.Hour)
	return len(p), nil
}
