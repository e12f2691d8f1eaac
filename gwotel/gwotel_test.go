package gwotel_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
	"github.com/gwtransport/gwtransport/gwotel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// instantClock makes backoff waits free.
type instantClock struct{}

func (instantClock) Now() time.Time { return time.Now() }
func (instantClock) Sleep(ctx context.Context, _ time.Duration) error {
	return ctx.Err()
}

// rig is two local providers, pa (the client's own) and pb, a gateway
// over pa/m1 then pb/m2, and OpenTelemetry's in-memory exporter and
// manual metric reader.
type rig struct {
	a, b   *gatewaytest.Server
	exp    *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	opts   []gwtransport.Option
	models []string
}

func newRig(t *testing.T, extra ...gwtransport.Option) *rig {
	t.Helper()
	r := &rig{
		a:      gatewaytest.NewServer(gatewaytest.WithName("a"), gatewaytest.WithAPIKey("sk-a-secret")),
		b:      gatewaytest.NewServer(gatewaytest.WithName("b"), gatewaytest.WithAPIKey("sk-b-secret")),
		exp:    tracetest.NewInMemoryExporter(),
		reader: sdkmetric.NewManualReader(),
		models: []string{"pa/m1", "pb/m2"},
	}
	t.Cleanup(r.a.Close)
	t.Cleanup(r.b.Close)
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.exp))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		_ = r.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	r.opts = append([]gwtransport.Option{
		gwtransport.WithEnv(func(string) (string, bool) { return "", false }),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: r.a.URL, APIKey: "sk-a-secret"}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: r.b.URL, APIKey: "sk-b-secret"}),
		gwtransport.WithMaxRetries(1),
		gwtransport.WithClock(instantClock{}),
		gwotel.Option(gwotel.WithTracerProvider(r.tp), gwotel.WithMeterProvider(mp)),
	}, extra...)
	return r
}

// openai is a real openai-go client of pa, installed.
func (r *rig) openai(t *testing.T) *openai.Client {
	t.Helper()
	c := openai.NewClient(option.WithBaseURL(r.a.URL), option.WithAPIKey("sk-a-secret"), option.WithHTTPClient(&http.Client{}))
	inst, err := gwtransport.Init(&c, r.models, r.opts...)
	require.NoError(t, err)
	t.Cleanup(inst.Uninstall)
	return &c
}

// goopenai is a real go-openai client of pa over the gateway.
func (r *rig) goopenai(t *testing.T) *goopenai.Client {
	t.Helper()
	tr, err := gwtransport.NewTransport(nil, r.models, r.opts...)
	require.NoError(t, err)
	cfg := goopenai.DefaultConfig("sk-a-secret")
	cfg.BaseURL = r.a.URL
	cfg.HTTPClient = &http.Client{Transport: tr}
	return goopenai.NewClientWithConfig(cfg)
}

func port(t *testing.T, s *gatewaytest.Server) int {
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	p, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return p
}

// spanView is what the tests assert of a span.
type spanView struct {
	Name   string
	Parent string // the parent span's name, "" for a root
	Kind   trace.SpanKind
	Status codes.Code
	Desc   string
	Attrs  map[string]any
}

func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// views renders the exported spans in the order they ended, naming each
// parent; it checks that every span has ended and that parents are
// exported spans (or the caller's).
func views(t *testing.T, spans tracetest.SpanStubs) []spanView {
	t.Helper()
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
	}
	out := make([]spanView, 0, len(spans))
	for _, s := range spans {
		require.False(t, s.EndTime.IsZero(), "span %s not ended", s.Name)
		parent := ""
		if s.Parent.IsValid() {
			var ok bool
			parent, ok = names[s.Parent.SpanID()]
			require.True(t, ok, "span %s: parent not exported", s.Name)
			require.Equal(t, s.Parent.TraceID(), s.SpanContext.TraceID())
		}
		out = append(out, spanView{Name: s.Name, Parent: parent, Kind: s.SpanKind, Status: s.Status.Code, Desc: s.Status.Description, Attrs: attrMap(s.Attributes)})
	}
	return out
}

// noSecrets attacks the rule that no key, prompt, completion or query
// string reaches telemetry.
func noSecrets(t *testing.T, spans tracetest.SpanStubs, rm metricdata.ResourceMetrics) {
	t.Helper()
	bad := []string{"sk-a-secret", "sk-b-secret", "Hello", "api-version", "Bearer", "tok1", "tok2"}
	check := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			for _, b := range bad {
				assert.NotContains(t, kv.Value.Emit(), b, "%s: %s", where, kv.Key)
			}
		}
	}
	for _, s := range spans {
		check(s.Name, s.Attributes)
		assert.NotContains(t, s.Status.Description, "sk-")
		for _, e := range s.Events {
			check(s.Name+" event", e.Attributes)
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					check(m.Name, p.Attributes.ToSlice())
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					check(m.Name, p.Attributes.ToSlice())
				}
			}
		}
	}
}

// reqAttrs is a request span's attributes.
func reqAttrs(model string, extra map[string]any) map[string]any {
	m := map[string]any{
		"gen_ai.operation.name": "chat",
		"gen_ai.request.model":  model,
		"gwtransport.route":     "gateway",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// attemptAttrs is an attempt span's attributes.
func attemptAttrs(target, provider, model string, index, try int, fallback bool, port int, extra map[string]any) map[string]any {
	m := map[string]any{
		"gen_ai.operation.name": "chat",
		"gen_ai.provider.name":  provider,
		"gen_ai.request.model":  model,
		"gwtransport.route":     "gateway",
		"gwtransport.target":    target,
		"gwtransport.attempt":   int64(index),
		"gwtransport.try":       int64(try),
		"gwtransport.fallback":  fallback,
		"server.address":        "127.0.0.1",
		"server.port":           int64(port),
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func collect(t *testing.T, r *rig) metricdata.ResourceMetrics {
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	return rm
}

// histPoint is what the tests assert of a histogram's data point.
type histPoint struct {
	Attrs  map[string]any
	Count  uint64
	Sum    float64
	Bounds []float64
}

func histogram(t *testing.T, rm metricdata.ResourceMetrics, name string) (unit string, points []histPoint) {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, gwotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			unit = m.Unit
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					points = append(points, histPoint{Attrs: attrMap(p.Attributes.ToSlice()), Count: p.Count, Sum: -1, Bounds: p.Bounds})
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					points = append(points, histPoint{Attrs: attrMap(p.Attributes.ToSlice()), Count: p.Count, Sum: float64(p.Sum), Bounds: p.Bounds})
				}
			default:
				t.Fatalf("%s: data of type %T", name, m.Data)
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return fmt.Sprint(points[i].Attrs) < fmt.Sprint(points[j].Attrs) })
	return unit, points
}

// TestSpansAndMetrics attacks the spans and metrics of every outcome,
// through a real openai-go client: exact span names, parents, kinds,
// attribute sets and statuses, the duration histogram's attributes and
// buckets, and token usage where the response reports it.
func TestSpansAndMetrics(t *testing.T) {
	type tc struct {
		name    string
		faultsA []gatewaytest.Fault
		faultsB []gatewaytest.Fault
		stream  bool
		wantErr bool
		// want builds the expected spans; pa and pb are the ports.
		want func(pa, pb int) []spanView
		// wantDuration is the duration histogram's point attributes.
		wantDuration func(pa, pb int) map[string]any
		wantTokens   bool
	}
	okReq := func(target, provider, model string, port, attempts int, extra map[string]any) map[string]any {
		m := map[string]any{
			"gen_ai.provider.name":       provider,
			"gen_ai.response.model":      model,
			"server.address":             "127.0.0.1",
			"server.port":                int64(port),
			"gwtransport.attempts":       int64(attempts),
			"gwtransport.target":         target,
			"http.response.status_code":  int64(200),
			"gen_ai.usage.input_tokens":  int64(7),
			"gen_ai.usage.output_tokens": int64(5),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	durOK := func(provider, model string, port int) map[string]any {
		return map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.request.model": "gateway", "gen_ai.provider.name": provider,
			"gen_ai.response.model": model, "server.address": "127.0.0.1", "server.port": int64(port),
		}
	}
	cases := []tc{
		{
			name: "success",
			want: func(pa, pb int) []spanView {
				return []spanView{
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient,
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "succeed", "http.response.status_code": int64(200)})},
					{Name: "chat gateway", Kind: trace.SpanKindClient, Attrs: reqAttrs("gateway", okReq("pa/m1", "pa", "m1", pa, 1, nil))},
				}
			},
			wantDuration: func(pa, pb int) map[string]any { return durOK("pa", "m1", pa) },
			wantTokens:   true,
		},
		{
			name:    "retry then success",
			faultsA: []gatewaytest.Fault{{Status: 503}},
			want: func(pa, pb int) []spanView {
				return []spanView{
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "503",
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "retry_same", "http.response.status_code": int64(503), "error.type": "503"})},
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient,
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 2, 2, false, pa, map[string]any{"gwtransport.action": "succeed", "http.response.status_code": int64(200), "gwtransport.fallback.reason": "pa/m1#1 503 server_error"})},
					{Name: "chat gateway", Kind: trace.SpanKindClient, Attrs: reqAttrs("gateway", okReq("pa/m1", "pa", "m1", pa, 2, nil))},
				}
			},
			wantDuration: func(pa, pb int) map[string]any { return durOK("pa", "m1", pa) },
			wantTokens:   true,
		},
		{
			name:    "fallback",
			faultsA: []gatewaytest.Fault{{Status: 500}, {Reset: true}},
			want: func(pa, pb int) []spanView {
				return []spanView{
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "500",
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "retry_same", "http.response.status_code": int64(500), "error.type": "500"})},
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "_OTHER",
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 2, 2, false, pa, map[string]any{"gwtransport.action": "retry_same", "error.type": "_OTHER", "gwtransport.fallback.reason": "pa/m1#1 500 server_error"})},
					{Name: "chat m2", Parent: "chat gateway", Kind: trace.SpanKindClient,
						Attrs: attemptAttrs("pb/m2", "pb", "m2", 3, 1, true, pb, map[string]any{"gwtransport.action": "succeed", "http.response.status_code": int64(200), "gwtransport.fallback.reason": "<reset>"})},
					{Name: "chat gateway", Kind: trace.SpanKindClient, Attrs: reqAttrs("gateway", okReq("pb/m2", "pb", "m2", pb, 3, nil))},
				}
			},
			wantDuration: func(pa, pb int) map[string]any { return durOK("pb", "m2", pb) },
			wantTokens:   true,
		},
		{
			name:    "final failure",
			faultsA: []gatewaytest.Fault{{Status: 429}, {Status: 429}},
			faultsB: []gatewaytest.Fault{{Status: 503}, {Status: 503}},
			wantErr: true,
			want: func(pa, pb int) []spanView {
				att := func(target, prov, model string, port, i, try int, fb bool, status int, reason string) spanView {
					x := map[string]any{"gwtransport.action": "retry_same", "http.response.status_code": int64(status), "error.type": strconv.Itoa(status)}
					if reason != "" {
						x["gwtransport.fallback.reason"] = reason
					}
					return spanView{Name: "chat " + model, Parent: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: strconv.Itoa(status),
						Attrs: attemptAttrs(target, prov, model, i, try, fb, port, x)}
				}
				return []spanView{
					att("pa/m1", "pa", "m1", pa, 1, 1, false, 429, ""),
					att("pa/m1", "pa", "m1", pa, 2, 2, false, 429, "pa/m1#1 429 invalid_request_error"),
					att("pb/m2", "pb", "m2", pb, 3, 1, true, 503, "pa/m1#2 429 invalid_request_error"),
					att("pb/m2", "pb", "m2", pb, 4, 2, false, 503, "pb/m2#1 503 server_error"),
					{Name: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "503", Attrs: reqAttrs("gateway", map[string]any{
						"gen_ai.provider.name": "pb", "server.address": "127.0.0.1", "server.port": int64(pb),
						"gwtransport.attempts": int64(4), "gwtransport.target": "pb/m2", "http.response.status_code": int64(503), "error.type": "503",
					})},
				}
			},
			wantDuration: func(pa, pb int) map[string]any {
				return map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gateway", "gen_ai.provider.name": "pb",
					"server.address": "127.0.0.1", "server.port": int64(pb), "error.type": "503"}
			},
		},
		{
			name:   "streamed: ends with the stream, usage from its usage chunk",
			stream: true,
			want: func(pa, pb int) []spanView {
				return []spanView{
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient,
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "succeed", "http.response.status_code": int64(200)})},
					{Name: "chat gateway", Kind: trace.SpanKindClient, Attrs: reqAttrs("gateway", okReq("pa/m1", "pa", "m1", pa, 1, nil))},
				}
			},
			wantDuration: func(pa, pb int) map[string]any { return durOK("pa", "m1", pa) },
			wantTokens:   true,
		},
		{
			name:    "streamed: breaks",
			stream:  true,
			faultsA: []gatewaytest.Fault{{CutAfter: 2}},
			wantErr: true,
			want: func(pa, pb int) []spanView {
				return []spanView{
					{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "stream_truncated",
						Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "next_target", "http.response.status_code": int64(200), "error.type": "stream_truncated"})},
					{Name: "chat gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "stream_truncated", Attrs: reqAttrs("gateway", map[string]any{
						"gen_ai.provider.name": "pa", "gen_ai.response.model": "m1", "server.address": "127.0.0.1", "server.port": int64(pa),
						"gwtransport.attempts": int64(1), "gwtransport.target": "pa/m1", "http.response.status_code": int64(200), "error.type": "stream_truncated",
					})},
				}
			},
			wantDuration: func(pa, pb int) map[string]any {
				return map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gateway", "gen_ai.provider.name": "pa",
					"gen_ai.response.model": "m1", "server.address": "127.0.0.1", "server.port": int64(pa), "error.type": "stream_truncated"}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.a.Enqueue(c.faultsA...)
			r.b.Enqueue(c.faultsB...)
			client := r.openai(t)
			params := openai.ChatCompletionNewParams{Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}}
			var err error
			if c.stream {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
				s := client.Chat.Completions.NewStreaming(context.Background(), params)
				require.True(t, s.Next())
				// The caller holds the stream: its attempt's span and the
				// request's are open.
				assert.Empty(t, r.exp.GetSpans())
				for s.Next() {
				}
				err = s.Err()
				s.Close()
			} else {
				_, err = client.Chat.Completions.New(context.Background(), params)
			}
			if c.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			spans := r.exp.GetSpans()
			got := views(t, spans)
			want := c.want(port(t, r.a), port(t, r.b))
			// A reset's reason is net/http's text: checked by its prefix.
			for i := range got {
				if i < len(want) && want[i].Attrs["gwtransport.fallback.reason"] == "<reset>" {
					reason, _ := got[i].Attrs["gwtransport.fallback.reason"].(string)
					assert.True(t, strings.HasPrefix(reason, "pa/m1#2 "), reason)
					got[i].Attrs["gwtransport.fallback.reason"] = "<reset>"
				}
			}
			assert.Equal(t, want, got)

			rm := collect(t, r)
			noSecrets(t, spans, rm)
			unit, points := histogram(t, rm, "gen_ai.client.operation.duration")
			assert.Equal(t, "s", unit)
			require.Len(t, points, 1)
			assert.Equal(t, c.wantDuration(port(t, r.a), port(t, r.b)), points[0].Attrs)
			assert.Equal(t, uint64(1), points[0].Count)
			assert.Equal(t, gwotel.DurationBuckets, points[0].Bounds)
			unit, tokens := histogram(t, rm, "gen_ai.client.token.usage")
			if !c.wantTokens {
				assert.Empty(t, tokens)
				return
			}
			assert.Equal(t, "{token}", unit)
			require.Len(t, tokens, 2)
			base := c.wantDuration(port(t, r.a), port(t, r.b))
			in, out := map[string]any{"gen_ai.token.type": "input"}, map[string]any{"gen_ai.token.type": "output"}
			for k, v := range base {
				in[k], out[k] = v, v
			}
			assert.Equal(t, []histPoint{
				{Attrs: in, Count: 1, Sum: 7, Bounds: gwotel.TokenBuckets},
				{Attrs: out, Count: 1, Sum: 5, Bounds: gwotel.TokenBuckets},
			}, tokens)
		})
	}
}

// TestStreamClosedEarly attacks the end of a stream the caller closes
// after its first event: both spans end at the close, neither as an error,
// the request's marked closed early, and no token usage is recorded (the
// usage chunk never came).
func TestStreamClosedEarly(t *testing.T) {
	r := newRig(t)
	client := r.openai(t)
	s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
	})
	require.True(t, s.Next())
	assert.Empty(t, r.exp.GetSpans())
	require.NoError(t, s.Close())
	pa := port(t, r.a)
	assert.Equal(t, []spanView{
		{Name: "chat m1", Parent: "chat gateway", Kind: trace.SpanKindClient,
			Attrs: attemptAttrs("pa/m1", "pa", "m1", 1, 1, false, pa, map[string]any{"gwtransport.action": "succeed", "http.response.status_code": int64(200)})},
		{Name: "chat gateway", Kind: trace.SpanKindClient, Attrs: reqAttrs("gateway", map[string]any{
			"gen_ai.provider.name": "pa", "gen_ai.response.model": "m1", "server.address": "127.0.0.1", "server.port": int64(pa),
			"gwtransport.attempts": int64(1), "gwtransport.target": "pa/m1", "http.response.status_code": int64(200),
			"gwtransport.stream.closed_early": true,
		})},
	}, views(t, r.exp.GetSpans()))
	rm := collect(t, r)
	_, tokens := histogram(t, rm, "gen_ai.client.token.usage")
	assert.Empty(t, tokens)
	_, points := histogram(t, rm, "gen_ai.client.operation.duration")
	require.Len(t, points, 1)
	assert.Equal(t, uint64(1), points[0].Count)
}

// TestGoOpenAI attacks the same spans through go-openai, streamed and
// not, and the operation names of embeddings and completions.
func TestGoOpenAI(t *testing.T) {
	r := newRig(t)
	client := r.goopenai(t)
	ctx := context.Background()
	_, err := client.CreateChatCompletion(ctx, goopenai.ChatCompletionRequest{Model: "gateway", Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}})
	require.NoError(t, err)
	st, err := client.CreateChatCompletionStream(ctx, goopenai.ChatCompletionRequest{Model: "gateway", Stream: true,
		StreamOptions: &goopenai.StreamOptions{IncludeUsage: true}, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "Hello!"}}})
	require.NoError(t, err)
	for {
		if _, err := st.Recv(); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
	}
	st.Close()
	_, err = client.CreateEmbeddings(ctx, goopenai.EmbeddingRequest{Model: "gateway", Input: []string{"Hello!"}})
	require.NoError(t, err)
	_, err = client.CreateCompletion(ctx, goopenai.CompletionRequest{Model: "gateway", Prompt: "Hello!"})
	require.NoError(t, err)

	spans := r.exp.GetSpans()
	got := views(t, spans)
	var names []string
	for _, v := range got {
		names = append(names, v.Parent+" > "+v.Name)
	}
	assert.Equal(t, []string{
		"chat gateway > chat m1", " > chat gateway",
		"chat gateway > chat m1", " > chat gateway",
		"embeddings gateway > embeddings m1", " > embeddings gateway",
		"text_completion gateway > text_completion m1", " > text_completion gateway",
	}, names)
	// Token usage of each: chat 7/5, stream 7/5 (its usage chunk),
	// embeddings 3/0, completions 7/5.
	for i, want := range [][2]int64{{7, 5}, {7, 5}, {3, 0}, {7, 5}} {
		a := got[2*i+1].Attrs
		assert.Equal(t, want[0], a["gen_ai.usage.input_tokens"], got[2*i+1].Name)
		assert.Equal(t, want[1], a["gen_ai.usage.output_tokens"], got[2*i+1].Name)
		assert.Equal(t, "m1", a["gen_ai.response.model"])
	}
	noSecrets(t, spans, collect(t, r))
}

// TestResponsesAPI attacks the Responses API through openai-go: its
// operation is chat, its usage is input/output_tokens, streamed in the
// response.completed event.
func TestResponsesAPI(t *testing.T) {
	r := newRig(t)
	client := r.openai(t)
	ctx := context.Background()
	_, err := client.Responses.New(ctx, responsesParams())
	require.NoError(t, err)
	s := client.Responses.NewStreaming(ctx, responsesParams())
	for s.Next() {
	}
	require.NoError(t, s.Err())
	s.Close()
	got := views(t, r.exp.GetSpans())
	require.Len(t, got, 4)
	for _, i := range []int{1, 3} {
		assert.Equal(t, "chat gateway", got[i].Name)
		assert.Equal(t, int64(7), got[i].Attrs["gen_ai.usage.input_tokens"])
		assert.Equal(t, int64(5), got[i].Attrs["gen_ai.usage.output_tokens"])
		assert.Equal(t, "m1", got[i].Attrs["gen_ai.response.model"])
	}
}

// TestConcurrentNoCrossTalk attacks concurrent requests: each caller's
// span is the parent of exactly one request span, whose attempts are its
// own (their target is the one the caller named), and every span ended.
func TestConcurrentNoCrossTalk(t *testing.T) {
	r := newRig(t)
	client := r.openai(t)
	tracer := r.tp.Tracer("caller")
	const n = 20
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			model := []string{"pa/m1", "pb/m2"}[i%2]
			ctx, span := tracer.Start(context.Background(), fmt.Sprintf("caller %d %s", i, model))
			defer span.End()
			params := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}}
			if i%3 == 0 {
				s := client.Chat.Completions.NewStreaming(ctx, params)
				for s.Next() {
				}
				assert.NoError(t, s.Err())
				s.Close()
				return
			}
			_, err := client.Chat.Completions.New(ctx, params)
			assert.NoError(t, err)
		}(i)
	}
	wg.Wait()
	spans := r.exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	requests := 0
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "caller ") {
			continue
		}
		model := strings.Fields(s.Name)[2]
		var children []tracetest.SpanStub
		for _, c := range spans {
			if c.Parent.SpanID() == s.SpanContext.SpanID() {
				children = append(children, c)
			}
		}
		require.Len(t, children, 1, s.Name)
		req := children[0]
		requests++
		assert.Equal(t, "chat "+model, req.Name)
		assert.Equal(t, model, attrMap(req.Attributes)["gwtransport.target"])
		var attempts []tracetest.SpanStub
		for _, c := range spans {
			if c.Parent.SpanID() == req.SpanContext.SpanID() {
				attempts = append(attempts, c)
			}
		}
		require.Len(t, attempts, 1, s.Name)
		assert.Equal(t, model, attrMap(attempts[0].Attributes)["gwtransport.target"])
		assert.Equal(t, s.SpanContext.TraceID(), attempts[0].SpanContext.TraceID())
	}
	assert.Equal(t, n, requests)
	assert.Len(t, spans, 3*n)
	_, points := histogram(t, collect(t, r), "gen_ai.client.operation.duration")
	var total uint64
	for _, p := range points {
		total += p.Count
	}
	assert.Equal(t, uint64(n), total)
}

// TestBaseTransportNestsUnderAttempt attacks propagation: the outbound
// request of each attempt carries the attempt span's context, so an
// instrumented base transport nests under it and injects its trace id.
func TestBaseTransportNestsUnderAttempt(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var seen []trace.SpanContext
	base := roundTripper(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, trace.SpanContextFromContext(req.Context()))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(req)
	})
	r.a.Enqueue(gatewaytest.Fault{Status: 503})
	tr, err := gwtransport.NewTransport(base, r.models, r.opts...)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, r.a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer sk-a-secret")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	spans := r.exp.GetSpans()
	require.Len(t, spans, 3)
	require.Len(t, seen, 2)
	for i := 0; i < 2; i++ {
		assert.Equal(t, spans[i].SpanContext, seen[i], "attempt %d", i+1)
	}
}

// TestPassThroughNotObserved attacks the pass-through: a request the
// gateway does not route records no span and no metric.
func TestPassThroughNotObserved(t *testing.T) {
	r := newRig(t)
	client := r.openai(t)
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "not-routed",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}})
	require.NoError(t, err)
	assert.Empty(t, r.exp.GetSpans())
	_, points := histogram(t, collect(t, r), "gen_ai.client.operation.duration")
	assert.Empty(t, points)
}

// TestDefaultsAreGlobals attacks the defaults: without settings, the
// Observer records through otel's global providers, even ones set after
// it was made.
func TestDefaultsAreGlobals(t *testing.T) {
	r := newRig(t)
	r.opts = append(r.opts[:len(r.opts)-1], gwotel.Option()) // made before the globals are set
	client := r.openai(t)
	r.reader = sdkmetric.NewManualReader() // a reader serves one provider
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
	otel.SetTracerProvider(r.tp)
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prevT)
		otel.SetMeterProvider(prevM)
	})
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}})
	require.NoError(t, err)
	var names []string
	for _, v := range views(t, r.exp.GetSpans()) {
		names = append(names, v.Name)
	}
	assert.Equal(t, []string{"chat m1", "chat gateway"}, names)
	_, points := histogram(t, collect(t, r), "gen_ai.client.operation.duration")
	require.Len(t, points, 1)
	assert.Equal(t, uint64(1), points[0].Count)
}

// TestNames attacks the mappings to the conventions' well-known values.
func TestNames(t *testing.T) {
	for in, want := range map[string]string{"chat/completions": "chat", "responses": "chat", "completions": "text_completion", "embeddings": "embeddings", "images/generations": "images/generations"} {
		assert.Equal(t, want, gwotel.Operation(in), in)
	}
	for in, want := range map[string]string{"openai": "openai", "azure": "azure.ai.openai", "gemini": "gcp.gemini", "mistral": "mistral_ai", "xai": "x_ai", "groq": "groq", "anthropic": "anthropic", "deepseek": "deepseek", "perplexity": "perplexity"} {
		assert.Equal(t, want, gwotel.Provider(in), in)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func responsesParams() responses.ResponseNewParams {
	return responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello!")}}
}

// TestAzureFallbackNoQuery attacks the privacy rule on an Azure fallback,
// whose URL carries an api-version query and whose key is an Api-Key
// header: the attempt span names the host and port only, and no key,
// query or prompt reaches any attribute.
func TestAzureFallbackNoQuery(t *testing.T) {
	r := newRig(t)
	z := gatewaytest.NewServer(gatewaytest.WithName("z"), gatewaytest.WithAPIKey("sk-z-secret"))
	t.Cleanup(z.Close)
	r.opts = append(r.opts, gwtransport.WithProvider(gwtransport.Provider{Name: "pz", BaseURL: z.Endpoint, APIKey: "sk-z-secret",
		Style: gwtransport.StyleAzure, Auth: gwtransport.AuthAPIKey, APIVersion: "2024-10-21"}))
	r.models = []string{"pa/m1", "pz/dep"}
	r.a.Enqueue(gatewaytest.Fault{Status: 503}, gatewaytest.Fault{Status: 503})
	client := r.openai(t)
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gateway",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")}})
	require.NoError(t, err)
	require.Len(t, z.Journal(), 1)
	require.Equal(t, "api-version=2024-10-21", z.Journal()[0].Query)
	spans := r.exp.GetSpans()
	got := views(t, spans)
	require.Len(t, got, 4)
	assert.Equal(t, "chat dep", got[2].Name)
	assert.Equal(t, "127.0.0.1", got[2].Attrs["server.address"])
	assert.Equal(t, int64(port(t, z)), got[2].Attrs["server.port"])
	assert.Equal(t, "pz/dep", got[3].Attrs["gwtransport.target"])
	rm := collect(t, r)
	noSecrets(t, spans, rm)
	for _, s := range spans {
		for _, kv := range s.Attributes {
			assert.NotContains(t, kv.Value.Emit(), "sk-z-secret")
			assert.NotContains(t, kv.Value.Emit(), "2024-10-21")
		}
	}
}

// TestRefusedRequest attacks a routed request refused before any attempt
// (a malformed body): one request span, no attempt span, the error
// recorded, and its duration measured.
func TestRefusedRequest(t *testing.T) {
	r := newRig(t)
	tr, err := gwtransport.NewTransport(nil, r.models, r.opts...)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, r.a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[],}`))
	require.NoError(t, err)
	_, err = (&http.Client{Transport: tr}).Do(req)
	require.ErrorIs(t, err, gwtransport.ErrMalformedBody)
	assert.Equal(t, []spanView{{Name: "gateway", Kind: trace.SpanKindClient, Status: codes.Error, Desc: "malformed_body",
		Attrs: map[string]any{"gen_ai.request.model": "gateway", "gwtransport.route": "gateway", "gwtransport.attempts": int64(0), "error.type": "malformed_body"}}},
		views(t, r.exp.GetSpans()))
	_, points := histogram(t, collect(t, r), "gen_ai.client.operation.duration")
	require.Len(t, points, 1)
	assert.Equal(t, map[string]any{"gen_ai.request.model": "gateway", "error.type": "malformed_body"}, points[0].Attrs)
	assert.Equal(t, 0, r.a.Count())
}
