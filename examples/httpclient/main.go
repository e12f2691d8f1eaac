// Command httpclient wraps a plain http.Client with gwtransport.NewTransport:
// any code that posts OpenAI-style JSON through it gets the gateway.
//
//	go run ./examples/httpclient
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	a := gatewaytest.NewServer(gatewaytest.WithName("a"))
	defer a.Close()
	b := gatewaytest.NewServer(gatewaytest.WithName("b"))
	defer b.Close()
	a.Enqueue(gatewaytest.Fault{Reset: true}, gatewaytest.Fault{Reset: true}, gatewaytest.Fault{Reset: true})

	hc := &http.Client{}
	tr, err := gwtransport.NewTransport(hc.Transport, []string{"local-a/model-a", "local-b/model-b"},
		gwtransport.WithProvider(gwtransport.Provider{Name: "local-a", BaseURL: a.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "local-b", BaseURL: b.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithBackoff(gwtransport.Backoff{}))
	if err != nil {
		log.Fatal(err)
	}
	hc.Transport = tr

	res, err := hc.Post(a.URL+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"gateway","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Printf("%s served by %s after %s attempts (%s)\n%s", res.Status,
		res.Header.Get(gwtransport.HeaderTarget), res.Header.Get(gwtransport.HeaderAttempts), res.Header.Get(gwtransport.HeaderFallbackReason), body)
}
