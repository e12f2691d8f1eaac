package gwtransport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func TestInterceptsGatewayModel(t *testing.T) {
	p := server(t, "primary", "key-a")
	c := openaiClient(p, "key-a")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv())

	res, raw, err := chat(t, c, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "gpt-4o", res.Model)
	assert.Equal(t, "Hello from primary", res.Choices[0].Message.Content)
	assert.Equal(t, "openai/gpt-4o", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "1", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Empty(t, raw.Header.Get(gwtransport.HeaderFallbackReason))

	j := p.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/v1/chat/completions", j[0].Path)
	assert.Equal(t, "gpt-4o", j[0].Model)
	assert.Equal(t, gatewaytest.Mask("Bearer key-a"), j[0].Header.Get("Authorization"))
}

// TestPassThroughIsByteIdentical sends the same request with and without the
// gateway installed: a model that is neither the route nor a target reaches
// the provider with the same body and headers.
func TestPassThroughIsByteIdentical(t *testing.T) {
	p := server(t, "primary", "key-a")
	send := func(c *openai.Client) gatewaytest.Request {
		p.Reset()
		_, _, err := chat(t, c, "gpt-4o-mini",
			option.WithHeader("X-Stainless-Retry-Count", "x"), // fixed value: the SDK's own counter is not compared
			option.WithJSONSet("temperature", 0.25))
		require.NoError(t, err)
		j := p.Journal()
		require.Len(t, j, 1)
		return j[0]
	}
	direct := send(openaiClient(p, "key-a"))
	c := openaiClient(p, "key-a")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv())
	through := send(c)

	assert.Equal(t, string(direct.Body), string(through.Body))
	assert.Equal(t, direct.Path, through.Path)
	assert.Equal(t, direct.Header, through.Header)
}

func TestPassThroughOfNonJSONAndBodylessRequests(t *testing.T) {
	p := server(t, "primary", "")
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	hc := &http.Client{Transport: tr}

	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantModel   string
	}{
		{"GET without body", http.MethodGet, "", "", ""},
		{"text body naming the route", http.MethodPost, "text/plain", `{"model":"gateway"}`, "gateway"},
		{"JSON array", http.MethodPost, "application/json", `[{"model":"gateway"}]`, ""},
		{"model not a string", http.MethodPost, "application/json", `{"model":42,"messages":[]}`, ""},
		{"other model", http.MethodPost, "application/json", `{"model":"gpt-4o-mini","messages":[]}`, "gpt-4o-mini"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.Reset()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, p.URL+"/chat/completions", body)
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := hc.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget))
			j := p.Journal()
			require.Len(t, j, 1)
			assert.Equal(t, tc.body, string(j[0].Body))
			assert.Equal(t, tc.wantModel, j[0].Model)
		})
	}
}

func TestMalformedBodyNamingTheRouteIsAClearError(t *testing.T) {
	p := server(t, "primary", "")
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, p.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[1,2}`))
	require.NoError(t, err)
	_, err = tr.RoundTrip(req)
	require.ErrorIs(t, err, gwtransport.ErrMalformedBody)
	assert.Zero(t, p.Count())
}

func TestOrderedFallback(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	c := server(t, "c", "key-c")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	b.SetFault(&gatewaytest.Fault{Status: 500})
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o", "bprov/model-b", "cprov/model-c"},
		noEnv(), provider("bprov", b, "key-b"), provider("cprov", c, "key-c"),
		gwtransport.WithMaxRetries(0))

	res, raw, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "model-c", res.Model)
	assert.Equal(t, "Hello from c", res.Choices[0].Message.Content)
	assert.Equal(t, "cprov/model-c", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "3", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, "openai/gpt-4o#1 503 server_error; bprov/model-b#1 500 server_error", raw.Header.Get(gwtransport.HeaderFallbackReason))
	assert.Equal(t, []string{"gpt-4o"}, models(a.Journal()))
	assert.Equal(t, []string{"model-b"}, models(b.Journal()))
	assert.Equal(t, []string{"model-c"}, models(c.Journal()))
}

func TestAddressingATargetTriesItFirst(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	b.Enqueue(gatewaytest.Fault{Status: 503})
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o", "bprov/model-b"},
		noEnv(), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0))

	res, _, err := chat(t, client, "bprov/model-b")
	require.NoError(t, err)
	assert.Equal(t, "gpt-4o", res.Model, "the fallback after the addressed target")
	assert.Equal(t, []string{"model-b"}, models(b.Journal()))
	assert.Equal(t, []string{"gpt-4o"}, models(a.Journal()))
}

func TestAllTargetsFailReturnsLastResponseWithoutSDKRetries(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	a.SetFault(&gatewaytest.Fault{Status: 503, Message: "a is down"})
	b.SetFault(&gatewaytest.Fault{Status: 502, Message: "b is down"})
	// The openai-go client keeps its default of 2 retries: the gateway's
	// final response must stop them.
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o", "bprov/model-b"},
		noEnv(), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0))

	_, raw, err := chat(t, client, "gateway")
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 502, apiErr.StatusCode)
	assert.Equal(t, "b is down", apiErr.Message)
	assert.Equal(t, "false", raw.Header.Get("X-Should-Retry"))
	assert.Equal(t, "bprov/model-b", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "2", raw.Header.Get(gwtransport.HeaderAttempts))
	assert.Equal(t, 1, a.Count())
	assert.Equal(t, 1, b.Count())
}

// TestWeightedDistribution checks that over many requests the first pick
// follows the weights, with a fixed seed.
func TestWeightedDistribution(t *testing.T) {
	servers := map[string]*gatewaytest.Server{}
	opts := []gwtransport.Option{noEnv(), seeded(7)}
	weights := map[string]float64{"p1/m": 0.6, "p2/m": 0.3, "p3/m": 0.1}
	for _, name := range []string{"p1", "p2", "p3"} {
		s := server(t, name, "")
		servers[name] = s
		opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s.URL, Auth: gwtransport.AuthNone}))
	}
	tr, err := gwtransport.NewTransport(nil, weights, opts...)
	require.NoError(t, err)
	hc := &http.Client{Transport: tr}
	const n = 2000
	for i := 0; i < n; i++ {
		res, err := hc.Post(servers["p1"].URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for name, w := range map[string]float64{"p1": 0.6, "p2": 0.3, "p3": 0.1} {
		got := float64(servers[name].Count()) / n
		// 4 standard deviations of a binomial proportion.
		tol := 4 * math.Sqrt(w*(1-w)/n)
		assert.InDelta(t, w, got, tol, "share of %s", name)
	}
}

// TestWeightedFallbackSamplesRemaining: after a failure the next target is
// drawn among the remaining positive weights; a weight of 0 is never used,
// and a failed target is never picked again.
func TestWeightedFallbackSamplesRemaining(t *testing.T) {
	s := map[string]*gatewaytest.Server{}
	opts := []gwtransport.Option{noEnv(), seeded(11), gwtransport.WithMaxRetries(0)}
	for _, name := range []string{"p1", "p2", "p3", "p4"} {
		s[name] = server(t, name, "")
		opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s[name].URL, Auth: gwtransport.AuthNone}))
	}
	s["p1"].SetFault(&gatewaytest.Fault{Status: 503})
	tr, err := gwtransport.NewTransport(nil, map[string]float64{"p1/m": 100, "p2/m": 0.5, "p3/m": 0.5, "p4/m": 0}, opts...)
	require.NoError(t, err)
	hc := &http.Client{Transport: tr}
	served := map[string]int{}
	const n = 400
	for i := 0; i < n; i++ {
		res, err := hc.Post(s["p1"].URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode)
		served[res.Header.Get(gwtransport.HeaderTarget)]++
	}
	assert.Zero(t, s["p4"].Count(), "weight 0 is never a fallback")
	assert.Equal(t, n, served["p2/m"]+served["p3/m"])
	assert.InDelta(t, 0.5, float64(served["p2/m"])/n, 4*math.Sqrt(0.25/n))
	assert.LessOrEqual(t, s["p1"].Count(), n, "p1 is attempted at most once per request")
}

func TestAzureRewrite(t *testing.T) {
	openaiSrv := server(t, "openai", "key-openai")
	az := server(t, "azure", "key-azure")
	openaiSrv.SetFault(&gatewaytest.Fault{Status: 503})
	client := openaiClient(openaiSrv, "key-openai", option.WithOrganization("org-1"), option.WithProject("proj-1"))
	mustInit(t, client, []string{"openai/gpt-4o", "azure/my-gpt4o"},
		envOf(map[string]string{"AZURE_OPENAI_ENDPOINT": az.Endpoint, "AZURE_OPENAI_API_KEY": "key-azure", "OPENAI_API_VERSION": "2024-06-01"}),
		gwtransport.WithMaxRetries(0))

	res, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "my-gpt4o", res.Model)
	j := az.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/openai/deployments/my-gpt4o/chat/completions", j[0].Path)
	assert.Equal(t, "api-version=2024-06-01", j[0].Query)
	assert.Equal(t, gatewaytest.Mask("key-azure"), j[0].Header.Get("Api-Key"))
	assert.Empty(t, j[0].Header.Values("Authorization"), "the OpenAI key never reaches Azure")
	assert.Empty(t, j[0].Header.Values("Openai-Organization"))
	assert.Empty(t, j[0].Header.Values("Openai-Project"))
}

func TestAzureClientAsOrigin(t *testing.T) {
	az := server(t, "azure", "key-azure")
	c := openai.NewClient(azure.WithEndpoint(az.Endpoint, "2024-06-01"), azure.WithAPIKey("key-azure"), option.WithHTTPClient(&http.Client{}))
	// The env has no Azure settings: the client itself serves Azure.
	mustInit(t, &c, []string{"azure/deploy-1"}, noEnv())

	res, _, err := chat(t, &c, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "deploy-1", res.Model)
	j := az.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/openai/deployments/deploy-1/chat/completions", j[0].Path)
	assert.Equal(t, "deploy-1", j[0].Deployment)
	assert.Equal(t, "api-version=2024-06-01", j[0].Query)
	assert.Equal(t, gatewaytest.Mask("key-azure"), j[0].Header.Get("Api-Key"))
}

func TestAzureV1Style(t *testing.T) {
	a := server(t, "a", "key-a")
	az := server(t, "azure", "key-azure")
	a.SetFault(&gatewaytest.Fault{Status: 500})
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o", "azure/dep"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "azure", BaseURL: az.Endpoint, APIKey: "key-azure", Style: gwtransport.StyleAzureV1}))
	_, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	j := az.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/openai/v1/chat/completions", j[0].Path)
	assert.Equal(t, "dep", j[0].Model)
	assert.Equal(t, gatewaytest.Mask("key-azure"), j[0].Header.Get("Api-Key"))
}

// TestCredentialIsolation: each provider sees its own key and nothing of
// the others', including provider-specific secret headers, on fallbacks in
// both directions.
func TestCredentialIsolation(t *testing.T) {
	a := server(t, "a", "key-a", gatewaytest.WithSecretHeaders("X-B-Secret"))
	b := server(t, "b", "key-b", gatewaytest.WithSecretHeaders("X-B-Secret"))
	a.SetFault(&gatewaytest.Fault{Status: 503})
	client := openaiClient(a, "key-a", option.WithOrganization("org-a"), option.WithHeader("Api-Key", "key-a-azure-style"))
	mustInit(t, client, []string{"openai/gpt-4o", "bprov/m"}, noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "bprov", BaseURL: b.URL, APIKey: "key-b", Headers: map[string]string{"X-B-Secret": "b-only"}}))

	_, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	ja, jb := a.Journal(), b.Journal()
	require.Len(t, ja, 1)
	require.Len(t, jb, 1)
	assert.Equal(t, gatewaytest.Mask("Bearer key-a"), ja[0].Header.Get("Authorization"))
	assert.Empty(t, ja[0].Header.Values("X-B-Secret"))
	assert.Equal(t, []string{gatewaytest.Mask("Bearer key-b")}, jb[0].Header.Values("Authorization"))
	assert.Equal(t, []string{gatewaytest.Mask("b-only")}, jb[0].Header.Values("X-B-Secret"))
	for _, h := range []string{"Api-Key", "Openai-Organization", "Openai-Project"} {
		assert.Empty(t, jb[0].Header.Values(h), h)
	}
}

func TestMissingCredentialsFailOverWithoutSending(t *testing.T) {
	a := server(t, "a", "key-a")
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"groq/llama-3.3-70b", "openai/gpt-4o"}, noEnv())
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	res, err := client.Chat.Completions.New(ctx, chatParams("gateway"))
	require.NoError(t, err)
	assert.Equal(t, "gpt-4o", res.Model)
	at := trail.Attempts()
	require.Len(t, at, 2)
	assert.ErrorIs(t, at[0].Err, gwtransport.ErrMissingCredentials)
	assert.Contains(t, at[0].Err.Error(), "GROQ_API_KEY")
	assert.Equal(t, gwtransport.NextTarget, at[0].Action)
}

// TestBodyPreserved: only "model" changes; tools, response_format, stream
// options and unknown fields arrive byte for byte.
func TestBodyPreserved(t *testing.T) {
	a := server(t, "a", "key-a")
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o"}, noEnv())
	params := chatParams("gateway")
	params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	params.Temperature = openai.Float(0.2)
	_, err := client.Chat.Completions.New(context.Background(), params,
		option.WithJSONSet("x_vendor_extension", map[string]any{"keep": []int{1, 2, 3}}))
	require.NoError(t, err)

	// The same request, sent directly, is the reference.
	ref := server(t, "ref", "key-a")
	_, err = openaiClient(ref, "key-a").Chat.Completions.New(context.Background(), params,
		option.WithJSONSet("x_vendor_extension", map[string]any{"keep": []int{1, 2, 3}}))
	require.NoError(t, err)
	want := bytes.Replace(ref.Journal()[0].Body, []byte(`"model":"gateway"`), []byte(`"model":"gpt-4o"`), 1)
	assert.Equal(t, string(want), string(a.Journal()[0].Body))
	assert.Contains(t, string(want), `"x_vendor_extension":{"keep":[1,2,3]}`)
}

func TestStreamingThroughGateway(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"openai/gpt-4o", "bprov/m"}, noEnv(), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0))

	text, raw, err := streamChat(t, context.Background(), client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "Hello from b tok2 tok3 tok4 tok5 ", text)
	assert.Equal(t, "bprov/m", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, "text/event-stream", raw.Header.Get("Content-Type"))
	jb := b.Journal()
	require.Len(t, jb, 1)
	assert.True(t, jb[0].Stream)
}

func TestOtherEndpoints(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	client := openaiClient(a, "key-a")
	mustInit(t, client, []string{"bprov/m"}, noEnv(), provider("bprov", b, "key-b"))
	ctx := context.Background()

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "gateway", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
	require.NoError(t, err)
	assert.Equal(t, "m", emb.Model)

	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	require.NoError(t, err)
	assert.Equal(t, "m", resp.Model)
	assert.Equal(t, "Hello from b", resp.OutputText())

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "gateway", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	require.NoError(t, err)
	assert.Equal(t, "m", comp.Model)

	paths := []string{}
	for _, r := range b.Journal() {
		paths = append(paths, r.Path)
	}
	assert.Equal(t, []string{"/v1/embeddings", "/v1/responses", "/v1/completions"}, paths)
	assert.Zero(t, a.Count())
}

func TestInitTwiceReplacesAndNeverNests(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	client := openaiClient(a, "key-a")
	hc := &http.Client{}
	for i := 0; i < 3; i++ {
		mustInit(t, []any{client, hc}, []string{"openai/gpt-4o", "bprov/m"}, noEnv(), provider("bprov", b, "key-b"),
			gwtransport.WithMaxRetries(1), gwtransport.WithBackoff(gwtransport.Backoff{}))
	}
	_, isGateway := hc.Transport.(*gwtransport.Transport)
	require.True(t, isGateway)
	assert.Equal(t, http.DefaultTransport, hc.Transport.(*gwtransport.Transport).Base(), "not a gateway wrapping a gateway")

	_, raw, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, 2, a.Count(), "one attempt plus one retry, not multiplied by the Init calls")
	assert.Equal(t, 1, b.Count())
	assert.Equal(t, "3", raw.Header.Get(gwtransport.HeaderAttempts))

	// A later Init with other models replaces the configuration.
	mustInit(t, client, []string{"bprov/m"}, noEnv(), provider("bprov", b, "key-b"))
	a.Reset()
	_, raw, err = chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Zero(t, a.Count())
	assert.Equal(t, "bprov/m", raw.Header.Get(gwtransport.HeaderTarget))
}

func TestUninstallRestoresClients(t *testing.T) {
	a := server(t, "a", "key-a")
	b := server(t, "b", "key-b")
	client := openaiClient(a, "key-a")
	orig := &http.Client{}
	m, err := gwtransport.Init([]any{client, orig}, []string{"bprov/m"}, noEnv(), provider("bprov", b, "key-b"))
	require.NoError(t, err)

	_, _, err = chat(t, client, "gateway")
	require.NoError(t, err)
	require.Equal(t, 1, b.Count())

	m.Uninstall()
	m.Uninstall()
	// The wrapper stays (Uninstall never writes a client), transparent.
	require.IsType(t, &gwtransport.Transport{}, orig.Transport)
	assert.Equal(t, http.DefaultTransport, orig.Transport.(*gwtransport.Transport).Base())
	assert.Nil(t, orig.Transport.(*gwtransport.Transport).Stats(), "no gateway configuration left")
	res, _, err := chat(t, client, "gateway")
	require.NoError(t, err)
	assert.Equal(t, "gateway", res.Model, "the request goes to the client's own server untouched")
	assert.Equal(t, 1, a.Count())
	assert.Equal(t, 1, b.Count())
}

func TestGoOpenAIClient(t *testing.T) {
	a := server(t, "a", "key-a")
	az := server(t, "azure", "key-azure")
	a.SetFault(&gatewaytest.Fault{Status: 503})

	hc := &http.Client{}
	tr, err := gwtransport.NewTransport(hc.Transport, []string{"openai/gpt-4o", "azure/dep-1"},
		envOf(map[string]string{"AZURE_OPENAI_ENDPOINT": az.Endpoint, "AZURE_OPENAI_API_KEY": "key-azure"}),
		gwtransport.WithMaxRetries(0))
	require.NoError(t, err)
	hc.Transport = tr
	cfg := goopenai.DefaultConfig("key-a")
	cfg.BaseURL = a.URL
	cfg.HTTPClient = hc
	c := goopenai.NewClientWithConfig(cfg)

	req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	res, err := c.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "dep-1", res.Model)
	assert.Equal(t, "Hello from azure", res.Choices[0].Message.Content)
	assert.Equal(t, "/openai/deployments/dep-1/chat/completions", az.Journal()[0].Path)

	assert.Equal(t, "Hello from azure tok2 tok3 tok4 tok5 ", goOpenAIStream(t, c, req))
}

func TestGoOpenAIAzureClientAsOrigin(t *testing.T) {
	az := server(t, "azure", "key-azure")
	hc := &http.Client{}
	tr, err := gwtransport.NewTransport(nil, []string{"azure/dep-2"}, noEnv())
	require.NoError(t, err)
	hc.Transport = tr
	cfg := goopenai.DefaultAzureConfig("key-azure", az.Endpoint)
	cfg.HTTPClient = hc
	c := goopenai.NewClientWithConfig(cfg)
	res, err := c.CreateChatCompletion(context.Background(), goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	require.NoError(t, err)
	assert.Equal(t, "dep-2", res.Model)
	j := az.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/openai/deployments/dep-2/chat/completions", j[0].Path)
	assert.Equal(t, gatewaytest.Mask("key-azure"), j[0].Header.Get("Api-Key"))
}

func TestInitValidation(t *testing.T) {
	hc := &http.Client{}
	tests := []struct {
		name    string
		clients []any
		models  any
		opts    []gwtransport.Option
		wantErr string
	}{
		{"no models", []any{hc}, nil, nil, "no models: FromConfig"},
		{"empty list", []any{hc}, []string{}, nil, "at least one model"},
		{"no slash", []any{hc}, []string{"gpt-4o"}, nil, "<provider>/<model>"},
		{"empty model", []any{hc}, []string{"openai/"}, nil, "<provider>/<model>"},
		{"unknown provider", []any{hc}, []string{"nope/x"}, nil, `unknown provider "nope"`},
		{"duplicate", []any{hc}, []string{"openai/a", "openai/a"}, nil, "listed twice"},
		{"negative weight", []any{hc}, map[string]float64{"openai/a": -1}, nil, "finite non-negative"},
		{"NaN weight", []any{hc}, map[string]float64{"openai/a": math.NaN()}, nil, "finite non-negative"},
		{"infinite weight", []any{hc}, map[string]float64{"openai/a": math.Inf(1)}, nil, "finite non-negative"},
		{"all zero", []any{hc}, map[string]float64{"openai/a": 0, "openai/b": 0}, nil, "at least one weight must be positive"},
		{"no client", []any{}, []string{"openai/a"}, nil, "no client"},
		{"client value", []any{openai.NewClient()}, []string{"openai/a"}, nil, "pass its address"},
		{"unsupported client", []any{42}, []string{"openai/a"}, nil, "unsupported type int"},
		{"bad role", []any{hc}, []string{"openai/a"}, []gwtransport.Option{gwtransport.WithModelMessages(map[string][]gwtransport.Message{"openai/a": {{Role: "assistant", Content: "x"}}})}, `role "assistant"`},
		{"per-model typo", []any{hc}, []string{"openai/a"}, []gwtransport.Option{gwtransport.WithModelTimeout(map[string]time.Duration{"openai/b": time.Second})}, `not one of the models`},
		{"negative retries", []any{hc}, []string{"openai/a"}, []gwtransport.Option{gwtransport.WithMaxRetries(-1)}, "must not be negative"},
		{"bad provider URL", []any{hc}, []string{"x/a"}, []gwtransport.Option{gwtransport.WithProvider(gwtransport.Provider{Name: "x", BaseURL: "not a url"})}, "base URL must be absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := initAny(tc.clients, tc.models, append([]gwtransport.Option{noEnv()}, tc.opts...)...)
			require.Error(t, err)
			assert.Nil(t, m)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.Nil(t, hc.Transport, "a failed Init installs nothing")
		})
	}
}

func TestSplitOnFirstSlashOnly(t *testing.T) {
	a := server(t, "a", "")
	tr, err := gwtransport.NewTransport(nil, []string{"together/meta-llama/Llama-3.3-70B-Instruct-Turbo"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "together", BaseURL: a.URL, Auth: gwtransport.AuthNone}))
	require.NoError(t, err)
	res, err := (&http.Client{Transport: tr}).Post(a.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	defer res.Body.Close()
	var out struct{ Model string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	assert.Equal(t, "meta-llama/Llama-3.3-70B-Instruct-Turbo", out.Model)
}

// goOpenAIStream sends a streamed request with a go-openai client and
// returns the text.
func goOpenAIStream(t *testing.T, c *goopenai.Client, req goopenai.ChatCompletionRequest) string {
	t.Helper()
	stream, err := c.CreateChatCompletionStream(context.Background(), req)
	require.NoError(t, err)
	defer stream.Close()
	text := ""
	for {
		ch, err := stream.Recv()
		if err == io.EOF {
			return text
		}
		require.NoError(t, err)
		if len(ch.Choices) > 0 {
			text += ch.Choices[0].Delta.Content
		}
	}
}
