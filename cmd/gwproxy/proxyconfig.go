package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gwtransport/gwtransport"
)

// proxyConfig is the "proxy:" section of the configuration file: the
// proxy's own settings. gwproxy removes it before the rest goes to
// gwtransport.LoadConfig, whose format is unchanged.
type proxyConfig struct {
	// Listen is the address to bind (default 127.0.0.1:8080: loopback
	// only unless told otherwise).
	Listen string `yaml:"listen" json:"listen"`
	// Keys are the proxy keys clients authenticate with.
	Keys []keyConfig `yaml:"keys" json:"keys"`
	// MaxBodyBytes bounds a request body (default 4 MiB); larger gets 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// ReadHeaderTimeout bounds reading a request's headers (default 10s),
	// from a connection's acceptance or the next request's first bytes.
	// A reload applies it to the connections already open too.
	ReadHeaderTimeout gwtransport.Duration `yaml:"read_header_timeout" json:"read_header_timeout"`
	// ReadTimeout bounds reading a request's body (default 30s), on every
	// path: a body not read whole by then is cut (408 where the proxy was
	// reading it), and a request whose body the proxy did not read whole
	// is answered with "Connection: close".
	ReadTimeout gwtransport.Duration `yaml:"read_timeout" json:"read_timeout"`
	// IdleTimeout closes keep-alive connections idle this long (default
	// 120s). A reload applies it to the connections already open too,
	// from their next idle period.
	IdleTimeout gwtransport.Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// WriteTimeout bounds each write of a response to the client
	// (default 60s; 0 means no bound): the deadline is set afresh before
	// every write and flush, so a client that reads slowly but steadily
	// keeps a long stream, while one that stops reading is cut once a
	// write has waited this long. The cut ends the handler and the
	// provider's request, counts as 499 (the log says client_too_slow)
	// and puts an error on the server span. Negative is refused. A reload
	// applies it to the responses in flight too, from their next write.
	WriteTimeout *gwtransport.Duration `yaml:"write_timeout" json:"write_timeout"`
	// ShutdownTimeout is how long SIGTERM waits for requests in flight,
	// streams included, before closing them (default 30s).
	ShutdownTimeout gwtransport.Duration `yaml:"shutdown_timeout" json:"shutdown_timeout"`
}

// keyConfig is one proxy key: its SHA-256 in the file, or the environment
// variable that holds it.
type keyConfig struct {
	// Name identifies the key in logs and metrics (never the key itself).
	Name string `yaml:"name" json:"name"`
	// Hash is "sha256:<64 hex digits>" of the key.
	Hash string `yaml:"hash" json:"hash"`
	// KeyEnv names an environment variable holding the key in clear.
	KeyEnv string `yaml:"key_env" json:"key_env"`
	// Routes limit the key to these routes (and their targets and
	// aliases); empty means every route.
	Routes []string `yaml:"routes" json:"routes"`
}

// The proxy's defaults.
const (
	defaultListen            = "127.0.0.1:8080"
	defaultMaxBodyBytes      = 4 << 20
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultShutdownTimeout   = 30 * time.Second
	defaultWriteTimeout      = 60 * time.Second
	// envKeys holds more proxy keys, comma-separated, allowed every route.
	envKeys = "GWPROXY_API_KEYS"
)

func (p *proxyConfig) setDefaults() {
	if p.Listen == "" {
		p.Listen = defaultListen
	}
	if p.MaxBodyBytes == 0 {
		p.MaxBodyBytes = defaultMaxBodyBytes
	}
	def := func(d *gwtransport.Duration, v time.Duration) {
		if *d == 0 {
			*d = gwtransport.Duration(v)
		}
	}
	def(&p.ReadHeaderTimeout, defaultReadHeaderTimeout)
	def(&p.ReadTimeout, defaultReadTimeout)
	def(&p.IdleTimeout, defaultIdleTimeout)
	def(&p.ShutdownTimeout, defaultShutdownTimeout)
	if p.WriteTimeout == nil {
		d := gwtransport.Duration(defaultWriteTimeout)
		p.WriteTimeout = &d
	}
}

// writeTimeout is proxy.write_timeout: the bound of one write of a
// response, 0 for none (absent from the file: the default).
func (p proxyConfig) writeTimeout() time.Duration {
	if p.WriteTimeout == nil {
		return defaultWriteTimeout
	}
	return time.Duration(*p.WriteTimeout)
}

// proxyKey is a compiled proxy key: only its hash is kept.
type proxyKey struct {
	name   string
	hash   [sha256.Size]byte
	routes map[string]bool // nil: every route
}

// hashKey is the SHA-256 of a proxy key.
func hashKey(k string) [sha256.Size]byte { return sha256.Sum256([]byte(k)) }

// splitConfig separates the "proxy:" section from the rest of a
// configuration file (JSON or YAML). For YAML the section's lines are
// blanked, so that the core parser's line numbers stay those of the file.
func splitConfig(data []byte) (proxy proxyConfig, rest []byte, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("{")) {
		return splitJSON(data)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return proxy, nil, fmt.Errorf("gwproxy: config: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return proxy, data, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "proxy" {
			continue
		}
		raw, err := yaml.Marshal(m.Content[i+1])
		if err != nil {
			return proxy, nil, fmt.Errorf("gwproxy: config: proxy: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&proxy); err != nil && !errors.Is(err, io.EOF) {
			return proxy, nil, fmt.Errorf("gwproxy: config: proxy (line %d): %w", m.Content[i].Line, err)
		}
		from := m.Content[i].Line
		to := -1 // the last line of the section, -1 for the end of the file
		if i+2 < len(m.Content) {
			to = m.Content[i+2].Line - 1
			if to < from || m.Style == yaml.FlowStyle {
				return proxy, nil, fmt.Errorf("gwproxy: config: proxy (line %d): write the proxy section in block style, on lines of its own", from)
			}
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		var out bytes.Buffer
		for n, l := range lines {
			line := n + 1
			if line >= from && (to < 0 || line <= to) {
				if bytes.HasSuffix(l, []byte("\n")) {
					out.WriteByte('\n')
				}
				continue
			}
			out.Write(l)
		}
		return proxy, out.Bytes(), nil
	}
	return proxy, data, nil
}

// splitJSON is splitConfig for a JSON document.
func splitJSON(data []byte) (proxy proxyConfig, rest []byte, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		// The core parser reports the syntax error with its position.
		return proxy, data, nil
	}
	p, ok := top["proxy"]
	if !ok {
		return proxy, data, nil
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&proxy); err != nil {
		return proxy, nil, fmt.Errorf("gwproxy: config: proxy: %w", err)
	}
	delete(top, "proxy")
	rest, err = json.Marshal(top)
	return proxy, rest, err
}

// compileKeys checks the proxy section's keys and adds the environment's.
// It never puts a key in an error.
func compileKeys(p *proxyConfig, routes map[string]bool, env func(string) (string, bool)) ([]proxyKey, error) {
	var keys []proxyKey
	names := map[string]bool{}
	for i, kc := range p.Keys {
		where := fmt.Sprintf("gwproxy: config: proxy.keys[%d]", i)
		if kc.Name == "" {
			return nil, fmt.Errorf("%s.name: required (it names the key in logs and metrics)", where)
		}
		if names[kc.Name] {
			return nil, fmt.Errorf("%s.name: %q is given twice", where, kc.Name)
		}
		names[kc.Name] = true
		k := proxyKey{name: kc.Name}
		switch {
		case kc.Hash != "" && kc.KeyEnv != "":
			return nil, fmt.Errorf("%s: give hash or key_env, not both", where)
		case kc.Hash != "":
			h, ok := strings.CutPrefix(kc.Hash, "sha256:")
			b, err := hex.DecodeString(h)
			if !ok || err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%s.hash: want \"sha256:\" and 64 hex digits (printf %%s \"$KEY\" | sha256sum)", where)
			}
			copy(k.hash[:], b)
		case kc.KeyEnv != "":
			v, ok := env(kc.KeyEnv)
			if !ok || v == "" {
				return nil, fmt.Errorf("%s.key_env: environment variable %s is not set", where, kc.KeyEnv)
			}
			k.hash = hashKey(v)
		default:
			return nil, fmt.Errorf("%s: give hash (\"sha256:<hex>\") or key_env", where)
		}
		if len(kc.Routes) > 0 {
			k.routes = map[string]bool{}
			for j, r := range kc.Routes {
				if !routes[r] {
					return nil, fmt.Errorf("%s.routes[%d]: %q is not a route of the configuration", where, j, r)
				}
				k.routes[r] = true
			}
		}
		keys = append(keys, k)
	}
	if v, ok := env(envKeys); ok {
		for i, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			keys = append(keys, proxyKey{name: fmt.Sprintf("env#%d", i+1), hash: hashKey(s)})
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gwproxy: no proxy key: give proxy.keys in the configuration or set %s (gwproxy is not an open relay)", envKeys)
	}
	return keys, nil
}

// checkListen validates a listen address.
func checkListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("gwproxy: listen address %q: %w", addr, err)
	}
	return nil
}
