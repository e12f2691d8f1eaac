package main

import (
	"net/http"
	"sync"
	"time"
)

// handlers counts the handlers running, so that shutdown can wait for the
// ones it cut to end their spans and log lines before the telemetry is
// flushed: a cut connection's handler is still unwinding (closing its
// provider's body, recording its request) when the server's Close
// returns.
type handlers struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to zero, if a waiter made it
}

// track counts h's calls while they run (its deferred work included).
func (hs *handlers) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		hs.n++
		hs.mu.Unlock()
		defer hs.leave() // on a panic too (an aborted stream)
		h.ServeHTTP(w, r)
	})
}

func (hs *handlers) leave() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.n--
	if hs.n == 0 && hs.idle != nil {
		close(hs.idle)
		hs.idle = nil
	}
}

// wait waits until no handler runs, for d at most; it reports whether
// none runs.
func (hs *handlers) wait(d time.Duration) bool {
	hs.mu.Lock()
	if hs.n == 0 {
		hs.mu.Unlock()
		return true
	}
	if hs.idle == nil {
		hs.idle = make(chan struct{})
	}
	idle := hs.idle
	hs.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// handlersCutWait bounds the wait, after the drain, for the handlers it
// cut (see handlers).
const handlersCutWait = time.Second
