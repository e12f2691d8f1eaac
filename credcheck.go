package gwtransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// WithRequireCredentials makes Init, NewTransport and
// Reconfigure fail when a target cannot authenticate: its
// provider needs an API key and has none, or has no base URL (Azure
// without AZURE_OPENAI_ENDPOINT, say). The error wraps
// [ErrMissingCredentials] and names each such target and the environment
// variable to set, never a value.
//
// Without this option such targets are reported as a warning through the
// logger ([WithLogger]), and at request time they are skipped unsent
// (failing over to the next target).
//
// What Init can know: the installing client is taken to serve the client
// provider ([WithClientProvider], "openai" by default) with its own
// credentials and base URL, so targets of that provider are never reported.
// A client of another provider (a Groq base URL, an Azure client) says so
// with WithClientProvider. Providers marked [Provider.KeyOptional] (the
// local vllm, lmstudio and llamacpp) and those with [AuthNone] (ollama)
// need no key.
func WithRequireCredentials() Option {
	return func(s *settings) error {
		s.requireCreds = true
		return nil
	}
}

// checkCredentials reports every target that cannot authenticate (see
// [WithRequireCredentials]): an error with that option, otherwise a warning
// through the logger. Each target is reported once, under the first route
// naming it.
func (g *gateway) checkCredentials() error {
	var errs []error
	seen := map[string]bool{}
	for _, rt := range g.order {
		for _, t := range rt.targets {
			if seen[t.name] {
				continue
			}
			seen[t.name] = true
			missing := missingCredentials(t.prov, g.s.clientProvider)
			if missing == "" {
				continue
			}
			if g.s.requireCreds {
				errs = append(errs, fmt.Errorf("%w: route %q, target %q: provider %q %s", ErrMissingCredentials, rt.name, t.name, t.prov.name, missing))
			} else if l := g.s.logger; l != nil {
				l.LogAttrs(context.Background(), slog.LevelWarn, "gwtransport: target cannot authenticate; it will be skipped unsent",
					slog.String("route", rt.name), slog.String("target", t.name), slog.String("provider", t.prov.name),
					slog.String("missing", missing))
			}
		}
	}
	return errors.Join(errs...)
}

// missingCredentials says what keeps an attempt at p from being sent, or ""
// when nothing does. The client provider is served by the installing
// client itself. Only variable names are given, never a value.
func missingCredentials(p *provider, clientProvider string) string {
	if p.name == clientProvider {
		return ""
	}
	var parts []string
	if p.baseURL == nil {
		part := "has no base URL"
		if p.baseEnv != "" {
			part += " (set " + p.baseEnv + ")"
		}
		parts = append(parts, part)
	}
	if p.auth != AuthNone && p.pool == nil && !p.keyOpt {
		var vars []string
		if p.keyEnv != "" {
			vars = append(vars, p.keyEnv)
		}
		vars = append(vars, p.keysEnv...)
		part := "has no API key"
		switch len(vars) {
		case 0:
			part += " (configure APIKey, APIKeys or APIKeyEnv)"
		case 1:
			part += " (set " + vars[0] + ")"
		default:
			part += " (set one of " + strings.Join(vars, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " and ")
}
