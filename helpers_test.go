package gwtransport_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// fakeClock records every wait and returns at once, advancing its time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// noEnv is a hermetic environment: no provider key leaks in from the
// machine running the tests.
func noEnv() gwtransport.Option {
	return gwtransport.WithEnv(func(string) (string, bool) { return "", false })
}

func envOf(m map[string]string) gwtransport.Option {
	return gwtransport.WithEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func seeded(seed uint64) gwtransport.Option {
	return gwtransport.WithRand(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

// server starts a gatewaytest provider closed with the test.
func server(t *testing.T, name, key string, opts ...gatewaytest.Option) *gatewaytest.Server {
	t.Helper()
	s := gatewaytest.NewServer(append([]gatewaytest.Option{gatewaytest.WithName(name), gatewaytest.WithAPIKey(key)}, opts...)...)
	t.Cleanup(s.Close)
	return s
}

// provider is the gwtransport configuration of a gatewaytest server.
func provider(name string, s *gatewaytest.Server, key string) gwtransport.Option {
	return gwtransport.WithProvider(gwtransport.Provider{Name: name, BaseURL: s.URL, APIKey: key})
}

// openaiClient is a real openai-go client addressed at s.
func openaiClient(s *gatewaytest.Server, key string, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(s.URL), option.WithAPIKey(key), option.WithHTTPClient(&http.Client{}),
	}, opts...)...)
	return &c
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	}
}

// chat sends a non-streamed chat request and returns the completion and the
// raw response.
func chat(t *testing.T, c *openai.Client, model string, opts ...option.RequestOption) (*openai.ChatCompletion, *http.Response, error) {
	t.Helper()
	var raw *http.Response
	res, err := c.Chat.Completions.New(context.Background(), chatParams(model), append(opts, option.WithResponseInto(&raw))...)
	return res, raw, err
}

// streamChat sends a streamed chat request and returns the text, the raw
// response and the stream's error.
func streamChat(t *testing.T, ctx context.Context, c *openai.Client, model string, opts ...option.RequestOption) (string, *http.Response, error) {
	t.Helper()
	var raw *http.Response
	s := c.Chat.Completions.NewStreaming(ctx, chatParams(model), append(opts, option.WithResponseInto(&raw))...)
	defer s.Close()
	text := ""
	for s.Next() {
		for _, ch := range s.Current().Choices {
			text += ch.Delta.Content
		}
	}
	return text, raw, s.Err()
}

// models returns the models of every request in a journal.
func models(j []gatewaytest.Request) []string {
	out := make([]string, len(j))
	for i, r := range j {
		out[i] = r.Model
	}
	return out
}

// newTransportAny calls NewTransport with models held in an any (a test
// table's field): a []string, a map[string]float64, or nil for FromConfig.
func newTransportAny(models any, opts ...gwtransport.Option) (*gwtransport.Transport, error) {
	switch m := models.(type) {
	case []string:
		return gwtransport.NewTransport(nil, m, opts...)
	case map[string]float64:
		return gwtransport.NewTransport(nil, m, opts...)
	case nil:
		return gwtransport.NewTransport(nil, gwtransport.FromConfig, opts...)
	}
	panic(fmt.Sprintf("newTransportAny: models of type %T", models))
}

// initAny calls Init with models held in an any, as newTransportAny does.
func initAny(clients []any, models any, opts ...gwtransport.Option) (*gwtransport.Installation, error) {
	switch m := models.(type) {
	case []string:
		return gwtransport.Init(clients, m, opts...)
	case map[string]float64:
		return gwtransport.Init(clients, m, opts...)
	case nil:
		return gwtransport.Init(clients, gwtransport.FromConfig, opts...)
	}
	panic(fmt.Sprintf("initAny: models of type %T", models))
}

func mustInit[C gwtransport.Clients, M gwtransport.Models](t *testing.T, clients C, models M, opts ...gwtransport.Option) *gwtransport.Installation {
	t.Helper()
	m, err := gwtransport.Init(clients, models, opts...)
	require.NoError(t, err)
	t.Cleanup(m.Uninstall)
	return m
}
