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
// clients is one client or a slice of them: *http.Client (its Transport is
// wrapped; nil means http.DefaultTransport) and *openai.Client from
// github.com/openai/openai-go/v3 (every service of the client, chat
// completions, responses, embeddings and the rest, goes through the
// gateway). models is a []string in priority order or a map[string]float64
// of weights, each key "<provider>/<model>".
//
// Calling Init again on a client already installed replaces its
// configuration; it never nests. The returned RetryManager can uninstall.
//
//	client := openai.NewClient()
//	mgr, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "azure/gpt-4o"})
func Init(clients any, models any, opts ...Option) (*RetryManager, error) {
	g, err := compile(models, opts)
	if err != nil {
		return nil, err
	}
	list, err := flattenClients(clients)
	if err != nil {
		return nil, err
	}
	m := &RetryManager{g: g}
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
	case nil:
		return nil, errors.New("gwtransport: no client given")
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
		default:
			return nil, fmt.Errorf("gwtransport: client %d has unsupported type %T; want *http.Client or *openai.Client (wrap other HTTP clients with NewTransport)", i, c)
		}
	}
	return list, nil
}

// installHTTP wraps an http.Client's transport, or reconfigures the gateway
// already there.
func (m *RetryManager) installHTTP(c *http.Client, g *gateway) {
	if t, ok := c.Transport.(*Transport); ok {
		t.gw.Store(g)
		m.httpClients = append(m.httpClients, httpInstall{client: c, t: t})
		return
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base, orig: c.Transport, installed: true}
	t.gw.Store(g)
	c.Transport = t
	m.httpClients = append(m.httpClients, httpInstall{client: c, t: t})
}

// installOpenAI adds the gateway to every options list of an openai-go
// client: each service keeps its own copy, so the client's top-level Options
// alone would not reach client.Chat.Completions.
func (m *RetryManager) installOpenAI(c *openai.Client, g *gateway) {
	var hook *openaiHook
	eachOptions(c, func(opts []option.RequestOption) []option.RequestOption {
		for _, o := range opts {
			if h, ok := o.(hookOption); ok && hook == nil {
				hook = h.hook
			}
		}
		return opts
	})
	if hook == nil {
		base := g.s.baseTransport
		if base == nil {
			base = http.DefaultTransport
		}
		hook = &openaiHook{t: &Transport{base: base}}
		hook.opt = hookOption{RequestOption: option.WithMiddleware(hook.middleware), hook: hook}
	}
	hook.t.gw.Store(g)
	eachOptions(c, func(opts []option.RequestOption) []option.RequestOption {
		for _, o := range opts {
			if h, ok := o.(hookOption); ok && h.hook == hook {
				return opts
			}
		}
		out := make([]option.RequestOption, len(opts), len(opts)+1)
		copy(out, opts)
		return append(out, hook.opt)
	})
	m.openaiClients = append(m.openaiClients, openaiInstall{client: c, hook: hook})
}

// openaiHook is the gateway installed in one openai-go client. It runs as
// the client's innermost middleware and sends each attempt itself: through
// the client's own HTTP client when the attempt stays on the host the client
// addressed, through its base transport otherwise.
type openaiHook struct {
	t   *Transport
	opt hookOption
}

func (h *openaiHook) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	return h.t.gw.Load().roundTrip(req, sender{base: h.t.base, next: next})
}

// hookOption marks the option the gateway added, so that Init can find it
// again (never nesting) and the RetryManager can remove it.
type hookOption struct {
	option.RequestOption
	hook *openaiHook
}

var optionsType = reflect.TypeOf([]option.RequestOption(nil))

// eachOptions calls f on every []option.RequestOption field reachable
// through the client's struct fields (its services and their sub-services)
// and stores what f returns.
func eachOptions(c *openai.Client, f func([]option.RequestOption) []option.RequestOption) {
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
				opts := fv.Interface().([]option.RequestOption)
				fv.Set(reflect.ValueOf(f(opts)))
			case fv.Kind() == reflect.Struct:
				walk(fv, depth+1)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), 0)
}
