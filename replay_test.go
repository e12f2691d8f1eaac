package gwtransport_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// largeChat is a chat body of about 64 KiB (above the size from which
// bodies that carry GetBody are replayed rather than copied), the model
// last as openai-go writes it.
func largeChat(model string, stream bool) string {
	text := strings.Repeat(`A long prompt, with \"quotes\" and \\ escapes. `, 1400)
	s := `{"messages":[{"role":"user","content":"` + text + `"}],"model":"` + model + `"`
	if stream {
		s += `,"stream":true`
	}
	return s + "}"
}

// bodyOf makes each kind of request body a caller may send: what
// http.NewRequest replays in memory, a strings.Reader (replayed through
// a pooled buffer), a GetBody that is no io.WriterTo, and no GetBody at
// all (the plain path).
var bodyKinds = map[string]func(url, body string) *http.Request{
	"bytes.Reader": func(url, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
		return r
	},
	"strings.Reader": func(url, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		return r
	},
	"reader only": func(url, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(struct{ io.Reader }{strings.NewReader(body)}), nil
		}
		return r
	},
	"no GetBody": func(url, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		r.GetBody = nil
		return r
	},
	"unknown length": func(url, body string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, url, io.NopCloser(strings.NewReader(body)))
		r.ContentLength = -1
		return r
	},
}

// TestLargeBodiesRewrittenExactly: a large body, whatever its reader,
// reaches each target of a fallback with exactly the caller's bytes but
// the model and the target's model messages; a pass-through reaches the
// provider byte for byte; the caller's request is never changed.
func TestLargeBodiesRewrittenExactly(t *testing.T) {
	for kind, mk := range bodyKinds {
		for _, stream := range []bool{false, true} {
			t.Run(kind, func(t *testing.T) {
				a := server(t, "a", "key-a")
				b := server(t, "b", "key-b")
				a.SetFault(&gatewaytest.Fault{Status: 503})
				tr, err := gwtransport.NewTransport(http.DefaultTransport, []string{"aprov/model-a", "bprov/model-b"},
					noEnv(), provider("aprov", a, "key-a"), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(1),
					gwtransport.WithBackoff(gwtransport.Backoff{}),
					gwtransport.WithModelMessages(map[string][]gwtransport.Message{"bprov/model-b": {{Role: "system", Content: "Be \"brief\"."}}}))
				require.NoError(t, err)
				client := &http.Client{Transport: tr}

				body := largeChat("gateway", stream)
				req := mk(a.URL+"/chat/completions", body)
				req.Header.Set("Content-Type", "application/json")
				before := *req
				res, err := client.Do(req)
				require.NoError(t, err)
				_, err = io.Copy(io.Discard, res.Body)
				require.NoError(t, err)
				res.Body.Close()
				require.Equal(t, 200, res.StatusCode)
				assert.Equal(t, "bprov/model-b", res.Header.Get(gwtransport.HeaderTarget))
				assert.Equal(t, before.URL, req.URL)
				assert.Equal(t, before.ContentLength, req.ContentLength)
				assert.Equal(t, before.Header, req.Header)

				ja, jb := a.Journal(), b.Journal()
				require.Len(t, ja, 2) // a retry at the same target replays the body
				require.Len(t, jb, 1)
				wantA := strings.Replace(body, `"model":"gateway"`, `"model":"model-a"`, 1)
				wantB := strings.Replace(strings.Replace(body, `"model":"gateway"`, `"model":"model-b"`, 1),
					`{"messages":[`, `{"messages":[{"role":"system","content":"Be \"brief\"."},`, 1)
				assert.Equal(t, wantA, string(ja[0].Body))
				assert.Equal(t, wantA, string(ja[1].Body))
				assert.Equal(t, wantB, string(jb[0].Body))

				// The caller's own bytes are untouched and still replay.
				if req.GetBody != nil {
					rc, err := req.GetBody()
					require.NoError(t, err)
					again, err := io.ReadAll(rc)
					require.NoError(t, err)
					assert.Equal(t, body, string(again))
				}

				// A pass-through: the caller's bytes, exactly.
				a.Reset()
				a.SetFault(nil)
				plain := largeChat("some-other-model", stream)
				req = mk(a.URL+"/chat/completions", plain)
				req.Header.Set("Content-Type", "application/json")
				res, err = client.Do(req)
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				require.Len(t, a.Journal(), 1)
				assert.Equal(t, plain, string(a.Journal()[0].Body))
				assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget))
			})
		}
	}
}

// TestLargePromptThroughOpenAIGo: openai-go's own large requests, streamed
// and not, through the gateway with a fallback: the provider reads the
// prompt whole.
func TestLargePromptThroughOpenAIGo(t *testing.T) {
	for _, stream := range []bool{false, true} {
		a := server(t, "a", "key-a")
		b := server(t, "b", "key-b")
		a.SetFault(&gatewaytest.Fault{Status: 503})
		c := openaiClient(a, "key-a")
		mustInit(t, c, []string{"openai/gpt-4o", "bprov/model-b"}, noEnv(), provider("bprov", b, "key-b"), gwtransport.WithMaxRetries(0))
		prompt := strings.Repeat("word \"quoted\" ", 20000)
		params := openai.ChatCompletionNewParams{Model: "gateway", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}}
		if stream {
			s := c.Chat.Completions.NewStreaming(context.Background(), params)
			for s.Next() {
			}
			require.NoError(t, s.Err())
			s.Close()
		} else {
			_, err := c.Chat.Completions.New(context.Background(), params)
			require.NoError(t, err)
		}
		require.Len(t, a.Journal(), 1)
		require.Len(t, b.Journal(), 1)
		assert.Equal(t, []string{"gpt-4o"}, models(a.Journal()))
		assert.Equal(t, []string{"model-b"}, models(b.Journal()))
		assert.Contains(t, string(b.Journal()[0].Body), `"content":"`+strings.ReplaceAll(prompt, `"`, `\"`)+`"`)
		assert.Equal(t, strings.Replace(string(a.Journal()[0].Body), `"model":"gpt-4o"`, `"model":"model-b"`, 1), string(b.Journal()[0].Body))
	}
}

// TestContinuationOfLargeBodies: a large streamed chat request that
// breaks is continued with a prefill built from the caller's bytes,
// whether GetBody replays them in memory (kept without a copy) or not
// (the one case where the gateway keeps a copy: for the prefill).
func TestContinuationOfLargeBodies(t *testing.T) {
	long := strings.Repeat(`Read this \"long\" text. `, 1000)
	body := strings.Replace(contBody, `"content":"Hi"`, `"content":"`+long+`"`, 1)
	require.Greater(t, len(body), 16<<10)
	bc := breakCases()[0] // cut after 3 tokens
	for _, kind := range []string{"bytes.Reader", "strings.Reader", "reader only"} {
		t.Run(kind, func(t *testing.T) {
			rig := newContRig(t, [3]string{"", "prefill", ""}, [3][]gatewaytest.Option{})
			rig.a.Enqueue(bc.fault)
			req := bodyKinds[kind](rig.a.URL+"/chat/completions", body)
			req.Header.Set("Authorization", "Bearer key-p")
			req.Header.Set("Content-Type", "application/json")
			res, err := (&http.Client{Transport: rig.tr}).Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, 200, res.StatusCode)
			got := readSSE(res.Body)
			require.NoError(t, got.err)
			assert.Equal(t, contReply, got.text)

			j := rig.b.Journal()
			require.Len(t, j, 1)
			content, _, _, ok := lastAssistant(t, j[0].Body)
			require.True(t, ok)
			assert.Equal(t, bc.delivered, content)
			assert.Contains(t, string(j[0].Body), `"content":"`+long+`"`, "the caller's message, byte for byte")
			assert.Equal(t, "b-model", j[0].Model)
		})
	}
}

// TestOpenAIGoBytesReaderBody: openai-go given a *bytes.Reader body hands
// out the same reader, rewound, from GetBody: a large body still reaches
// the provider whole, passed through or rewritten.
func TestOpenAIGoBytesReaderBody(t *testing.T) {
	a := server(t, "a", "key-a")
	c := openaiClient(a, "key-a")
	mustInit(t, c, []string{"openai/gpt-4o"}, noEnv())
	for _, model := range []string{"gpt-4o-mini", "gateway"} {
		a.Reset()
		body := largeChat(model, false)
		_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{},
			option.WithRequestBody("application/json", bytes.NewReader([]byte(body))))
		require.NoError(t, err)
		require.Len(t, a.Journal(), 1)
		want := body
		if model == "gateway" {
			want = strings.Replace(body, `"model":"gateway"`, `"model":"gpt-4o"`, 1)
		}
		assert.Equal(t, want, string(a.Journal()[0].Body), model)
	}
}
