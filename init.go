package gwtransport

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Init installs the gateway into clients a program already has, so that
// every request whose JSON body says "model": "gateway" (see
// [WithRouteName]) is routed over models, with retries and fallback; other
// requests are untouched. Call sites do not change.
//
// clients is one client or a slice of them (see [Clients]): *http.Client
// (its Transport is wrapped; nil means http.DefaultTransport) and
// *openai.Client from github.com/openai/openai-go/v3 (every service of the
// client, chat completions, responses, embeddings and the rest, goes
// through the gateway). A go-openai client cannot be installed into: wrap
// its http.Client with [NewTransport]. models is a []string in priority
// order or a map[string]float64 of weights, each key "<provider>/<model>",
// or [FromConfig] when [WithConfig] gives them (see [Models]). The
// compiler rejects other types.
//
// Calling Init again on a client already installed replaces its
// configuration, every option included (WithBaseTransport too); it never
// nests. The returned Installation can uninstall.
//
// The first Init of a client writes it (an *http.Client's Transport, an
// openai-go client's service options), so, as with any configuration of a
// client, it must happen before the client is shared between goroutines.
// After that, Init, [Installation.Uninstall] and [Reconfigure]
// never write the client again: they may run while requests are in flight,
// and each request keeps the configuration it started with.
//
// In an openai-go client the gateway does the retrying: for a request it
// routes, the client's own retries (its MaxRetries, a per-call
// option.WithMaxRetries, the azcore pipeline of azure.WithTokenCredential)
// make no further upstream request; they get the gateway's final answer.
// Requests the gateway passes through keep the client's retries.
//
//	client := openai.NewClient()
//	mgr, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "azure/gpt-4o"})
func Init[C Clients, M Models](clients C, models M, opts ...Option) (*Installation, error) {
	g, err := compile(modelsArg(models), opts)
	if err != nil {
		return nil, err
	}
	list, err := flattenClients(clientsArg(clients))
	if err != nil {
		return nil, err
	}
	m := &Installation{g: g}
	for _, c := range list {
		switch c := c.(type) {
		case *http.Client:
			m.installHTTP(c, g)
		case *openai.Client:
			m.installOpenAI(c, g)
		}
	}
	return m, nil
}

// flattenClients checks clients and returns them as a list.
func flattenClients(clients any) ([]any, error) {
	var list []any
	switch c := clients.(type) {
	case []any:
		list = c
	case []*http.Client:
		for _, x := range c {
			list = append(list, x)
		}
	case []*openai.Client:
		for _, x := range c {
			list = append(list, x)
		}
	default:
		list = []any{c}
	}
	if len(list) == 0 {
		return nil, errors.New("gwtransport: no client given")
	}
	for i, c := range list {
		switch c := c.(type) {
		case *http.Client:
			if c == nil {
				return nil, fmt.Errorf("gwtransport: client %d is a nil *http.Client", i)
			}
		case *openai.Client:
			if c == nil {
				return nil, fmt.Errorf("gwtransport: client %d is a nil *openai.Client", i)
			}
		case openai.Client:
			return nil, fmt.Errorf("gwtransport: client %d is an openai.Client value; pass its address (&client) so the gateway can be installed", i)
		case nil:
			return nil, fmt.Errorf("gwtransport: client %d is nil", i)
		default:
			return nil, unsupportedClient(i, c)
		}
	}
	return list, nil
}

// installHTTP wraps an http.Client's transport, or reconfigures the gateway
// already there. Only the first Init of a client writes its Transport
// field; later ones swap the installed Transport's configuration, so they
// are safe while requests are in flight.
func (m *Installation) installHTTP(c *http.Client, g *gateway) {
	t, ok := c.Transport.(*Transport)
	if !ok {
		t = &Transport{base: c.Transport}
		t.bind.install(g, m)
		c.Transport = t
	} else {
		t.bind.install(g, m)
	}
	m.slots = append(m.slots, &t.bind)
}

// installOpenAI adds the gateway to every options list of an openai-go
// client: each service keeps its own copy, so the client's top-level Options
// alone would not reach client.Chat.Completions. A client installed before
// already has the gateway's option in every list: then nothing is written,
// only the hook's configuration swapped.
func (m *Installation) installOpenAI(c *openai.Client, g *gateway) {
	fields := optionFields(c)
	var hook *openaiHook
	for _, f := range fields {
		for _, o := range f.Interface().([]option.RequestOption) {
			if hook = hookOf(o); hook != nil {
				break
			}
		}
		if hook != nil {
			break
		}
	}
	if hook == nil {
		hook = newOpenAIHook()
	}
	hook.bind.install(g, m)
fields:
	for _, f := range fields {
		opts := f.Interface().([]option.RequestOption)
		for _, o := range opts {
			if hookOf(o) == hook {
				continue fields
			}
		}
		out := make([]option.RequestOption, len(opts), len(opts)+1)
		copy(out, opts)
		f.Set(reflect.ValueOf(append(out, hook.opt)))
	}
	m.slots = append(m.slots, &hook.bind)
}

var optionsType = reflect.TypeOf([]option.RequestOption(nil))

// optionFields returns every settable []option.RequestOption field
// reachable through the client's struct fields (its services and their
// sub-services). Reading them is safe while requests run; Init writes one
// only where the gateway's option is missing.
func optionFields(c *openai.Client) []reflect.Value {
	var out []reflect.Value
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		if depth > 8 {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fv := v.Field(i)
			if !fv.CanSet() {
				continue
			}
			switch {
			case fv.Type() == optionsType:
				out = append(out, fv)
			case fv.Kind() == reflect.Struct:
				walk(fv, depth+1)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), 0)
	return out
}

// goOpenAIPath is the import path of go-openai, whose client Init cannot
// install into: it keeps its http.Client in an unexported field.
const goOpenAIPath = "github.com/sashabaranov/go-openai"

// unsupportedClient explains why client i cannot be installed into. The
// type is named with its import path: go-openai's package is named openai
// too, so "*openai.Client" alone would not say which one.
func unsupportedClient(i int, c any) error {
	t := reflect.TypeOf(c)
	named := t
	if named.Kind() == reflect.Pointer {
		named = named.Elem()
	}
	name := t.String()
	if p := named.PkgPath(); p != "" {
		name += " (" + p + ")"
	}
	if named.PkgPath() == goOpenAIPath {
		return fmt.Errorf("gwtransport: client %d is a go-openai client, %s, which Init cannot install into; "+
			"wrap the *http.Client of its ClientConfig.HTTPClient with gwtransport.NewTransport instead", i, name)
	}
	return fmt.Errorf("gwtransport: client %d has unsupported type %s; want *http.Client or *openai.Client (github.com/openai/openai-go/v3); "+
		"wrap the *http.Client of other clients with gwtransport.NewTransport", i, name)
}
