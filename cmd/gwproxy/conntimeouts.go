package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// The proxy applies proxy.read_header_timeout and proxy.idle_timeout
// itself, per connection, rather than through http.Server (which reads its
// timeouts once, at start): each waiting phase of a connection reads them
// from the configuration of the moment, so a reload applies them to the
// connections already open from their next phase on. The http.Server has
// no read timeouts of its own; proxy.read_timeout bounds bodies per
// request (see boundBody). proxy.write_timeout bounds each write of a
// response: set when a request starts (connState) and renewed before each
// write of serveAPI (armWrite).

// The phases of a connection, as the http.Server's ConnState hook reports
// them.
const (
	phaseHeader = iota // reading a request's headers (since its first bytes)
	phaseIdle          // waiting for the next request's first bytes
	phaseActive        // serving a request: the handler owns the deadlines
)

// timedListener hands out timedConns.
type timedListener struct {
	net.Listener
	s *Server
}

// Accept implements net.Listener.
func (l timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// A new connection's headers are timed from its acceptance, as
	// http.Server's ReadHeaderTimeout would.
	return &timedConn{Conn: c, s: l.s, phase: phaseHeader, since: time.Now()}, nil
}

// timedConn is a server connection that applies the header and idle
// timeouts of the current configuration to its reads while it waits for
// a request.
type timedConn struct {
	net.Conn
	s     *Server
	mu    sync.Mutex
	phase int
	since time.Time // the start of the phase
}

// Read implements net.Conn: while the connection waits for a request, the
// read's deadline is the phase's start plus the phase's timeout.
func (c *timedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	phase, since := c.phase, c.since
	c.mu.Unlock()
	if phase != phaseActive {
		px := c.s.state.Load().proxy
		d := time.Duration(px.ReadHeaderTimeout)
		if phase == phaseIdle {
			d = time.Duration(px.IdleTimeout)
		}
		_ = c.Conn.SetReadDeadline(since.Add(d))
	}
	n, err := c.Conn.Read(p)
	if n > 0 && phase == phaseIdle {
		// The next request's first bytes: its headers are timed from now.
		c.mu.Lock()
		if c.phase == phaseIdle {
			c.phase, c.since = phaseHeader, time.Now()
		}
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite half-closes the connection when the underlying one can
// (http.Server does so before closing, so that the client reads the last
// answer before the close).
func (c *timedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connState is the http.Server's ConnState hook: it moves a timedConn
// between its phases. It runs on the connection's goroutine, before the
// handler (active) and before the wait for the next request (idle).
func (s *Server) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*timedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateActive:
		c.mu.Lock()
		c.phase = phaseActive
		c.mu.Unlock()
		// The headers' deadline must not cut the body or the read that
		// watches for the client leaving: the handler sets its own.
		_ = c.Conn.SetReadDeadline(time.Time{})
		// A write bound for the new request (net/http clears the last
		// one's after its answer): the handlers that do not renew it
		// (health, metrics, net/http's own answers) are bounded by it as
		// a whole; serveAPI renews it before each of its writes.
		s.armWrite(c.Conn)
	case http.StateIdle:
		c.mu.Lock()
		c.phase, c.since = phaseIdle, time.Now()
		c.mu.Unlock()
	}
}

// writeDeadliner is what armWrite sets the deadline of: a connection, or
// a response through its http.ResponseController.
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// armWrite bounds the next write to the client by proxy.write_timeout,
// read from the configuration of the moment (0: no bound).
func (s *Server) armWrite(w writeDeadliner) {
	var deadline time.Time
	if d := s.state.Load().proxy.writeTimeout(); d > 0 {
		deadline = time.Now().Add(d)
	}
	_ = w.SetWriteDeadline(deadline)
}
