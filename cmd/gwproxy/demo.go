package main

import (
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// The environment variables example.yaml reads the demo providers' base
// URLs from.
const (
	demoPrimaryEnv  = "GWPROXY_DEMO_PRIMARY_URL"
	demoFallbackEnv = "GWPROXY_DEMO_FALLBACK_URL"
)

// startDemo starts two local fake providers (gwtransport's gatewaytest
// servers, on 127.0.0.1) and returns an environment in which
// example.yaml's providers point at them. The primary answers its first request
// 503, so that the first call shows the fallback (X-Gwtransport-Target).
func startDemo(env func(string) (string, bool)) (stop func(), demoEnv func(string) (string, bool)) {
	primary := gatewaytest.NewServer(gatewaytest.WithName("primary"))
	fallback := gatewaytest.NewServer(gatewaytest.WithName("fallback"))
	primary.Enqueue(gatewaytest.Fault{Status: 503, Message: "demo: the primary is overloaded (first request)"})
	urls := map[string]string{demoPrimaryEnv: primary.URL, demoFallbackEnv: fallback.URL}
	return func() { primary.Close(); fallback.Close() }, func(k string) (string, bool) {
		if v, ok := urls[k]; ok {
			return v, true
		}
		return env(k)
	}
}
