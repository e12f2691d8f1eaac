// Command goopenai puts gwtransport under a github.com/sashabaranov/go-openai
// client: set the wrapped http.Client in ClientConfig.HTTPClient before
// NewClientWithConfig.
//
//	go run ./examples/goopenai
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	primary := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("key-1"))
	defer primary.Close()
	backup := gatewaytest.NewServer(gatewaytest.WithName("backup"), gatewaytest.WithAPIKey("key-2"))
	defer backup.Close()
	primary.SetFault(&gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After-Ms": "20"}})

	hc := &http.Client{}
	tr, err := gwtransport.NewTransport(nil, []string{"openai/gpt-4o", "backup/gpt-4o"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "backup", BaseURL: backup.URL, APIKey: "key-2"}),
		gwtransport.WithMaxRetries(1))
	if err != nil {
		log.Fatal(err)
	}
	hc.Transport = tr
	cfg := goopenai.DefaultConfig("key-1")
	cfg.BaseURL = primary.URL
	cfg.HTTPClient = hc
	client := goopenai.NewClientWithConfig(cfg)

	req := goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	res, err := client.CreateChatCompletion(context.Background(), req)
	if err != nil {
		log.Fatal(err)
	}
	// go-openai keeps the response headers: the gateway's say which target
	// served and after how many attempts.
	fmt.Printf("chat:   %q from %s, served by %s after %s attempt(s) (%s)\n", res.Choices[0].Message.Content, res.Model,
		res.Header().Get(gwtransport.HeaderTarget), res.Header().Get(gwtransport.HeaderAttempts), res.Header().Get(gwtransport.HeaderFallbackReason))

	stream, err := client.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	text := ""
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if len(ch.Choices) > 0 {
			text += ch.Choices[0].Delta.Content
		}
	}
	fmt.Printf("stream: %q, served by %s after %s attempt(s) (%s)\n", text,
		stream.Header().Get(gwtransport.HeaderTarget), stream.Header().Get(gwtransport.HeaderAttempts), stream.Header().Get(gwtransport.HeaderFallbackReason))
}
