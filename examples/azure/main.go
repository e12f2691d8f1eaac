// Command azure falls back from OpenAI to an Azure OpenAI deployment, both
// local: the Azure attempt uses the deployment path, the api-version query
// and the api-key header, and never sees the OpenAI key.
//
//	go run ./examples/azure
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	openaiLocal := gatewaytest.NewServer(gatewaytest.WithName("openai (local)"), gatewaytest.WithAPIKey("sk-openai"))
	defer openaiLocal.Close()
	azureLocal := gatewaytest.NewServer(gatewaytest.WithName("azure (local)"), gatewaytest.WithAPIKey("azure-key"))
	defer azureLocal.Close()
	openaiLocal.SetFault(&gatewaytest.Fault{Status: 500})

	client := openai.NewClient(option.WithBaseURL(openaiLocal.URL), option.WithAPIKey("sk-openai"))
	// In production the Azure provider reads AZURE_OPENAI_ENDPOINT,
	// AZURE_OPENAI_API_KEY and OPENAI_API_VERSION; here it is explicit.
	_, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "azure/my-gpt-4o-deployment"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "azure", BaseURL: azureLocal.Endpoint, APIKey: "azure-key", APIVersion: "2024-10-21"}),
		gwtransport.WithMaxRetries(0))
	if err != nil {
		log.Fatal(err)
	}
	var raw *http.Response
	res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, option.WithResponseInto(&raw))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("answer from %s: %q, served by %s after %s attempt(s) (%s)\n", res.Model, res.Choices[0].Message.Content,
		raw.Header.Get(gwtransport.HeaderTarget), raw.Header.Get(gwtransport.HeaderAttempts), raw.Header.Get(gwtransport.HeaderFallbackReason))
	for _, r := range azureLocal.Journal() {
		fmt.Printf("Azure received: %s %s?%s api-key=%s authorization=%q\n", r.Method, r.Path, r.Query, r.Header.Get("Api-Key"), r.Header.Get("Authorization"))
	}
}
