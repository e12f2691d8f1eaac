// Command gwproxy serves an OpenAI-compatible HTTP API backed by the
// gwtransport engine, so that programs in any language get its fallback,
// retries and load balancing.
//
//	gwproxy -config gateway.yaml [-listen 127.0.0.1:8080] [-demo]
//
// The configuration file is gwtransport's (see gwtransport.LoadConfig) with
// one more top-level section, "proxy:", holding the proxy's own settings:
// listen address, proxy keys (hashed), limits and timeouts. Clients send a
// proxy key (Authorization: Bearer, api-key or x-api-key); provider keys
// come from the environment variables the configuration names. SIGHUP
// reloads the file (an invalid one is refused and the current one kept;
// everything but the listen address changes, the timeouts included);
// SIGTERM drains requests in flight, streams included, up to
// proxy.shutdown_timeout. Logs are JSON on stderr; /metrics is Prometheus;
// /healthz and /readyz are for orchestrators. With
// OTEL_EXPORTER_OTLP_ENDPOINT set, traces and metrics go to that OTLP
// endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT set one signal each); they are
// flushed at exit within what the drain left of shutdown_timeout (1 s at
// least, 5 s at most).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	// A configuration's "state: {redis: ...}" shares live state between
	// gwproxy replicas (imported for its registration, and closed at
	// shutdown).
	"github.com/gwtransport/gwtransport/redisstore"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := run(os.Args[1:], os.LookupEnv, os.Stderr, sigs, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run parses the flags, starts the server and serves until a SIGTERM or
// SIGINT on sigs has drained it. ready, when not nil, receives the
// listening address.
func run(args []string, env func(string) (string, bool), stderr io.Writer, sigs <-chan os.Signal, ready chan<- string) error {
	fs := flag.NewFlagSet("gwproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the configuration file (gwtransport's format plus a proxy: section)")
	listen := fs.String("listen", "", "the address to listen on, overriding proxy.listen (default 127.0.0.1:8080)")
	demo := fs.Bool("demo", false, "start two local fake providers and point GWPROXY_DEMO_PRIMARY_URL and GWPROXY_DEMO_FALLBACK_URL at them (see example.yaml)")
	debug := fs.Bool("debug", false, "log at debug level (every attempt)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" {
		return errors.New("gwproxy: -config is required (see cmd/gwproxy/example.yaml)")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *demo {
		stop, demoEnv := startDemo(env)
		defer stop()
		env = demoEnv
	}
	tel, shutdownTel, err := telemetryFromEnv(env)
	if err != nil {
		return err
	}
	// The exporters are flushed by the end of shutdown_timeout (see
	// flushTelemetry): a collector that is down does not hold the exit.
	var flushBy time.Time
	defer func() { flushTelemetry(shutdownTel, flushBy, log) }()
	s, err := newServer(serverConfig{path: *config, listen: *listen, env: env, log: log, telemetr: tel})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.state.Load().proxy.Listen)
	if err != nil {
		return fmt.Errorf("gwproxy: %w", err)
	}
	err = s.serve(ln, sigs, ready)
	flushBy = s.stopBy
	return err
}

// serve serves on ln until SIGTERM or SIGINT, reloading on SIGHUP.
func (s *Server) serve(ln net.Listener, sigs <-chan os.Signal, ready chan<- string) error {
	srv := &http.Server{
		Handler: s.running.track(s.Handler()),
		// read_header_timeout and idle_timeout are applied per connection
		// from the configuration of the moment (conntimeouts.go), so that
		// a reload changes them; read_timeout per request (boundBody);
		// write_timeout per write (armWrite).
		ConnState: s.connState,
		// net/http allows 4 KiB beyond MaxHeaderBytes: the cap is 64 KiB in all.
		MaxHeaderBytes: 64<<10 - 4<<10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(timedListener{Listener: ln, s: s}) }()
	s.log.Info("gwproxy listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	for {
		select {
		case err := <-served:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = s.Reload()
				continue
			}
			return s.shutdown(srv, served)
		}
	}
}

// shutdown stops accepting, says not ready, and waits for the requests in
// flight up to proxy.shutdown_timeout; what is left then is cut.
func (s *Server) shutdown(srv *http.Server, served <-chan error) error {
	s.draining.Store(true)
	d := time.Duration(s.state.Load().proxy.ShutdownTimeout)
	s.stopBy = time.Now().Add(d)
	s.log.Info("gwproxy draining", "deadline", d.String())
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		s.log.Warn("gwproxy: drain deadline passed; closing the requests left", "error", err.Error())
		srv.Close()
	}
	<-served
	// The handlers the drain cut end their spans and log lines before
	// the telemetry is flushed (run flushes it after serve returns).
	if !s.running.wait(handlersCutWait) {
		s.log.Warn("gwproxy: requests still ending after the drain", "waited", handlersCutWait.String())
	}
	if c, ok := s.upstream.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if err := redisstore.CloseConfigured(); err != nil {
		s.log.Warn("gwproxy: closing the Redis store", "error", err.Error())
	}
	s.log.Info("gwproxy stopped")
	if errors.Is(err, context.DeadlineExceeded) {
		return nil // drained as far as allowed: not a failure
	}
	return err
}
