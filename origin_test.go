package gwtransport_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestAzureClientShapes: real openai-go clients for Azure (the azure
// package's classic deployments, a client whose base URL is a deployment,
// and the v1 API with the azure package's Api-Key) call chat completions, responses and embeddings through the
// gateway, with a fallback in each direction between the Azure deployment
// and OpenAI. The Azure environment is empty: the client itself serves
// Azure. Each server receives exactly the URL, query and credentials of its
// own provider; the Azure key never reaches OpenAI and OpenAI's request
// never goes to the Azure endpoint.
func TestAzureClientShapes(t *testing.T) {
	const version = "2024-06-01"
	type call func(c *openai.Client) (string, error)
	calls := map[string]call{
		"chat/completions": func(c *openai.Client) (string, error) {
			r, err := c.Chat.Completions.New(context.Background(), chatParams("gateway"))
			if err != nil {
				return "", err
			}
			return r.Model, nil
		},
		"responses": func(c *openai.Client) (string, error) {
			r, err := c.Responses.New(context.Background(), responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
			if err != nil {
				return "", err
			}
			return r.Model, nil
		},
		"embeddings": func(c *openai.Client) (string, error) {
			r, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "gateway", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
			if err != nil {
				return "", err
			}
			return r.Model, nil
		},
	}
	shapes := []struct {
		name   string
		client func(az *gatewaytest.Server) []option.RequestOption
		// path and query the Azure server must receive for op
		azure func(op string) (path, query, deployment string)
	}{
		{
			name: "azure package (classic)",
			client: func(az *gatewaytest.Server) []option.RequestOption {
				return []option.RequestOption{azure.WithEndpoint(az.Endpoint, version), azure.WithAPIKey("key-azure")}
			},
			azure: func(op string) (string, string, string) {
				if op == "responses" {
					return "/openai/responses", "api-version=" + version, ""
				}
				return "/openai/deployments/dep/" + op, "api-version=" + version, "dep"
			},
		},
		{
			name: "classic deployments (base URL at a deployment)",
			client: func(az *gatewaytest.Server) []option.RequestOption {
				return []option.RequestOption{option.WithBaseURL(az.Endpoint + "/openai/deployments/client-dep/"), option.WithQuery("api-version", version), azure.WithAPIKey("key-azure")}
			},
			azure: func(op string) (string, string, string) {
				return "/openai/deployments/dep/" + op, "api-version=" + version, "dep"
			},
		},
		{
			name: "v1 API",
			client: func(az *gatewaytest.Server) []option.RequestOption {
				return []option.RequestOption{option.WithBaseURL(az.Endpoint + "/openai/v1/"), azure.WithAPIKey("key-azure")}
			},
			azure: func(op string) (string, string, string) { return "/openai/v1/" + op, "", "" },
		},
	}
	for _, shape := range shapes {
		for _, op := range []string{"chat/completions", "responses", "embeddings"} {
			for _, azureFirst := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/azure_first=%t", shape.name, op, azureFirst), func(t *testing.T) {
					az := server(t, "azure", "key-azure")
					oa := server(t, "openai", "key-openai")
					targets := []string{"azure/dep", "openai/gpt-4o"}
					wantModel := "gpt-4o"
					if azureFirst {
						az.SetFault(&gatewaytest.Fault{Status: 503})
					} else {
						targets = []string{"openai/gpt-4o", "azure/dep"}
						oa.SetFault(&gatewaytest.Fault{Status: 503})
						wantModel = "dep"
					}
					c := openai.NewClient(append(shape.client(az), option.WithHTTPClient(&http.Client{}), option.WithMaxRetries(0))...)
					mustInit(t, &c, targets, noEnv(), gwtransport.WithMaxRetries(0),
						gwtransport.WithProvider(gwtransport.Provider{Name: "openai", BaseURL: oa.URL, APIKey: "key-openai"}))

					model, err := calls[op](&c)
					require.NoError(t, err)
					assert.Equal(t, wantModel, model)

					ja, jo := az.Journal(), oa.Journal()
					require.Len(t, ja, 1, "the Azure deployment is tried once, at the client's endpoint")
					require.Len(t, jo, 1, "OpenAI is tried once, at its own URL")
					path, query, dep := shape.azure(op)
					assert.Equal(t, path, ja[0].Path)
					assert.Equal(t, query, ja[0].Query)
					assert.Equal(t, dep, ja[0].Deployment)
					assert.Equal(t, "dep", ja[0].Model, "the body names the deployment")
					assert.Equal(t, []string{gatewaytest.Mask("key-azure")}, ja[0].Header.Values("Api-Key"))
					assert.Empty(t, ja[0].Header.Values("Authorization"), "OpenAI's key never reaches Azure")

					assert.Equal(t, "/v1/"+op, jo[0].Path)
					assert.Empty(t, jo[0].Query, "no api-version at OpenAI")
					assert.Equal(t, "gpt-4o", jo[0].Model)
					assert.Equal(t, []string{gatewaytest.Mask("Bearer key-openai")}, jo[0].Header.Values("Authorization"))
					assert.Empty(t, jo[0].Header.Values("Api-Key"), "the Azure key never reaches OpenAI")
				})
			}
		}
	}
}

// TestNestedBaseURLsOnOneServer: two providers on one server, one at "/"
// and one at "/v1", each with its own key; the caller's client addresses
// "/v1" with its own key. Whatever the map order of the providers (a fresh
// Init each round), the "/v1" provider is the caller's: its target keeps
// the caller's key, and the "/" provider's target gets its configured key
// and none of the caller's headers.
func TestNestedBaseURLsOnOneServer(t *testing.T) {
	s := server(t, "shared", "", gatewaytest.WithSecretHeaders("X-Client-Secret"))
	for round := 0; round < 20; round++ {
		s.Reset()
		hc := &http.Client{}
		m, err := gwtransport.Init(hc, []string{"root/m-root", "v1/m-v1"}, noEnv(), gwtransport.WithMaxRetries(0),
			gwtransport.WithProvider(gwtransport.Provider{Name: "root", BaseURL: s.Endpoint, APIKey: "key-root"}),
			gwtransport.WithProvider(gwtransport.Provider{Name: "v1", BaseURL: s.URL, APIKey: "key-v1"}))
		require.NoError(t, err)
		s.Enqueue(gatewaytest.Fault{Status: 503})
		res := postJSON(t, hc, s.URL+"/chat/completions", http.Header{
			"Authorization":   {"Bearer key-client"},
			"X-Client-Secret": {"client-secret"},
		}, `{"model":"gateway","messages":[]}`)
		m.Uninstall()
		require.Equal(t, 200, res.StatusCode)
		j := s.Journal()
		require.Len(t, j, 2)
		assert.Equal(t, "m-root", j[0].Model)
		assert.Equal(t, "/chat/completions", j[0].Path)
		assert.Equal(t, []string{gatewaytest.Mask("Bearer key-root")}, j[0].Header.Values("Authorization"), "round %d", round)
		assert.Empty(t, j[0].Header.Values("X-Client-Secret"), "round %d", round)
		assert.Equal(t, "m-v1", j[1].Model)
		assert.Equal(t, "/v1/chat/completions", j[1].Path)
		assert.Equal(t, []string{gatewaytest.Mask("Bearer key-client")}, j[1].Header.Values("Authorization"), "round %d: the caller's own provider keeps the caller's key", round)
		assert.Equal(t, []string{gatewaytest.Mask("client-secret")}, j[1].Header.Values("X-Client-Secret"))
	}
}

// TestIdenticalBaseURLsRefused: two providers at one base URL, neither the
// client provider, cannot be told apart: Init refuses with an error
// naming both and the fix; with one of them named the client provider,
// Init accepts and the other gets its own key.
func TestIdenticalBaseURLsRefused(t *testing.T) {
	s := server(t, "shared", "")
	opts := []gwtransport.Option{noEnv(), gwtransport.WithMaxRetries(0),
		gwtransport.WithProvider(gwtransport.Provider{Name: "acct1", BaseURL: s.URL, APIKey: "key-1"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "acct2", BaseURL: s.URL + "/", APIKey: "key-2"})}
	_, err := gwtransport.Init(&http.Client{}, []string{"acct1/a", "acct2/b"}, opts...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `providers "acct1" and "acct2" have the same base URL`)
	assert.Contains(t, err.Error(), "WithClientProvider")

	hc := &http.Client{}
	mustInit(t, hc, []string{"acct1/a", "acct2/b"}, append(opts, gwtransport.WithClientProvider("acct1"))...)
	s.Enqueue(gatewaytest.Fault{Status: 503})
	res := postJSON(t, hc, s.URL+"/chat/completions", http.Header{"Authorization": {"Bearer key-caller"}}, `{"model":"gateway","messages":[]}`)
	require.Equal(t, 200, res.StatusCode)
	j := s.Journal()
	require.Len(t, j, 2)
	assert.Equal(t, []string{gatewaytest.Mask("Bearer key-caller")}, j[0].Header.Values("Authorization"), "acct1 is the caller's")
	assert.Equal(t, []string{gatewaytest.Mask("Bearer key-2")}, j[1].Header.Values("Authorization"), "acct2 gets its own key")
}

// TestAzureResponsesFallback: an OpenAI client's Responses request falls
// back to a configured Azure deployment (classic style): Azure receives it
// where its Responses API is, /openai/responses?api-version=..., with the
// deployment in the body and the configured key, and nothing of OpenAI's.
func TestAzureResponsesFallback(t *testing.T) {
	oa := server(t, "openai", "key-openai")
	az := server(t, "azure", "key-azure")
	oa.SetFault(&gatewaytest.Fault{Status: 503})
	client := openaiClient(oa, "key-openai", option.WithOrganization("org-1"), option.WithMaxRetries(0))
	mustInit(t, client, []string{"openai/gpt-4o", "azure/dep"}, gwtransport.WithMaxRetries(0),
		envOf(map[string]string{"AZURE_OPENAI_ENDPOINT": az.Endpoint, "AZURE_OPENAI_API_KEY": "key-azure", "OPENAI_API_VERSION": "2025-03-01-preview"}))
	r, err := client.Responses.New(context.Background(), responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	require.NoError(t, err)
	assert.Equal(t, "dep", r.Model)
	j := az.Journal()
	require.Len(t, j, 1)
	assert.Equal(t, "/openai/responses", j[0].Path)
	assert.Equal(t, "api-version=2025-03-01-preview", j[0].Query)
	assert.Equal(t, "dep", j[0].Model)
	assert.Equal(t, []string{gatewaytest.Mask("key-azure")}, j[0].Header.Values("Api-Key"))
	assert.Empty(t, j[0].Header.Values("Authorization"))
	assert.Empty(t, j[0].Header.Values("Openai-Organization"))
}
