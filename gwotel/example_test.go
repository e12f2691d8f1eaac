package gwotel_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/gwotel"
)

// An openai-go client whose routed requests become GenAI spans: one per
// request, and a child per attempt (here a 503, retried, then a success).
func Example() {
	// A local OpenAI-compatible provider, failing once.
	p := gatewaytest.NewServer(gatewaytest.WithAPIKey("sk-local"))
	defer p.Close()
	p.Enqueue(gatewaytest.Fault{Status: 503})

	// Your TracerProvider (an OTLP exporter in production).
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	client := openai.NewClient(option.WithBaseURL(p.URL), option.WithAPIKey("sk-local"), option.WithHTTPClient(&http.Client{}))
	inst, err := gwtransport.Init(&client, []string{"local/small"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "local", BaseURL: p.URL, APIKey: "sk-local"}),
		gwtransport.WithClock(instantClock{}), // tests only: no real backoff
		gwotel.Option(gwotel.WithTracerProvider(tp)),
	)
	if err != nil {
		panic(err)
	}
	defer inst.Uninstall()

	_, err = client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	})
	if err != nil {
		panic(err)
	}
	for _, s := range exp.GetSpans() {
		a := attrMap(s.Attributes)
		fmt.Println(s.Name, a["gwtransport.target"], a["error.type"], a["gen_ai.usage.output_tokens"])
	}
	// Output:
	// chat small local/small 503 <nil>
	// chat small local/small <nil> <nil>
	// chat gateway local/small <nil> 5
}
