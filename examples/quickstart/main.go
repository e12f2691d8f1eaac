// Command quickstart shows gwtransport in an existing openai-go program,
// offline: it starts two local OpenAI-compatible providers, the first of
// them failing, installs the gateway with one line, and sends chat requests
// with model "gateway", streamed and not.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	// Two local providers stand in for OpenAI and Groq.
	openaiLocal := gatewaytest.NewServer(gatewaytest.WithName("openai (local)"), gatewaytest.WithAPIKey("sk-openai-local"))
	defer openaiLocal.Close()
	groqLocal := gatewaytest.NewServer(gatewaytest.WithName("groq (local)"), gatewaytest.WithAPIKey("gsk-groq-local"))
	defer groqLocal.Close()

	// The existing program: an openai-go client.
	client := openai.NewClient(option.WithBaseURL(openaiLocal.URL), option.WithAPIKey("sk-openai-local"))

	// The one line (plus where the local Groq lives).
	_, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "groq/llama-3.3-70b"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "groq", BaseURL: groqLocal.URL, APIKey: "gsk-groq-local"}),
		gwtransport.WithMaxRetries(1),
		gwtransport.WithBackoff(gwtransport.Backoff{Initial: 50 * time.Millisecond, Multiplier: 2, Max: time.Second, Jitter: 0.2}),
	)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}

	fmt.Println("OpenAI is down (503):")
	openaiLocal.SetFault(&gatewaytest.Fault{Status: 503, Message: "overloaded"})
	ask(ctx, &client, params)
	stream(ctx, &client, params)

	fmt.Println("OpenAI is back:")
	openaiLocal.SetFault(nil)
	ask(ctx, &client, params)
	stream(ctx, &client, params)
}

func ask(ctx context.Context, client *openai.Client, params openai.ChatCompletionNewParams) {
	var raw *http.Response
	res, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&raw))
	if err != nil {
		log.Fatal(err)
	}
	report("chat  ", raw, res.Model, res.Choices[0].Message.Content)
}

func stream(ctx context.Context, client *openai.Client, params openai.ChatCompletionNewParams) {
	var raw *http.Response
	s := client.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&raw))
	defer s.Close()
	text, model := "", ""
	for s.Next() {
		c := s.Current()
		model = c.Model
		for _, ch := range c.Choices {
			text += ch.Delta.Content
		}
	}
	if err := s.Err(); err != nil {
		log.Fatal(err)
	}
	report("stream", raw, model, text)
}

func report(kind string, raw *http.Response, model, text string) {
	fmt.Printf("  %s served by %-20s model %-14s after %s attempt(s): %q\n",
		kind, raw.Header.Get(gwtransport.HeaderTarget), model, raw.Header.Get(gwtransport.HeaderAttempts), text)
	if why := raw.Header.Get(gwtransport.HeaderFallbackReason); why != "" {
		fmt.Printf("         failed before: %s\n", why)
	}
}
