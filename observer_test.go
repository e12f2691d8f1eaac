package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

type obsReqKey struct{}
type obsAttKey struct{}

// obsRecorder is an Observer that renders every call, per request, and
// checks that each call gets the context its predecessor returned.
type obsRecorder struct {
	mu     sync.Mutex
	next   int
	calls  map[int][]string
	active map[int]int // request -> attempt started and not ended (0: none)
	sent   []string    // "req/attempt" of every outbound request, from its context
	bad    []string
}

func newObsRecorder() *obsRecorder {
	return &obsRecorder{calls: map[int][]string{}, active: map[int]int{}}
}

func (o *obsRecorder) add(req int, s string) {
	o.calls[req] = append(o.calls[req], s)
}

func (o *obsRecorder) RequestStart(ctx context.Context, r gwtransport.ObservedRequest) context.Context {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	if ctx.Value(obsReqKey{}) != nil {
		o.bad = append(o.bad, "request started twice")
	}
	o.add(o.next, fmt.Sprintf("start route=%s model=%s op=%s stream=%t", r.Route, r.Model, r.Operation, r.Stream))
	return context.WithValue(ctx, obsReqKey{}, o.next)
}

func (o *obsRecorder) AttemptStart(ctx context.Context, a gwtransport.ObservedAttempt) context.Context {
	o.mu.Lock()
	defer o.mu.Unlock()
	req, _ := ctx.Value(obsReqKey{}).(int)
	if req == 0 {
		o.bad = append(o.bad, "attempt without the request's context")
	}
	if ctx.Value(obsAttKey{}) != nil {
		o.bad = append(o.bad, "attempt nested in an attempt")
	}
	if o.active[req] != 0 {
		o.bad = append(o.bad, fmt.Sprintf("request %d: attempt %d started while %d is open", req, a.Index, o.active[req]))
	}
	o.active[req] = a.Index
	o.add(req, fmt.Sprintf("attempt %d %s try=%d provider=%s model=%s fallback=%t cont=%t prev=%q server=%s:%d",
		a.Index, a.Target, a.Try, a.Provider, a.Model, a.Fallback, a.Continuation, prevLine(a.Previous), a.ServerAddress, a.ServerPort))
	return context.WithValue(ctx, obsAttKey{}, a.Index)
}

func (o *obsRecorder) AttemptEnd(ctx context.Context, a gwtransport.Attempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	req, _ := ctx.Value(obsReqKey{}).(int)
	att, _ := ctx.Value(obsAttKey{}).(int)
	if att == 0 || o.active[req] != att {
		o.bad = append(o.bad, fmt.Sprintf("request %d: attempt end for %d, open %d", req, att, o.active[req]))
	}
	o.active[req] = 0
	o.add(req, fmt.Sprintf("end attempt %d %s %s cont=%t", att, attemptLine(a), actionName(a.Action), a.Continued))
}

func (o *obsRecorder) RequestEnd(ctx context.Context, e gwtransport.ObservedEnd) {
	o.mu.Lock()
	defer o.mu.Unlock()
	req, _ := ctx.Value(obsReqKey{}).(int)
	if ctx.Value(obsAttKey{}) != nil {
		o.bad = append(o.bad, "request end with an attempt's context")
	}
	if o.active[req] != 0 {
		o.bad = append(o.bad, fmt.Sprintf("request %d ended with attempt %d open", req, o.active[req]))
	}
	errs := "<nil>"
	switch {
	case errors.Is(e.Err, gwtransport.ErrStreamTruncated):
		errs = "truncated"
	case errors.Is(e.Err, gwtransport.ErrMalformedBody):
		errs = "malformed"
	case e.Err != nil:
		var ge *gwtransport.Error
		if errors.As(e.Err, &ge) {
			errs = fmt.Sprintf("gateway error (%d attempts)", len(ge.Attempts))
		} else {
			errs = e.Err.Error()
		}
	}
	o.add(req, fmt.Sprintf("end target=%s status=%d err=%s closed=%t model=%s usage=%t/%d/%d attempts=%d",
		e.Target, e.Status, errs, e.ClosedEarly, e.ResponseModel, e.Usage.Known, e.Usage.InputTokens, e.Usage.OutputTokens, len(e.Attempts)))
	o.add(req, "") // ended: nothing may follow
}

func (o *obsRecorder) requests() map[int][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int][]string{}
	for k, v := range o.calls {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (o *obsRecorder) problems() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.bad...)
}

// RoundTrip records the observer's marks on an outbound request's context:
// an instrumented base transport sees the attempt's context.
func (o *obsRecorder) wrap(base http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		req, _ := r.Context().Value(obsReqKey{}).(int)
		att, _ := r.Context().Value(obsAttKey{}).(int)
		o.mu.Lock()
		o.sent = append(o.sent, fmt.Sprintf("%d/%d", req, att))
		o.mu.Unlock()
		return base.RoundTrip(r)
	})
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func actionName(a gwtransport.Action) string {
	switch a {
	case gwtransport.Succeed:
		return "succeed"
	case gwtransport.RetrySame:
		return "retry"
	case gwtransport.NextTarget:
		return "next"
	case gwtransport.FailFast:
		return "failfast"
	}
	return "?"
}

func hostPort(t *testing.T, s *gatewaytest.Server) string {
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	return u.Host
}

// TestObserverCalls attacks the observer's contract: exactly one request
// start and end per routed request, each attempt started then ended in
// order, with the context its predecessor returned (and the outbound
// request carrying the attempt's), the end coming when the caller is done
// with a stream (its end, its break, its early close), and nothing for a
// request passed through.
func TestObserverCalls(t *testing.T) {
	type step struct {
		name       string
		body       string
		faultsA    []gatewaytest.Fault
		faultsB    []gatewaytest.Fault
		stream     bool
		closeEarly bool
		want       []string // with A and B for the servers' host:port
		wantSent   []string
		wantText   string
	}
	const chatBody = `{"model":%q,"messages":[{"role":"user","content":"hi"}]%s}`
	steps := []step{
		{
			name: "success",
			body: fmt.Sprintf(chatBody, "gateway", ""),
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=false",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 200 succeed cont=false",
				"end target=pa/m1 status=200 err=<nil> closed=false model=m1 usage=true/7/5 attempts=1",
			},
			wantSent: []string{"1/1"},
		},
		{
			name:    "retry then success",
			body:    fmt.Sprintf(chatBody, "gateway", ""),
			faultsA: []gatewaytest.Fault{{Status: 503}},
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=false",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 503 server_error retry cont=false",
				`attempt 2 pa/m1 try=2 provider=pa model=m1 fallback=false cont=false prev="pa/m1#1 503 server_error" server=A`,
				"end attempt 2 pa/m1#2 200 succeed cont=false",
				"end target=pa/m1 status=200 err=<nil> closed=false model=m1 usage=true/7/5 attempts=2",
			},
			wantSent: []string{"1/1", "1/2"},
		},
		{
			name:    "fallback",
			body:    fmt.Sprintf(chatBody, "gateway", ""),
			faultsA: []gatewaytest.Fault{{Status: 500, Code: "boom"}, {Status: 429, Code: "slow"}},
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=false",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 500 boom retry cont=false",
				`attempt 2 pa/m1 try=2 provider=pa model=m1 fallback=false cont=false prev="pa/m1#1 500 boom" server=A`,
				"end attempt 2 pa/m1#2 429 slow retry cont=false",
				`attempt 3 pb/m2 try=1 provider=pb model=m2 fallback=true cont=false prev="pa/m1#2 429 slow" server=B`,
				"end attempt 3 pb/m2#1 200 succeed cont=false",
				"end target=pb/m2 status=200 err=<nil> closed=false model=m2 usage=true/7/5 attempts=3",
			},
			wantSent: []string{"1/1", "1/2", "1/3"},
		},
		{
			name:    "final failure handed over",
			body:    fmt.Sprintf(chatBody, "gateway", ""),
			faultsA: []gatewaytest.Fault{{Status: 503}, {Status: 503}},
			faultsB: []gatewaytest.Fault{{Status: 503}, {Status: 503}},
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=false",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 503 server_error retry cont=false",
				`attempt 2 pa/m1 try=2 provider=pa model=m1 fallback=false cont=false prev="pa/m1#1 503 server_error" server=A`,
				"end attempt 2 pa/m1#2 503 server_error retry cont=false",
				`attempt 3 pb/m2 try=1 provider=pb model=m2 fallback=true cont=false prev="pa/m1#2 503 server_error" server=B`,
				"end attempt 3 pb/m2#1 503 server_error retry cont=false",
				`attempt 4 pb/m2 try=2 provider=pb model=m2 fallback=false cont=false prev="pb/m2#1 503 server_error" server=B`,
				"end attempt 4 pb/m2#2 503 server_error retry cont=false",
				"end target=pb/m2 status=503 err=<nil> closed=false model= usage=false/0/0 attempts=4",
			},
			wantSent: []string{"1/1", "1/2", "1/3", "1/4"},
		},
		{
			name:    "every attempt without a response",
			body:    fmt.Sprintf(chatBody, "gateway", ""),
			faultsA: []gatewaytest.Fault{{Reset: true}, {Reset: true}},
			faultsB: []gatewaytest.Fault{{Reset: true}, {Reset: true}},
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=false",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 0 <err> retry cont=false",
				`attempt 2 pa/m1 try=2 provider=pa model=m1 fallback=false cont=false prev="pa/m1#1 <err>" server=A`,
				"end attempt 2 pa/m1#2 0 <err> retry cont=false",
				`attempt 3 pb/m2 try=1 provider=pb model=m2 fallback=true cont=false prev="pa/m1#2 <err>" server=B`,
				"end attempt 3 pb/m2#1 0 <err> retry cont=false",
				`attempt 4 pb/m2 try=2 provider=pb model=m2 fallback=false cont=false prev="pb/m2#1 <err>" server=B`,
				"end attempt 4 pb/m2#2 0 <err> retry cont=false",
				"end target= status=0 err=gateway error (4 attempts) closed=false model= usage=false/0/0 attempts=4",
			},
			wantSent: []string{"1/1", "1/2", "1/3", "1/4"},
		},
		{
			name:   "stream: the request ends with the stream",
			body:   fmt.Sprintf(chatBody, "pa/m1", `,"stream":true,"stream_options":{"include_usage":true}`),
			stream: true,
			want: []string{
				"start route=gateway model=pa/m1 op=chat/completions stream=true",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 200 succeed cont=false",
				"end target=pa/m1 status=200 err=<nil> closed=false model=m1 usage=true/7/5 attempts=1",
			},
			wantSent: []string{"1/1"},
			wantText: "tok4",
		},
		{
			name:       "stream closed early",
			body:       fmt.Sprintf(chatBody, "gateway", `,"stream":true`),
			stream:     true,
			closeEarly: true,
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=true",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 200 succeed cont=false",
				"end target=pa/m1 status=200 err=<nil> closed=true model=m1 usage=false/0/0 attempts=1",
			},
			wantSent: []string{"1/1"},
		},
		{
			name:    "stream that breaks",
			body:    fmt.Sprintf(chatBody, "gateway", `,"stream":true`),
			stream:  true,
			faultsA: []gatewaytest.Fault{{CutAfter: 2}},
			want: []string{
				"start route=gateway model=gateway op=chat/completions stream=true",
				`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=A`,
				"end attempt 1 pa/m1#1 200 truncated next cont=false",
				"end target=pa/m1 status=200 err=truncated closed=false model=m1 usage=false/0/0 attempts=2",
			},
			wantSent: []string{"1/1"},
			wantText: "tok2",
		},
		{
			name: "malformed body: refused, observed",
			body: `{"model":"gateway","messages":[],}`,
			want: []string{
				"start route=gateway model=gateway op= stream=false",
				"end target= status=0 err=malformed closed=false model= usage=false/0/0 attempts=0",
			},
		},
		{
			name: "malformed large body (replayed): refused, observed",
			body: `{"model":"gateway","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("x", 9<<10) + `"}],}`,
			want: []string{
				"start route=gateway model=gateway op= stream=true",
				"end target= status=0 err=malformed closed=false model= usage=false/0/0 attempts=0",
			},
		},
		{
			name:     "pass-through is not observed",
			body:     fmt.Sprintf(chatBody, "some-other-model", ""),
			wantSent: []string{"0/0"},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			a := server(t, "a", "sk-a")
			b := server(t, "b", "sk-b")
			a.Enqueue(st.faultsA...)
			b.Enqueue(st.faultsB...)
			rec := newObsRecorder()
			tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, noEnv(),
				provider("pa", a, "sk-a"), provider("pb", b, "sk-b"), gwtransport.WithMaxRetries(1),
				gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec))
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(st.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer sk-a")
			req.Header.Set("Content-Type", "application/json")
			res, err := (&http.Client{Transport: tr}).Do(req)
			if err == nil && st.stream {
				// Neither the attempt nor the request ended while the caller
				// holds the stream.
				assert.Len(t, rec.requests()[1], 2)
				if st.closeEarly {
					buf := make([]byte, 8)
					_, _ = res.Body.Read(buf)
				} else {
					text, _ := io.ReadAll(res.Body)
					assert.Contains(t, string(text), st.wantText)
				}
				res.Body.Close()
			} else if err == nil {
				_, _ = io.ReadAll(res.Body)
				res.Body.Close()
			}
			want := map[int][]string{}
			if len(st.want) > 0 {
				for _, w := range st.want {
					w = strings.ReplaceAll(w, "server=A", "server="+hostPort(t, a))
					w = strings.ReplaceAll(w, "server=B", "server="+hostPort(t, b))
					want[1] = append(want[1], w)
				}
				want[1] = append(want[1], "")
			}
			assert.Equal(t, want, rec.requests())
			assert.Equal(t, st.wantSent, rec.sent)
			assert.Empty(t, rec.problems())
		})
	}
}

// attemptLine renders an attempt without the text of a network error.
func attemptLine(a gwtransport.Attempt) string {
	s := fmt.Sprintf("%s#%d %d", a.Target, a.Try, a.Status)
	if a.Code != "" {
		s += " " + a.Code
	}
	switch {
	case errors.Is(a.Err, gwtransport.ErrStreamTruncated):
		s += " truncated"
	case a.Err != nil:
		s += " <err>"
	}
	return s
}

// prevLine renders ObservedAttempt.Previous without the text of a
// network error.
func prevLine(p string) string {
	head, rest, ok := strings.Cut(p, " ")
	if ok && (rest == "" || rest[0] < '0' || rest[0] > '9') {
		return head + " <err>"
	}
	return p
}

// TestObserverContinuation attacks the rescue of a broken stream: the
// broken part's attempt ends with the break, the continuation is a new
// attempt under the request, and the request ends once, at the end of the
// spliced stream, with the continuation's target.
func TestObserverContinuation(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	a.Enqueue(gatewaytest.Fault{CutAfter: 2})
	rec := newObsRecorder()
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, noEnv(),
		provider("pa", a, "sk-a"), provider("pb", b, "sk-b"), gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"pb/m2": gwtransport.ContinuePrefix}))
	require.NoError(t, err)
	c := openaiClient(a, "sk-a", option.WithHTTPClient(&http.Client{Transport: tr}))
	text, raw, err := streamChat(t, context.Background(), c, "gateway")
	require.NoError(t, err)
	assert.Contains(t, text, "tok")
	assert.Equal(t, "pa/m1", raw.Header.Get(gwtransport.HeaderTarget))
	got := rec.requests()
	require.Len(t, got, 1)
	assert.Equal(t, []string{
		"start route=gateway model=gateway op=chat/completions stream=true",
		`attempt 1 pa/m1 try=1 provider=pa model=m1 fallback=false cont=false prev="" server=` + hostPort(t, a),
		"end attempt 1 pa/m1#1 200 truncated next cont=false",
		`attempt 2 pb/m2 try=1 provider=pb model=m2 fallback=true cont=true prev="pa/m1#1 200 gwtransport: stream ended before it was complete\nunexpected EOF" server=` + hostPort(t, b),
		"end attempt 2 pb/m2#1 200 succeed cont=true",
		"end target=pb/m2 status=200 err=<nil> closed=false model=m1 usage=true/7/5 attempts=3",
		"",
	}, got[1])
	assert.Equal(t, []string{"1/1", "1/2"}, rec.sent)
	assert.Empty(t, rec.problems())
}

// TestObserverConcurrent attacks cross-talk: concurrent requests, each
// with its own faults, get their own well-formed sequences.
func TestObserverConcurrent(t *testing.T) {
	a := server(t, "a", "sk-a")
	b := server(t, "b", "sk-b")
	rec := newObsRecorder()
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1", "pb/m2"}, noEnv(),
		provider("pa", a, "sk-a"), provider("pb", b, "sk-b"), gwtransport.WithMaxRetries(0),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec), gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	require.NoError(t, err)
	const n = 24
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stream := i%2 == 0
			body := `{"model":"gateway","messages":[],"stream":` + strconv.FormatBool(stream) + `}`
			req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer sk-a")
			res, err := (&http.Client{Transport: tr}).Do(req)
			if !assert.NoError(t, err) {
				return
			}
			_, _ = io.ReadAll(res.Body)
			res.Body.Close()
		}(i)
	}
	wg.Wait()
	got := rec.requests()
	require.Len(t, got, n)
	for id, calls := range got {
		require.GreaterOrEqual(t, len(calls), 4, "request %d", id)
		assert.True(t, strings.HasPrefix(calls[0], "start "), "request %d: %v", id, calls)
		assert.Equal(t, "", calls[len(calls)-1], "request %d", id)
		assert.True(t, strings.HasPrefix(calls[len(calls)-2], "end target=pa/m1 status=200 err=<nil>"), "request %d: %v", id, calls)
		assert.Len(t, calls, 5, "request %d: %v", id, calls)
	}
	assert.Len(t, rec.sent, n)
	assert.Empty(t, rec.problems())
}

// TestObserverCloseWhileReading attacks a stream closed by another
// goroutine while its reader is blocked on the provider, or breaks at
// the same moment: the request still ends exactly once, with every
// attempt ended first (run with -race).
func TestObserverCloseWhileReading(t *testing.T) {
	a := server(t, "a", "sk-a")
	rec := newObsRecorder()
	tr, err := gwtransport.NewTransport(rec.wrap(http.DefaultTransport), []string{"pa/m1"}, noEnv(),
		provider("pa", a, "sk-a"), gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(rec),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}))
	require.NoError(t, err)
	const n = 8
	for i := 0; i < n; i++ {
		a.Enqueue(gatewaytest.Fault{StallAfter: 1, CutAfter: 1 + i%2})
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[],"stream":true}`))
		req.Header.Set("Authorization", "Bearer sk-a")
		res, err := (&http.Client{Transport: tr}).Do(req)
		require.NoError(t, err)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(io.Discard, res.Body)
		}()
		res.Body.Close()
		<-done
	}
	got := rec.requests()
	require.Len(t, got, n)
	for id, calls := range got {
		require.Len(t, calls, 5, "request %d: %v", id, calls)
		assert.True(t, strings.HasPrefix(calls[3], "end target=pa/m1 status=200 "), "request %d: %v", id, calls)
	}
	assert.Empty(t, rec.problems())
}

// orderObs logs its calls under its name, and checks it finds its own
// context value whatever the observers after it added.
type orderObs struct {
	name string
	mu   *sync.Mutex
	log  *[]string
}

type orderKey string

func (o orderObs) add(s string) {
	o.mu.Lock()
	*o.log = append(*o.log, o.name+" "+s)
	o.mu.Unlock()
}

func (o orderObs) RequestStart(ctx context.Context, _ gwtransport.ObservedRequest) context.Context {
	o.add("request start")
	return context.WithValue(ctx, orderKey(o.name), "req")
}

func (o orderObs) AttemptStart(ctx context.Context, a gwtransport.ObservedAttempt) context.Context {
	o.add(fmt.Sprintf("attempt %d start (%v)", a.Index, ctx.Value(orderKey(o.name))))
	return context.WithValue(ctx, orderKey(o.name), fmt.Sprint("att", a.Index))
}

func (o orderObs) AttemptEnd(ctx context.Context, _ gwtransport.Attempt) {
	o.add(fmt.Sprintf("attempt end (%v)", ctx.Value(orderKey(o.name))))
}

func (o orderObs) RequestEnd(ctx context.Context, _ gwtransport.ObservedEnd) {
	o.add(fmt.Sprintf("request end (%v)", ctx.Value(orderKey(o.name))))
}

// TestJoinObservers attacks the join: starts in order, ends in reverse
// order (spans close inside out), each observer seeing its own values,
// nil observers skipped.
func TestJoinObservers(t *testing.T) {
	a := server(t, "a", "sk-a")
	a.Enqueue(gatewaytest.Fault{Status: 503})
	var mu sync.Mutex
	var log []string
	obs := gwtransport.JoinObservers(orderObs{"A", &mu, &log}, nil, orderObs{"B", &mu, &log})
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m1"}, noEnv(), provider("pa", a, "sk-a"),
		gwtransport.WithClock(newFakeClock()), gwtransport.WithObserver(obs))
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	req.Header.Set("Authorization", "Bearer sk-a")
	res, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, []string{
		"A request start", "B request start",
		"A attempt 1 start (req)", "B attempt 1 start (req)",
		"B attempt end (att1)", "A attempt end (att1)",
		"A attempt 2 start (req)", "B attempt 2 start (req)",
		"B attempt end (att2)", "A attempt end (att2)",
		"B request end (req)", "A request end (req)",
	}, log)
}
