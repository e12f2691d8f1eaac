package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRVCallerContinuationCredentials: through a real openai-go client
// carrying extra credential headers of its own, a continuation at another
// provider carries that provider's key only, and a continuation back at the
// client's own provider carries the client's key, never another's.
func TestRVCallerContinuationCredentials(t *testing.T) {
	for _, order := range [][]string{{"openai/gpt-4o", "fb/b-model"}, {"fb/b-model", "openai/gpt-4o"}} {
		t.Run(order[0], func(t *testing.T) {
			a := server(t, "primary", "key-p", gatewaytest.WithReply(contReply), gatewaytest.WithContinuation("prefill"))
			b := server(t, "second", "key-b", gatewaytest.WithReply(contReply), gatewaytest.WithContinuation("prefill"))
			c := openaiClient(a, "key-p", option.WithHeader("X-Api-Key", "caller-apim-secret"), option.WithHeader("Cookie", "sess=caller"))
			mustInit(t, c, order, noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()), provider("fb", b, "key-b"),
				gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"openai/gpt-4o": "prefill", "fb/b-model": "prefill"}))
			first, second := a, b
			if order[0] == "fb/b-model" {
				first, second = b, a
			}
			first.Enqueue(gatewaytest.Fault{CutAfter: 2})
			text, raw, err := streamChat(t, context.Background(), c, "gateway")
			require.NoError(t, err)
			assert.Equal(t, contReply, text)
			require.Equal(t, 1, first.Count())
			require.Equal(t, 1, second.Count())
			for _, j := range b.Journal() {
				assert.Equal(t, gatewaytest.Mask("Bearer key-b"), j.Header.Get("Authorization"))
				assert.Empty(t, j.Header.Get("X-Api-Key"), "the caller's APIM key never reaches another provider")
				assert.Empty(t, j.Header.Get("Cookie"))
			}
			for _, j := range a.Journal() {
				assert.Equal(t, gatewaytest.Mask("Bearer key-p"), j.Header.Get("Authorization"))
			}
			_ = raw
		})
	}
}

// TestRVCallerConcurrentBreaks: many concurrent streams break at once and
// share the capable fallback; Trail and Stats are read from other
// goroutines while the continuations run (-race).
func TestRVCallerConcurrentBreaks(t *testing.T) {
	const n = 24
	a := server(t, "primary", "key-p", gatewaytest.WithReply(contReply))
	b := server(t, "second", "key-b", gatewaytest.WithReply(contReply), gatewaytest.WithContinuation("prefill"))
	for i := 0; i < n; i++ {
		a.Enqueue(gatewaytest.Fault{CutAfter: 1 + i%5})
	}
	var hooked atomic.Int64
	c := openaiClient(a, "key-p")
	m := mustInit(t, c, []string{"openai/gpt-4o", "fb/b-model"}, noEnv(), seeded(1), gwtransport.WithClock(newFakeClock()), provider("fb", b, "key-b"),
		gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true}),
		gwtransport.WithOnAttempt(func(gwtransport.Attempt) { hooked.Add(1) }),
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"fb/b-model": "prefill"}))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	trails := make([]*gwtransport.Trail, n)
	ctxs := make([]context.Context, n)
	for i := range trails {
		ctxs[i], trails[i] = gwtransport.WithTrail(context.Background())
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, tr := range trails {
				_ = tr.Attempts()
				_ = tr.MalformedDropped()
			}
			_ = m.Stats()
		}
	}()
	var rw sync.WaitGroup
	errs := make([]error, n)
	texts := make([]string, n)
	for i := 0; i < n; i++ {
		rw.Add(1)
		go func(i int) {
			defer rw.Done()
			texts[i], _, errs[i] = streamChat(t, ctxs[i], c, "gateway")
		}(i)
	}
	rw.Wait()
	close(stop)
	wg.Wait()
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i], "stream %d", i)
		assert.Equal(t, contReply, texts[i], "stream %d", i)
		as := trails[i].Attempts()
		require.Len(t, as, 3, "stream %d", i)
	}
	assert.Equal(t, int64(3*n), hooked.Load())
	assert.Equal(t, n, b.Count())
}

// TestRVCallerMaxAttemptsAcrossRetryCommitAndContinuations: a 503 retried,
// a commit, a break and continuations never send more than WithMaxAttempts
// requests in all.
func TestRVCallerMaxAttemptsAcrossRetryCommitAndContinuations(t *testing.T) {
	for max := 1; max <= 5; max++ {
		rig := newContRig(t, [3]string{"prefill", "prefill", "prefill"}, [3][]gatewaytest.Option{}, gwtransport.WithMaxAttempts(max))
		rig.a.Enqueue(gatewaytest.Fault{Status: 503}, gatewaytest.Fault{CutAfter: 1}, gatewaytest.Fault{CutAfter: 1}, gatewaytest.Fault{CutAfter: 1})
		rig.b.Enqueue(gatewaytest.Fault{CutAfter: 1}, gatewaytest.Fault{CutAfter: 1})
		rig.c.Enqueue(gatewaytest.Fault{CutAfter: 1}, gatewaytest.Fault{CutAfter: 1})
		ctx, trail := gwtransport.WithTrail(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, rig.a.URL+"/chat/completions", strings.NewReader(contBody))
		req.Header.Set("Authorization", "Bearer key-p")
		res, err := (&http.Client{Transport: rig.tr}).Do(req)
		if err == nil {
			_, _ = io.ReadAll(res.Body)
			res.Body.Close()
		}
		total := rig.a.Count() + rig.b.Count() + rig.c.Count()
		assert.LessOrEqual(t, total, max, "max attempts %d: sent %d, trail %v", max, total, trail.Attempts())
	}
}

// TestRVCallerCloseIsNoBreak: a caller that closes a committed, rescuable
// stream from another goroutine while a read waits on the provider ends
// the stream; the trail and WithOnAttempt do not report a break of the
// target (the target did not break: the caller left).
func TestRVCallerCloseIsNoBreak(t *testing.T) {
	var mu sync.Mutex
	var hooked []gwtransport.Attempt
	rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{},
		gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { mu.Lock(); hooked = append(hooked, a); mu.Unlock() }))
	rig.a.Enqueue(gatewaytest.Fault{StallAfter: 2})
	ctx, trail := gwtransport.WithTrail(context.Background())
	res := rig.rawChat(t, ctx, contBody)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(res.Body)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, res.Body.Close())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end")
	}
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, trail.Attempts(), 1, "only the committed attempt: %v", trail.Attempts())
	mu.Lock()
	assert.Len(t, hooked, 1, "only the committed attempt: %v", hooked)
	mu.Unlock()
	assert.Zero(t, rig.b.Count())
	st := rig.tr.Stats()
	assert.Zero(t, st[0].Failures, "the caller's close is not the target's failure")
}

var _ = openai.Bool
