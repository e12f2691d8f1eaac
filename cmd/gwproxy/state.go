package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/gwtransport/gwtransport"
)

// originProvider is the provider the proxy's outgoing requests are
// addressed to before the engine rewrites them: its base URL matches, so
// each target gets its own provider's URL and configured key, and it is
// never any route's target, so no request ever reaches it (the guard in
// upstream.go refuses one that would).
const (
	originProvider = "gwproxy-origin"
	originHost     = "gwproxy-origin.invalid"
	originBase     = "http://" + originHost + "/v1"
)

// state is one loaded configuration: the proxy's settings, its keys, and
// the engine that serves the routes. A reload builds a new state and swaps
// it in; requests in flight finish on the one they started with.
type state struct {
	proxy proxyConfig
	core  *gwtransport.Config
	tr    *gwtransport.Transport
	keys  []proxyKey
	// names maps every model name a client may send (route, target,
	// alias) to its route.
	names map[string]string
	// models lists the names in configuration order, for /v1/models.
	models []string
}

// loadState parses a configuration file's bytes and builds its engine.
func (s *Server) loadState(data []byte) (*state, error) {
	proxy, rest, err := splitConfig(data)
	if err != nil {
		return nil, err
	}
	proxy.setDefaults()
	if s.listen != "" {
		proxy.Listen = s.listen
	}
	if err := checkListen(proxy.Listen); err != nil {
		return nil, err
	}
	if proxy.MaxBodyBytes < 0 {
		return nil, errors.New("gwproxy: config: proxy.max_body_bytes: must not be negative")
	}
	if proxy.writeTimeout() < 0 {
		return nil, fmt.Errorf("gwproxy: config: proxy.write_timeout: %v must not be negative (0 means no bound)", proxy.writeTimeout())
	}
	core, err := gwtransport.LoadConfig(rest)
	if err != nil {
		return nil, err
	}
	for i, p := range core.Providers {
		if p.Name == originProvider {
			return nil, fmt.Errorf("gwproxy: config: providers[%d].name: %q is reserved by gwproxy", i, originProvider)
		}
	}
	st := &state{proxy: proxy, core: core, names: map[string]string{}}
	routes := map[string]bool{}
	add := func(name, route string) {
		if _, ok := st.names[name]; ok || name == "" {
			return // the engine, too, serves a name with its first route
		}
		st.names[name] = route
		st.models = append(st.models, name)
	}
	// As the engine looks names up: route names first, then the targets
	// and aliases of each route in order.
	type rc struct {
		name   string
		models []gwtransport.ModelConfig
	}
	var order []rc
	if len(core.Models) > 0 {
		name := core.Route
		if name == "" {
			name = "gateway"
		}
		order = append(order, rc{name, core.Models})
	}
	for _, r := range core.Routes {
		order = append(order, rc{r.Name, r.Models})
	}
	for _, r := range order {
		routes[r.name] = true
		add(r.name, r.name)
	}
	for _, r := range order {
		for _, m := range r.models {
			add(m.Target, r.name)
			add(m.Alias, r.name)
		}
	}
	if st.keys, err = compileKeys(&proxy, routes, s.env); err != nil {
		return nil, err
	}
	opts := []gwtransport.Option{
		gwtransport.WithConfig(core),
		gwtransport.WithProvider(gwtransport.Provider{Name: originProvider, BaseURL: originBase, KeyOptional: true}),
		gwtransport.WithEnv(s.env),
		gwtransport.WithMaxBodyBytes(proxy.MaxBodyBytes),
		gwtransport.WithOnEvent(s.metrics.onEvent),
		gwtransport.WithLogger(s.log),
	}
	opts = append(opts, s.engineOptions...)
	st.tr, err = gwtransport.NewTransport(s.upstream, gwtransport.FromConfig, opts...)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Reload reads the configuration file again and, when it is valid, makes
// it the configuration of the requests that start from now on. An invalid
// file is refused (logged, counted) and the current configuration kept.
func (s *Server) Reload() error {
	data, err := os.ReadFile(s.path)
	if err == nil {
		var st *state
		if st, err = s.loadState(data); err == nil {
			old := s.state.Swap(st)
			if old != nil && old.proxy.Listen != st.proxy.Listen {
				s.log.Warn("gwproxy: the listen address changes on restart only", "listen", old.proxy.Listen)
			}
			s.metrics.reloads.WithLabelValues("ok").Inc()
			s.log.Info("gwproxy: configuration reloaded", "path", s.path)
			return nil
		}
	}
	s.metrics.reloads.WithLabelValues("refused").Inc()
	s.log.Error("gwproxy: new configuration refused; the current one is kept", "path", s.path, "error", err.Error())
	return err
}

// upstreamTransport is the base transport of every engine: attempts go
// through it. It is shared by every configuration, so that a reload keeps
// the connections.
func upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	return t
}

// logger is the proxy's JSON logger.
func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
