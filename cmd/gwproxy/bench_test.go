package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// BenchmarkProxy measures a chat request and a 5-event stream through
// gwproxy against a local provider, end to end over loopback, and the
// proxy's own time (gwproxy_overhead_seconds) per request.
func BenchmarkProxy(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "chat"
		body := fmt.Sprintf(chatBody, "gateway")
		if stream {
			name = "stream"
			body = fmt.Sprintf(streamBody, "gateway")
		}
		b.Run(name, func(b *testing.B) {
			prov := gatewaytest.NewServer(gatewaytest.WithName("p"))
			defer prov.Close()
			cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: p/m\nproviders:\n  - name: p\n    base_url: %s\n    key_optional: true\n", hashKey(keyAll), prov.URL)
			p := startProxy(b, cfg, proxyOpts{})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keyAll)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
			b.StopTimer()
			fams := p.metrics()
			for _, m := range fams["gwproxy_overhead_seconds"].GetMetric() {
				if n := m.Histogram.GetSampleCount(); n > 0 {
					b.ReportMetric(m.Histogram.GetSampleSum()/float64(n)*1e6, "overhead-µs/op")
				}
			}
			prov.Reset()
			p.stop()
		})
	}
}
