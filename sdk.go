package gwtransport

// The gateway inside an openai-go client, and the SDK's own retries.
//
// openai-go retries every transport error and every retryable status (the
// gateway marks its final failures "x-should-retry: false", but a per-call
// option or an Azure token credential's azcore pipeline retries on its own
// terms), so without care each gateway request would be multiplied. The hook
// the gateway adds to a client's options therefore does three things for
// every call:
//
//   - it attaches a per-call record (sdkCall) to the request's context;
//   - when the call's body is a gateway request, it turns azcore's retries
//     off for that call (a per-call override in the context, read before
//     the pipeline reaches the gateway);
//   - the gateway's middleware, once it has taken the request, sets the
//     call's openai-go MaxRetries to 0 (the gateway does the retrying) and
//     keeps its final answer: any other layer that retries the same call
//     anyway gets that answer again, the same failure response or the same
//     error, and no new upstream request is made.
//
// Requests the gateway passes through keep the SDK's retries untouched.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/openai/openai-go/v3/option"
)

// NonRetriable marks the error as final for retry layers that look for this
// method (the Azure SDK's azcore retry policy, used by openai-go's
// azure.WithTokenCredential): the gateway has already made every attempt
// its policy allows.
func (e *Error) NonRetriable() {}

// openaiHook is the gateway installed in one openai-go client. It runs as a
// middleware of the client and sends each attempt itself: through the
// client's own chain when the attempt stays on the host the client
// addressed, through the base transport (WithBaseTransport) otherwise.
//
// Once installed it stays in the client's options for good: Init, Uninstall
// and Reconfigure only swap its binding, so they never write the client
// while requests read it.
type openaiHook struct {
	bind slot
	mw   option.RequestOption // the middleware, added to each call
	opt  option.RequestOption // the option added to the client's services
}

func newOpenAIHook() *openaiHook {
	h := &openaiHook{}
	h.mw = option.WithMiddleware(h.middleware)
	h.opt = newHookOption(option.RequestOption.Apply, h)
	return h
}

// hooked is implemented by the option the gateway adds to a client, so that
// Init finds it again (never nesting).
type hooked interface{ gatewayHook() *openaiHook }

// hookOf returns the gateway hook o is, or nil.
func hookOf(o option.RequestOption) *openaiHook {
	if h, ok := o.(hooked); ok {
		return h.gatewayHook()
	}
	return nil
}

// hookOption is the request option the gateway adds to a client. P is
// openai-go's *requestconfig.RequestConfig, which an importer cannot name:
// it is inferred from the method expression option.RequestOption.Apply.
type hookOption[P any] struct {
	hook  *openaiHook
	apply func(option.RequestOption, P) error
}

func newHookOption[P any](apply func(option.RequestOption, P) error, h *openaiHook) option.RequestOption {
	o, _ := any(hookOption[P]{hook: h, apply: apply}).(option.RequestOption)
	return o
}

func (o hookOption[P]) gatewayHook() *openaiHook { return o.hook }

// Apply runs once per call, with the call's configuration: an uninstalled
// gateway adds nothing; an installed one adds its middleware and the call's
// record.
func (o hookOption[P]) Apply(cfg P) error {
	b := o.hook.bind.load()
	if b.g == nil {
		return nil
	}
	if err := o.apply(o.hook.mw, cfg); err != nil {
		return err
	}
	o.hook.attach(reflect.ValueOf(cfg), b)
	return nil
}

// requestConfig locates the fields of openai-go's RequestConfig the hook
// reads and writes. ok is false if they are not there (a future openai-go):
// the gateway then still routes, without the per-call record.
var requestConfig = func() (f struct {
	body, request, maxRetries int
	ok                        bool
}) {
	t := reflect.TypeOf(option.RequestOption.Apply).In(1)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return f
	}
	t = t.Elem()
	field := func(name string, typ reflect.Type) (int, bool) {
		sf, ok := t.FieldByName(name)
		if !ok || len(sf.Index) != 1 || sf.Type != typ || !sf.IsExported() {
			return 0, false
		}
		return sf.Index[0], true
	}
	var ok1, ok2, ok3 bool
	f.body, ok1 = field("Body", reflect.TypeOf((*io.Reader)(nil)).Elem())
	f.request, ok2 = field("Request", reflect.TypeOf((*http.Request)(nil)))
	f.maxRetries, ok3 = field("MaxRetries", reflect.TypeOf(0))
	f.ok = ok1 && ok2 && ok3
	return f
}()

// sdkCall is the record of one openai-go call, shared by every time the
// SDK (or azcore) invokes the gateway's middleware for that call.
type sdkCall struct {
	hook       *openaiHook
	b          *binding // the configuration the call started with
	maxRetries *int     // the call's openai-go MaxRetries
	took       atomic.Bool
	answer     atomic.Pointer[sdkAnswer]
	memo       *scanMemo // the body's scan when the call started (replay.go)
}

type sdkCallKey struct{}

// intercepted tells the call that the gateway took its request.
func (c *sdkCall) intercepted() {
	if c != nil {
		c.took.Store(true)
	}
}

// attach gives the call a record, in the context of its request. cfg is
// the call's *requestconfig.RequestConfig.
func (h *openaiHook) attach(cfg reflect.Value, b *binding) {
	if !requestConfig.ok || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return
	}
	v := cfg.Elem()
	reqField := v.Field(requestConfig.request)
	req, _ := reqField.Interface().(*http.Request)
	if req == nil {
		return
	}
	c := &sdkCall{hook: h, b: b}
	c.maxRetries, _ = v.Field(requestConfig.maxRetries).Addr().Interface().(*int)
	ctx := context.WithValue(req.Context(), sdkCallKey{}, c)
	if body := peekBody(v.Field(requestConfig.body)); body != nil && b.g.takes(req.Header, body, c) {
		// azcore reads its retry options when its pipeline starts, before
		// the gateway sees the request: turn its retries off now.
		ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
	}
	reqField.Set(reflect.ValueOf(req.WithContext(ctx)))
}

// peekBody returns the call's body as far as it can be read without
// consuming it, or nil.
func peekBody(v reflect.Value) []byte {
	r, _ := v.Interface().(io.Reader)
	switch r := r.(type) {
	case *bytes.Buffer:
		return r.Bytes()
	case *bytes.Reader:
		p := make([]byte, r.Size())
		if n, _ := r.ReadAt(p, 0); n == len(p) {
			return p
		}
	}
	return nil
}

// takes reports whether the gateway would route a request with this header
// and body (it checks as roundTrip does). The scan is kept in c, when not
// nil, for roundTrip to reuse on the same bytes.
func (g *gateway) takes(h http.Header, body []byte, c *sdkCall) bool {
	if !mayCarryModel(h) || int64(len(body)) > g.s.maxBodyBytes || !looksLikeJSONObject(body) {
		return false
	}
	var info bodyInfo
	err := scanBody(body, &info)
	if c != nil {
		c.memo = &scanMemo{p: &body[0], n: len(body), info: info, err: err}
	}
	if !info.modelIsString {
		return false
	}
	_, _, ok := g.lookup(info.model)
	return ok
}

// sdkBase is the transport for the attempts an openai-go client cannot send
// itself.
func (g *gateway) sdkBase() http.RoundTripper {
	if g.s.baseTransport != nil {
		return g.s.baseTransport
	}
	return http.DefaultTransport
}

// middleware is the gateway in the client's middleware chain.
func (h *openaiHook) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	if isAttempt(req) {
		return next(req) // an attempt another gateway layer built: untouched
	}
	c, _ := req.Context().Value(sdkCallKey{}).(*sdkCall)
	if c == nil || c.hook != h {
		c = &sdkCall{hook: h, b: h.bind.load()}
	}
	if a := c.answer.Load(); a != nil {
		// The same call again (an SDK retry): the gateway already gave its
		// final answer.
		return a.replay(req)
	}
	g := c.b.g
	if g == nil {
		return next(req)
	}
	res, err := g.roundTrip(req, sender{base: g.sdkBase(), next: next, call: c})
	if !c.took.Load() {
		return res, err
	}
	if c.maxRetries != nil {
		// The gateway did the retrying: openai-go must not repeat it. The
		// middleware runs in the call's own goroutine, between openai-go's
		// reads of the field.
		*c.maxRetries = 0
	}
	return c.keep(res, err)
}

// sdkAnswer is the gateway's final answer to a call: an error, or a failure
// response with its body.
type sdkAnswer struct {
	err  error
	res  http.Response
	body []byte
}

// keep records the gateway's answer for replay, unless it is a success
// (which no SDK retries).
func (c *sdkCall) keep(res *http.Response, err error) (*http.Response, error) {
	if err != nil {
		c.answer.Store(&sdkAnswer{err: err})
		return nil, err
	}
	if res == nil || res.StatusCode >= 200 && res.StatusCode < 300 {
		return res, nil
	}
	// A final failure's body is already in memory (see finish).
	body, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return res, nil
	}
	a := &sdkAnswer{res: *res, body: body}
	a.res.Header = res.Header.Clone()
	c.answer.Store(a)
	return res, nil
}

// replay returns the recorded answer again, as a new response.
func (a *sdkAnswer) replay(req *http.Request) (*http.Response, error) {
	if a.err != nil {
		return nil, a.err
	}
	res := a.res
	res.Header = a.res.Header.Clone()
	res.Body = io.NopCloser(bytes.NewReader(a.body))
	res.Request = req
	return &res, nil
}
