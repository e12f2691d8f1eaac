package gwtransport

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOriginResolution: the table of which provider a request's client
// serves. Each case is compiled and resolved many times over, each time
// from a fresh provider map, so that an answer depending on map iteration
// order cannot pass.
func TestOriginResolution(t *testing.T) {
	p := func(name, base string, style URLStyle) Provider {
		return Provider{Name: name, BaseURL: base, Style: style, Auth: AuthNone}
	}
	noEnv := WithEnv(func(string) (string, bool) { return "", false })
	tests := []struct {
		name    string
		provs   []Provider
		client  string // WithClientProvider; "" is the default, openai
		url     string
		header  http.Header
		want    string // the origin provider
		wantErr string // at Init, or at resolution when want is ""
	}{
		// Longest prefix, nested base URLs on one host.
		{name: "nested: /v1 beats /", provs: []Provider{p("root", "http://h.test", ""), p("v1", "http://h.test/v1", "")}, url: "http://h.test/v1/chat/completions", want: "v1"},
		{name: "nested: / for a path outside /v1", provs: []Provider{p("root", "http://h.test", ""), p("v1", "http://h.test/v1", "")}, url: "http://h.test/chat/completions", want: "root"},
		{name: "nested: segment boundary, /v10 is not under /v1", provs: []Provider{p("root", "http://h.test/", ""), p("v1", "http://h.test/v1", "")}, url: "http://h.test/v10/chat/completions", want: "root"},
		{name: "nested: three levels", provs: []Provider{p("root", "http://h.test", ""), p("a", "http://h.test/a", ""), p("ab", "http://h.test/a/b", "")}, url: "http://h.test/a/b/embeddings", want: "ab"},
		{name: "nested: azure endpoint under an openai-style /v1", provs: []Provider{p("azure", "http://h.test", StyleAzure), p("v1", "http://h.test/v1", "")}, url: "http://h.test/v1/responses", want: "v1"},
		{name: "host case and default port", provs: []Provider{p("x", "https://API.x.test:443/v1", "")}, url: "https://api.X.test/v1/chat/completions", want: "x"},
		{name: "scheme differs", provs: []Provider{p("x", "https://h.test/v1", "")}, url: "http://h.test/v1/chat/completions", want: "openai"},
		{name: "port differs", provs: []Provider{p("x", "http://h.test:8080/v1", "")}, url: "http://h.test:8081/v1/chat/completions", want: "openai"},
		{name: "builtin openai by its URL", url: "https://api.openai.com/v1/chat/completions", client: "groq", want: "openai"},
		{name: "builtin groq's /openai/v1 is not Azure", url: "https://api.groq.com/openai/v1/chat/completions", header: http.Header{"Api-Key": {"k"}}, want: "groq"},

		// Identical base URLs.
		{name: "identical, the client provider wins", provs: []Provider{p("a", "http://h.test/v1", ""), p("b", "http://h.test/v1", "")}, client: "b", url: "http://h.test/v1/chat/completions", want: "b"},
		{name: "identical, the client provider wins (other order)", provs: []Provider{p("b", "http://h.test/v1", ""), p("a", "http://h.test/v1", "")}, client: "a", url: "http://h.test/v1/chat/completions", want: "a"},
		{name: "identical, neither the client provider: refused", provs: []Provider{p("a", "http://h.test/v1/", ""), p("b", "http://H.test/v1", "")}, url: "http://h.test/v1/chat/completions", wantErr: `providers "a" and "b" have the same base URL http://h.test/v1`},
		{name: "identical to a builtin: refused", provs: []Provider{p("mine", "https://api.groq.com/openai/v1", "")}, url: "http://h.test/v1/chat/completions", wantErr: `"groq" and "mine" have the same base URL`},
		{name: "identical to a builtin that is the client provider", provs: []Provider{p("mine", "https://api.openai.com/v1", "")}, url: "https://api.openai.com/v1/chat/completions", want: "openai"},
		{name: "identical, styles tell classic Azure apart", provs: []Provider{p("oa", "http://h.test", ""), p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, url: "http://h.test/openai/deployments/gateway/chat/completions?api-version=1", want: "az"},
		{name: "identical, styles tell Azure's responses apart", provs: []Provider{p("oa", "http://h.test", ""), p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, url: "http://h.test/openai/responses?api-version=1", want: "az"},
		{name: "identical, styles tell Azure v1 apart", provs: []Provider{p("oa", "http://h.test", ""), p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, url: "http://h.test/openai/v1/embeddings", want: "v1"},
		{name: "identical, styles tell OpenAI apart", provs: []Provider{p("oa", "http://h.test", ""), p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, url: "http://h.test/chat/completions", want: "oa"},
		{name: "identical, no style fits, no client provider: not sent", provs: []Provider{p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, url: "http://h.test/x/chat/completions", wantErr: "cannot route /x/chat/completions: providers az, v1 share its base URL"},
		{name: "identical, no style fits, the client provider wins", provs: []Provider{p("az", "http://h.test", StyleAzure), p("v1", "http://h.test", StyleAzureV1)}, client: "v1", url: "http://h.test/x/chat/completions", want: "v1"},

		// Azure shapes on a URL no base URL matches.
		{name: "azure package: chat via deployments", url: "http://az.test/openai/deployments/gateway/chat/completions?api-version=2024-06-01", want: "azure"},
		{name: "azure package: embeddings via deployments", url: "http://az.test/openai/deployments/gateway/embeddings?api-version=2024-06-01", want: "azure"},
		{name: "azure package: responses", url: "http://az.test/openai/responses?api-version=2025-03-01-preview", want: "azure"},
		{name: "azure package: moderations", url: "http://az.test/openai/moderations?x=1&api-version=2025-03-01-preview", want: "azure"},
		{name: "azure v1 with api-version", url: "http://az.test/openai/v1/chat/completions?api-version=preview", want: "azure"},
		{name: "azure v1 with an api-key header", url: "http://az.test/openai/v1/responses", header: http.Header{"Api-Key": {"k"}}, want: "azure"},
		{name: "azure v1 with a non-canonical api-key header", url: "http://az.test/openai/v1/embeddings", header: http.Header{"api-key": {"k"}}, want: "azure"},
		{name: "azure v1 on an Azure host", url: "https://res.openai.azure.com/openai/v1/chat/completions", want: "azure"},
		{name: "azure host, AI services", url: "https://res.services.ai.azure.com/openai/v1/embeddings", want: "azure"},
		{name: "azure host, cognitive services, any path", url: "https://res.cognitiveservices.azure.com/openai/chat/completions", want: "azure"},
		{name: "APIM prefix before the deployments", url: "https://apim.test/oai/openai/deployments/gw/chat/completions?api-version=1", want: "azure"},
		{name: "azure shape, Azure-styled client provider", provs: []Provider{p("myaz", "", StyleAzureV1)}, client: "myaz", url: "http://az.test/openai/responses?api-version=1", want: "myaz"},
		{name: "azure endpoint configured: prefix match", provs: []Provider{p("myaz", "http://az.test", StyleAzure)}, url: "http://az.test/openai/responses?api-version=1", want: "myaz"},
		{name: "openai v1 path without any Azure sign", url: "http://x.test/openai/v1/chat/completions", want: "openai"},
		{name: "unknown URL: the client provider", url: "http://x.test/v1/chat/completions", client: "groq", want: "groq"},
		{name: "api-version lookalike is not api-version", url: "http://x.test/openai/responses?xapi-version=1", want: "openai"},

		// Errors name the path, never the query.
		{name: "no operation", url: "http://x.test/v1/files?key=SECRETQ", wantErr: "cannot route /v1/files: not an operation"},
		{name: "deployment without operation", url: "http://x.test/openai/deployments/gw?key=SECRETQ", wantErr: "cannot route /openai/deployments/gw: no operation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			for i := 0; i < 30; i++ {
				opts := []Option{noEnv}
				for _, pr := range tc.provs {
					opts = append(opts, WithProvider(pr))
				}
				if tc.client != "" {
					opts = append(opts, WithClientProvider(tc.client))
				}
				g, err := compile([]string{"openai/x"}, opts)
				if err != nil {
					require.NotEmpty(t, tc.wantErr, "compile: %v", err)
					assert.Contains(t, err.Error(), tc.wantErr)
					assert.Contains(t, err.Error(), "WithClientProvider", "the error says how to fix it")
					return
				}
				h := tc.header
				if h == nil {
					h = http.Header{}
				}
				o, err := g.origins.parse(u, h)
				if tc.want == "" {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tc.wantErr)
					assert.NotContains(t, err.Error(), "SECRETQ")
					return
				}
				require.NoError(t, err)
				require.Equal(t, tc.want, o.provider.name, "run %d", i)
			}
		})
	}
}

// TestAzureTargetURLs: the URL of an attempt at a StyleAzure provider
// other than the caller's, for every operation, as openai-go's azure
// package would build it.
func TestAzureTargetURLs(t *testing.T) {
	p, err := resolveProvider(Provider{Name: "azure", BaseURL: "https://res.openai.azure.com/", Style: StyleAzure, APIVersion: "2025-03-01-preview"}, func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	o := &origin{url: &url.URL{Scheme: "https", Host: "api.openai.com", Path: "/v1/x"}}
	want := map[string]string{
		"chat/completions":   "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2025-03-01-preview",
		"completions":        "https://res.openai.azure.com/openai/deployments/dep/completions?api-version=2025-03-01-preview",
		"embeddings":         "https://res.openai.azure.com/openai/deployments/dep/embeddings?api-version=2025-03-01-preview",
		"audio/speech":       "https://res.openai.azure.com/openai/deployments/dep/audio/speech?api-version=2025-03-01-preview",
		"images/generations": "https://res.openai.azure.com/openai/deployments/dep/images/generations?api-version=2025-03-01-preview",
		"responses":          "https://res.openai.azure.com/openai/responses?api-version=2025-03-01-preview",
		"moderations":        "https://res.openai.azure.com/openai/moderations?api-version=2025-03-01-preview",
	}
	require.Len(t, want, len(operations), "every operation")
	for _, op := range operations {
		o.op = op
		u, err := targetURL(o, p, "dep")
		require.NoError(t, err)
		assert.Equal(t, want[op], u.String(), op)
	}
}

// TestRedactQueries: the table of texts the redaction sees.
func TestRedactQueries(t *testing.T) {
	tests := []struct{ in, want string }{
		{`Post "http://h/v1/chat?code=abc&x=1": EOF`, `Post "http://h/v1/chat?REDACTED": EOF`},
		{`Post "https://u:p@h/chat?sig": EOF`, `Post "https://u:p@h/chat?REDACTED": EOF`},
		{`GET /v1/chat?key=abc failed`, `GET /v1/chat?REDACTED failed`},
		{`a=1 then x?token=abc`, `a=1 then x?REDACTED`},
		{`two http://a/?k=1 and http://b/p?k=2#frag end`, `two http://a/?REDACTED and http://b/p?REDACTED end`},
		{`what? nothing here?`, `what? nothing here?`},
		{`is it ok?yes`, `is it ok?yes`},
		{`no query at all`, `no query at all`},
		{`trailing ?`, `trailing ?`},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, redactQueries(tc.in), tc.in)
		assert.False(t, strings.Contains(redactQueries(tc.in), "abc"))
	}
}

// BenchmarkAttemptRequest: building one attempt's request from an
// openai-go-like caller request, at the caller's own provider and at
// another provider (the allowlist filter).
func BenchmarkAttemptRequest(b *testing.B) {
	g, err := compile([]string{"pa/m", "pb/m"}, []Option{
		WithEnv(func(string) (string, bool) { return "", false }),
		WithProvider(Provider{Name: "pa", BaseURL: "http://a.test/v1", APIKey: "ka"}),
		WithProvider(Provider{Name: "pb", BaseURL: "http://b.test/v1", APIKey: "kb", Headers: map[string]string{"X-B": "b"}}),
		WithClientProvider("pa"),
	})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://a.test/v1/chat/completions", nil)
	for k, v := range map[string]string{
		"Authorization": "Bearer ka", "Content-Type": "application/json", "Accept": "application/json",
		"User-Agent": "OpenAI/Go 3.8.1", "X-Stainless-Lang": "go", "X-Stainless-Package-Version": "3.8.1",
		"X-Stainless-Os": "Linux", "X-Stainless-Arch": "x64", "X-Stainless-Runtime": "go",
		"X-Stainless-Runtime-Version": "go1.22", "X-Stainless-Retry-Count": "0", "X-Stainless-Timeout": "600",
		"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Ocp-Apim-Subscription-Key": "s",
	} {
		req.Header.Set(k, v)
	}
	o, err := g.origins.parse(req.URL, req.Header)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"m","messages":[]}`)
	ctx := context.Background()
	now := time.Now()
	for _, tc := range []struct {
		name string
		t    *target
	}{{"own", g.routes["gateway"].targets[0]}, {"other", g.routes["gateway"].targets[1]}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := g.newAttemptRequest(ctx, req, &o, tc.t, body, true, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("origin", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := g.origins.parse(req.URL, req.Header); err != nil {
				b.Fatal(err)
			}
		}
	})
}
