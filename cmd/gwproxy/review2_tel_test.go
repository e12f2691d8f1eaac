package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

func review2Tel(t *testing.T) (*tracetest.InMemoryExporter, *telemetry) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	return exp, newTelemetry(tp, mp)
}

func review2Attr(s tracetest.SpanStub, k string) (string, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == k {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

// requestSpans are gwotel's request spans (children of the server span).
func review2RequestSpans(spans tracetest.SpanStubs) (server, request []tracetest.SpanStub) {
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindServer {
			server = append(server, s)
			ids[s.SpanContext.SpanID()] = true
		}
	}
	for _, s := range spans {
		if ids[s.Parent.SpanID()] {
			request = append(request, s)
		}
	}
	return
}

// review2RawStream sends a streamed request on a raw connection and reads
// the response until the first data event; it returns the connection.
func review2RawStream(t *testing.T, p *testProxy) net.Conn {
	c, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	body := fmt.Sprintf(streamBody, "gateway")
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", keyAll, len(body), body)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if strings.Contains(line, "data: ") {
			return c
		}
	}
}

// TestReview2ClientLeavesStreamTelemetry: a client that leaves a committed
// stream (the provider still streaming) is the caller's cancellation of
// the stream: the request span ends once, with error.type canceled (README:
// "canceled when the caller's cancellation cut a committed stream").
func TestReview2ClientLeavesStreamTelemetry(t *testing.T) {
	exp, tel := review2Tel(t)
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 1s\n")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: tel})
	a.Enqueue(gatewaytest.Fault{StallAfter: 1})
	c := review2RawStream(t, p)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		srv, _ := review2RequestSpans(exp.GetSpans())
		return len(srv) == 1
	}, 5*time.Second, 5*time.Millisecond, "no server span")
	time.Sleep(100 * time.Millisecond)
	srv, req := review2RequestSpans(exp.GetSpans())
	require.Len(t, srv, 1)
	require.Len(t, req, 1, "gwotel request spans: %v", names(exp.GetSpans()))
	et, _ := review2Attr(req[0], "error.type")
	t.Logf("request span status=%v error.type=%q attrs=%v", req[0].Status, et, req[0].Attributes)
	assert.Equal(t, "canceled", et, "request span of a stream the client left")
}

// TestReview2ShutdownCutStreamSpanEnded: SIGTERM with a stream in flight
// past shutdown_timeout: the drain cuts it, and telemetry is flushed after
// the drain; the cut stream's request span must have ended (and so be
// exported) by the time serve returns, else the flush loses it.
func TestReview2ShutdownCutStreamSpanEnded(t *testing.T) {
	exp, tel := review2Tel(t)
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 300ms\n")
	p := startProxy(t, cfg, proxyOpts{env: env, tel: tel})
	a.Enqueue(gatewaytest.Fault{StallAfter: 1})
	c := review2RawStream(t, p)
	defer c.Close()
	require.NoError(t, p.stop())
	// serve has returned: this is when run flushes the telemetry.
	srv, req := review2RequestSpans(exp.GetSpans())
	assert.Len(t, srv, 1, "server span not ended when serve returned: %v", names(exp.GetSpans()))
	assert.Len(t, req, 1, "request span not ended when serve returned: %v", names(exp.GetSpans()))
	_ = attribute.Key("")
}

// review2SlowClose is a base transport whose response bodies take a while
// to close (a provider connection slow to tear down).
type review2SlowClose struct{ next *http.Transport }

type review2SlowBody struct{ io.ReadCloser }

func (b review2SlowBody) Close() error {
	time.Sleep(300 * time.Millisecond)
	return b.ReadCloser.Close()
}

func (s review2SlowClose) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := s.next.RoundTrip(r)
	if res != nil {
		res.Body = review2SlowBody{res.Body}
	}
	return res, err
}

// TestReview2ShutdownCutStreamSpanEndedDeterministic: the same, with a
// provider body that takes 300 ms to close: serve (and so run, which
// flushes the telemetry right after) returns before the cut stream's
// handler has ended its spans.
func TestReview2ShutdownCutStreamSpanEndedDeterministic(t *testing.T) {
	exp, tel := review2Tel(t)
	a, _, cfg, env := twoProviders(t, "  shutdown_timeout: 300ms\n")
	base := upstreamTransport()
	defer base.CloseIdleConnections()
	s, err := newServer(serverConfig{data: []byte(cfg), env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		log: slog.New(slog.NewJSONHandler(io.Discard, nil)), base: review2SlowClose{base}, telemetr: tel})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sigs, ready, done := make(chan os.Signal, 1), make(chan string, 1), make(chan error, 1)
	go func() { done <- s.serve(ln, sigs, ready) }()
	p := &testProxy{t: t, addr: <-ready}
	a.Enqueue(gatewaytest.Fault{StallAfter: 1})
	c := review2RawStream(t, p)
	defer c.Close()
	sigs <- syscall.SIGTERM
	require.NoError(t, <-done)
	// serve has returned: run flushes the telemetry now.
	srv, req := review2RequestSpans(exp.GetSpans())
	assert.Len(t, srv, 1, "server span not ended when serve returned: %v", names(exp.GetSpans()))
	assert.Len(t, req, 1, "request span not ended when serve returned: %v", names(exp.GetSpans()))
	time.Sleep(time.Second) // let the handler finish (goleak)
	t.Logf("spans a second later: %v", names(exp.GetSpans()))
}
