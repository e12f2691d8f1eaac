package gwtransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

var exact = gwtransport.Backoff{Initial: 100 * time.Millisecond, Multiplier: 3, Max: time.Second}

func TestRetriesPerModel(t *testing.T) {
	tests := []struct {
		name             string
		opts             []gwtransport.Option
		primary, fallbk  int
		wantAttemptsHdr  string
		wantFallbackUsed bool
	}{
		{"default is 2 retries", nil, 3, 1, "4", true},
		{"global 0 means one attempt", []gwtransport.Option{gwtransport.WithMaxRetries(0)}, 1, 1, "2", true},
		{"per-model override", []gwtransport.Option{gwtransport.WithMaxRetries(0), gwtransport.WithModelMaxRetries(map[string]int{"openai/gpt-4o": 4})}, 5, 1, "6", true},
		{"total attempts cap", []gwtransport.Option{gwtransport.WithMaxRetries(5), gwtransport.WithMaxAttempts(3)}, 3, 0, "3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.opts...)
			p.primary.SetFault(&gatewaytest.Fault{Status: 500})
			_, model, raw, err := p.ask(t, context.Background(), false)
			if tc.wantFallbackUsed {
				require.NoError(t, err)
				assert.Equal(t, "fallback-model", model)
			} else {
				require.Error(t, err)
			}
			assert.Equal(t, tc.primary, p.primary.Count())
			assert.Equal(t, tc.fallbk, p.fallback.Count())
			assert.Equal(t, tc.wantAttemptsHdr, raw.Header.Get(gwtransport.HeaderAttempts))
		})
	}
}

func TestBackoffSequence(t *testing.T) {
	tests := []struct {
		name   string
		faults []gatewaytest.Fault
		want   []time.Duration
	}{
		{
			name:   "exponential, capped",
			faults: []gatewaytest.Fault{{Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}},
			want:   []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, time.Second},
		},
		{
			name:   "Retry-After longer than the backoff wins",
			faults: []gatewaytest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "3"}}, {Status: 500}},
			want:   []time.Duration{3 * time.Second, 300 * time.Millisecond},
		},
		{
			name:   "each attempt's own header",
			faults: []gatewaytest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "2"}}, {Status: 429, Header: map[string]string{"Retry-After-Ms": "1500"}}, {Status: 503}},
			want:   []time.Duration{2 * time.Second, 1500 * time.Millisecond, 900 * time.Millisecond},
		},
		{
			name:   "Retry-After shorter than the backoff",
			faults: []gatewaytest.Fault{{Status: 429, Header: map[string]string{"Retry-After-Ms": "10"}}},
			want:   []time.Duration{100 * time.Millisecond},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, gwtransport.WithBackoff(exact), gwtransport.WithMaxRetries(4))
			p.primary.Enqueue(tc.faults...)
			_, model, _, err := p.ask(t, context.Background(), false)
			require.NoError(t, err)
			assert.Equal(t, "gpt-4o", model)
			assert.Equal(t, tc.want, p.clock.Sleeps())
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	p := newPair(t, gwtransport.WithBackoff(exact))
	when := p.clock.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)
	p.primary.Enqueue(gatewaytest.Fault{Status: 503, Header: map[string]string{"Retry-After": when}})
	_, _, _, err := p.ask(t, context.Background(), false)
	require.NoError(t, err)
	sleeps := p.clock.Sleeps()
	require.Len(t, sleeps, 1)
	// HTTP dates have whole seconds.
	assert.InDelta(t, float64(5*time.Second), float64(sleeps[0]), float64(time.Second))
}

func TestDeadlineBudget(t *testing.T) {
	tests := []struct {
		name        string
		retryAfter  string
		maxWait     time.Duration
		wantModel   string
		wantSleeps  []time.Duration
		wantPrimary int
	}{
		{"wait fits the deadline", "1", 0, "gpt-4o", []time.Duration{time.Second}, 2},
		{"wait longer than the deadline fails over now", "10", 0, "fallback-model", nil, 1},
		{"wait longer than the cap fails over now", "3", 2 * time.Second, "fallback-model", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []gwtransport.Option{gwtransport.WithBackoff(exact)}
			if tc.maxWait > 0 {
				opts = append(opts, gwtransport.WithMaxRetryWait(tc.maxWait))
			}
			p := newPair(t, opts...)
			p.primary.Enqueue(gatewaytest.Fault{Status: 429, Header: map[string]string{"Retry-After": tc.retryAfter}})
			ctx, cancel := context.WithDeadline(context.Background(), p.clock.Now().Add(5*time.Second))
			defer cancel()
			_, model, _, err := p.ask(t, ctx, false)
			require.NoError(t, err)
			assert.Equal(t, tc.wantModel, model)
			assert.Equal(t, tc.wantSleeps, p.clock.Sleeps())
			assert.Equal(t, tc.wantPrimary, p.primary.Count())
		})
	}
}

// blockingClock blocks every Sleep until the context ends, announcing it.
type blockingClock struct{ sleeping chan struct{} }

func (blockingClock) Now() time.Time { return time.Now() }

func (c blockingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeping <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestCancellationDuringBackoff(t *testing.T) {
	a := server(t, "a", "")
	a.SetFault(&gatewaytest.Fault{Status: 503})
	clock := blockingClock{sleeping: make(chan struct{}, 1)}
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m"}, noEnv(), gwtransport.WithClock(clock),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, Auth: gwtransport.AuthNone}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-clock.sleeping
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	_, err = tr.RoundTrip(req)
	require.ErrorIs(t, err, context.Canceled)
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	require.Len(t, gerr.Attempts, 1)
	assert.Equal(t, 503, gerr.Attempts[0].Status)
	assert.Equal(t, 1, a.Count(), "nothing is sent after the cancellation")
}

func TestDeadlineEndsRequestWithError(t *testing.T) {
	a := server(t, "a", "")
	a.SetFault(&gatewaytest.Fault{Hang: true})
	tr, err := gwtransport.NewTransport(nil, []string{"pa/m"}, noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, Auth: gwtransport.AuthNone}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/chat/completions", strings.NewReader(`{"model":"gateway","messages":[]}`))
	_, err = tr.RoundTrip(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var gerr *gwtransport.Error
	require.ErrorAs(t, err, &gerr)
	assert.Len(t, gerr.Attempts, 1)
	assert.Equal(t, 1, a.Count())
}

// A long answer is never cut by the attempt timeout once the caller reads
// it: the timeout covers the wait for the response, not its reading.
func TestAttemptTimeoutDoesNotCutTheBody(t *testing.T) {
	a := server(t, "a", "key-p", gatewaytest.WithStreamChunks(3))
	c := openaiClient(a, "key-p")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithTimeout(30*time.Millisecond))
	s := c.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
	defer s.Close()
	require.True(t, s.Next())
	time.Sleep(60 * time.Millisecond) // the caller is slow; the attempt timeout has long passed
	n := 1
	for s.Next() {
		n++
	}
	require.NoError(t, s.Err())
	assert.Equal(t, 4, n, "3 content events and the finish")
}

func messagesOf(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var b struct {
		Messages []map[string]any `json:"messages"`
		Input    json.RawMessage  `json:"input"`
	}
	require.NoError(t, json.Unmarshal(body, &b))
	if b.Messages == nil && len(b.Input) > 0 {
		require.NoError(t, json.Unmarshal(b.Input, &b.Messages))
	}
	return b.Messages
}

func TestModelMessagesPerTarget(t *testing.T) {
	p := newPair(t, gwtransport.WithMaxRetries(1), gwtransport.WithModelMessages(map[string][]gwtransport.Message{
		"openai/gpt-4o":     {{Role: "system", Content: "You are the primary."}},
		"fb/fallback-model": {{Role: "developer", Content: "You are the fallback."}, {Role: "user", Content: "Be brief."}},
	}))
	p.primary.SetFault(&gatewaytest.Fault{Status: 500})
	_, model, _, err := p.ask(t, context.Background(), false)
	require.NoError(t, err)
	assert.Equal(t, "fallback-model", model)

	for _, r := range p.primary.Journal() {
		assert.Equal(t, []map[string]any{
			{"role": "system", "content": "You are the primary."},
			{"role": "user", "content": "Hello!"},
		}, messagesOf(t, r.Body), "retries do not accumulate messages")
	}
	fb := p.fallback.Journal()
	require.Len(t, fb, 1)
	assert.Equal(t, []map[string]any{
		{"role": "developer", "content": "You are the fallback."},
		{"role": "user", "content": "Be brief."},
		{"role": "user", "content": "Hello!"},
	}, messagesOf(t, fb[0].Body), "the primary's messages are not carried over")
}

func TestModelMessagesResponsesAPI(t *testing.T) {
	a := server(t, "a", "key-a")
	c := openaiClient(a, "key-a")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv(), gwtransport.WithModelMessages(map[string][]gwtransport.Message{
		"openai/gpt-4o": {{Role: "system", Content: "S"}},
	}))
	ctx := context.Background()
	_, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}})
	require.NoError(t, err)
	_, err = c.Responses.New(ctx, responses.ResponseNewParams{Model: "gateway", Input: responses.ResponseNewParamsInputUnion{
		OfInputItemList: responses.ResponseInputParam{responses.ResponseInputItemParamOfMessage("hello", responses.EasyInputMessageRoleUser)},
	}})
	require.NoError(t, err)
	j := a.Journal()
	require.Len(t, j, 2)
	assert.Equal(t, []map[string]any{{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}}, messagesOf(t, j[0].Body))
	got := messagesOf(t, j[1].Body)
	require.Len(t, got, 2)
	assert.Equal(t, map[string]any{"role": "system", "content": "S"}, got[0])
	assert.Equal(t, "hello", got[1]["content"])
}

func TestTrailAndHook(t *testing.T) {
	var hooked []gwtransport.Attempt
	p := newPair(t, gwtransport.WithMaxRetries(1), gwtransport.WithBackoff(exact),
		gwtransport.WithOnAttempt(func(a gwtransport.Attempt) { hooked = append(hooked, a) }))
	p.primary.SetFault(&gatewaytest.Fault{Status: 503, Code: "overloaded"})
	ctx, trail := gwtransport.ContextWithTrail(context.Background())
	_, _, _, err := p.ask(t, ctx, false, option.WithMaxRetries(0))
	require.NoError(t, err)
	at := trail.Attempts()
	assert.Equal(t, at, hooked)
	require.Len(t, at, 3)
	assert.Equal(t, gwtransport.Attempt{Route: "gateway", Target: "openai/gpt-4o", Try: 1, Status: 503, Code: "overloaded", Action: gwtransport.RetrySame, Wait: 100 * time.Millisecond, Duration: at[0].Duration}, at[0])
	assert.Equal(t, gwtransport.Attempt{Route: "gateway", Target: "openai/gpt-4o", Try: 2, Status: 503, Code: "overloaded", Action: gwtransport.RetrySame, Duration: at[1].Duration}, at[1])
	assert.Equal(t, gwtransport.Attempt{Route: "gateway", Target: "fb/fallback-model", Try: 1, Status: 200, Action: gwtransport.Succeed, Duration: at[2].Duration}, at[2])
}

func TestCustomPolicy(t *testing.T) {
	// Fail over on content-policy refusals instead of failing fast.
	policy := func(o gwtransport.Outcome) gwtransport.Action {
		if o.ContentPolicy() {
			return gwtransport.NextTarget
		}
		return gwtransport.DefaultPolicy(o)
	}
	p := newPair(t, gwtransport.WithPolicy(policy))
	p.primary.Enqueue(gatewaytest.Fault{Status: 400, Code: "content_filter"})
	_, model, _, err := p.ask(t, context.Background(), false)
	require.NoError(t, err)
	assert.Equal(t, "fallback-model", model)
	assert.False(t, errors.Is(err, context.Canceled))
}

func TestModelMessagesOnlyForConversations(t *testing.T) {
	a := server(t, "a", "key-a")
	c := openaiClient(a, "key-a")
	mustInit(t, c, []string{"openai/text-embedding-3-small"}, noEnv(), gwtransport.WithModelMessages(map[string][]gwtransport.Message{
		"openai/text-embedding-3-small": {{Role: "system", Content: "S"}},
	}))
	_, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "gateway", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}}})
	require.NoError(t, err)
	j := a.Journal()
	require.Len(t, j, 1)
	assert.JSONEq(t, `{"model":"text-embedding-3-small","input":["a","b"]}`, string(j[0].Body))
}
