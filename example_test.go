package gwtransport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// Init installs the gateway into an existing openai-go client in one line;
// call sites keep working and say "model": "gateway".
func ExampleInit() {
	openaiLocal := gatewaytest.NewServer(gatewaytest.WithName("openai"), gatewaytest.WithAPIKey("sk-1"))
	defer openaiLocal.Close()
	groqLocal := gatewaytest.NewServer(gatewaytest.WithName("groq"), gatewaytest.WithAPIKey("gsk-1"))
	defer groqLocal.Close()
	openaiLocal.SetFault(&gatewaytest.Fault{Status: 503})

	client := openai.NewClient(option.WithBaseURL(openaiLocal.URL), option.WithAPIKey("sk-1"))
	_, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "groq/llama-3.3-70b"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "groq", BaseURL: groqLocal.URL, APIKey: "gsk-1"}),
		gwtransport.WithMaxRetries(0))
	if err != nil {
		panic(err)
	}

	res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Model, "-", res.Choices[0].Message.Content)
	// Output: llama-3.3-70b - Hello from groq
}

// NewTransport wraps any http.Client, including the one given to go-openai.
func ExampleNewTransport() {
	local := gatewaytest.NewServer(gatewaytest.WithName("local"))
	defer local.Close()

	tr, err := gwtransport.NewTransport(http.DefaultTransport, map[string]float64{"vllm/qwen-2.5": 1},
		gwtransport.WithProvider(gwtransport.Provider{Name: "vllm", BaseURL: local.URL, Auth: gwtransport.AuthNone}))
	if err != nil {
		panic(err)
	}
	hc := &http.Client{Transport: tr}
	res, err := hc.Post(local.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	fmt.Println(res.Header.Get(gwtransport.HeaderTarget), res.Header.Get(gwtransport.HeaderAttempts))
	// Output: vllm/qwen-2.5 1
}
