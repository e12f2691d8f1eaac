// Command weighted spreads requests over three local providers by weight
// and shows that a failing one is replaced by sampling the remaining
// weights. The sampling is seeded (WithRand), so the split it prints is the
// same on every run.
//
//	go run ./examples/weighted
package main

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	names := []string{"alpha", "beta", "gamma"}
	var opts []gwtransport.Option
	servers := map[string]*gatewaytest.Server{}
	for _, n := range names {
		s := gatewaytest.NewServer(gatewaytest.WithName(n), gatewaytest.WithAPIKey("key-"+n))
		defer s.Close()
		servers[n] = s
		opts = append(opts, gwtransport.WithProvider(gwtransport.Provider{Name: n, BaseURL: s.URL, APIKey: "key-" + n}))
	}
	client := openai.NewClient(option.WithBaseURL(servers["alpha"].URL), option.WithAPIKey("key-alpha"))
	weights := map[string]float64{"alpha/model-a": 0.6, "beta/model-b": 0.3, "gamma/model-c": 0.1}
	opts = append(opts, gwtransport.WithMaxRetries(0),
		// A fixed seed: the same split on every run. (Without WithRand the
		// sampling is seeded randomly.)
		gwtransport.WithRand(rand.New(rand.NewPCG(1, 2))),
		// No breaker: the failing provider stays in the draw, so what is
		// printed depends on the seed alone, not on how fast this machine
		// runs the 200 requests against the breaker's cooldown.
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	if _, err := gwtransport.Init(&client, weights, opts...); err != nil {
		log.Fatal(err)
	}

	run := func(title string) {
		served, attempts := map[string]int{}, map[string]int{}
		for i := 0; i < 200; i++ {
			var raw *http.Response
			_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model:    "gateway",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			}, option.WithResponseInto(&raw))
			if err != nil {
				log.Fatal(err)
			}
			target := raw.Header.Get(gwtransport.HeaderTarget)
			n, err := strconv.Atoi(raw.Header.Get(gwtransport.HeaderAttempts))
			if err != nil {
				log.Fatal(err)
			}
			served[target]++
			attempts[target] += n
		}
		fmt.Println(title)
		keys := make([]string, 0, len(served))
		for k := range served {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  %-14s weight %.1f  served %3d of 200, in %3d attempts\n", k, weights[k], served[k], attempts[k])
		}
	}
	run("All healthy:")
	servers["alpha"].SetFault(&gatewaytest.Fault{Status: 503})
	run("alpha down: its share goes to beta and gamma, 3:1 as their weights (a request drawing alpha first takes 2 attempts):")
}
