package gatewaytest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// streamedText collects the content of a streamed chat answer and its
// [DONE] count.
func streamedText(t *testing.T, body string) (string, int) {
	t.Helper()
	text, done := "", 0
	for _, ev := range strings.Split(body, "\n\n") {
		d, ok := strings.CutPrefix(strings.TrimSpace(ev), "data: ")
		if !ok {
			continue
		}
		if d == "[DONE]" {
			done++
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(d), &ch), d)
		for _, c := range ch.Choices {
			text += c.Delta.Content
		}
	}
	return text, done
}

func chatBody(stream bool, last string, extra string) string {
	msgs := `[{"role":"user","content":"hi"}` + last + `]`
	s := "false"
	if stream {
		s = "true"
	}
	return `{"model":"m","stream":` + s + `,"messages":` + msgs + extra + `}`
}

func TestWithReplyStreamsItsTokens(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithReply("one two  three"))
	defer s.Close()
	_, body, err := post(t, s.URL+"/chat/completions", chatBody(true, "", ""), nil)
	require.NoError(t, err)
	text, done := streamedText(t, body)
	assert.Equal(t, "one two  three", text)
	assert.Equal(t, 1, done)
	assert.Equal(t, 4, strings.Count(body, `"content":`), "tokens split after each space: one, two, ' ', three")
	_, body, err = post(t, s.URL+"/chat/completions", chatBody(false, "", ""), nil)
	require.NoError(t, err)
	assert.Contains(t, body, `"content":"one two  three"`)
}

func TestWithContinuationModes(t *testing.T) {
	const reply = "alpha beta gamma"
	cases := []struct {
		mode, last, extra, want string
	}{
		{"prefill", `,{"role":"assistant","content":"alpha "}`, "", "beta gamma"},
		{"prefill", `,{"role":"assistant","content":"zeta "}`, "", reply}, // not a prefix: the whole reply
		{"prefill", "", "", reply},
		{"prefix", `,{"role":"assistant","content":"alpha ","prefix":true}`, "", "beta gamma"},
		{"prefix", `,{"role":"assistant","content":"alpha "}`, "", reply}, // no flag: a fresh turn
		{"continue_final_message", `,{"role":"assistant","content":"alpha beta"}`, `,"continue_final_message":true,"add_generation_prompt":false`, " gamma"},
		{"continue_final_message", `,{"role":"assistant","content":"alpha beta"}`, `,"continue_final_message":true`, reply},
		{"", `,{"role":"assistant","content":"alpha "}`, "", reply}, // a plain model: duplicated text
	}
	for _, tc := range cases {
		for _, stream := range []bool{true, false} {
			opts := []gatewaytest.Option{gatewaytest.WithReply(reply)}
			if tc.mode != "" {
				opts = append(opts, gatewaytest.WithContinuation(tc.mode))
			}
			s := gatewaytest.NewServer(opts...)
			res, body, err := post(t, s.URL+"/chat/completions", chatBody(stream, tc.last, tc.extra), nil)
			s.Close()
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode)
			if stream {
				text, done := streamedText(t, body)
				assert.Equal(t, tc.want, text, "%s %s", tc.mode, tc.last)
				assert.Equal(t, 1, done)
				continue
			}
			var cc struct {
				Choices []struct {
					Message struct {
						Content string `json:"content"`
					} `json:"message"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &cc))
			assert.Equal(t, tc.want, cc.Choices[0].Message.Content, "%s %s", tc.mode, tc.last)
		}
	}
}

func TestWithPrefillRejected(t *testing.T) {
	s := gatewaytest.NewServer(gatewaytest.WithPrefillRejected())
	defer s.Close()
	res, body, err := post(t, s.URL+"/chat/completions", chatBody(true, `,{"role":"assistant","content":"x"}`, ""), nil)
	require.NoError(t, err)
	assert.Equal(t, 400, res.StatusCode)
	assert.Contains(t, body, `"type":"invalid_request_error"`)
	assert.Contains(t, body, "assistant prefill is not supported")
	res, _, err = post(t, s.URL+"/chat/completions", chatBody(true, "", ""), nil)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode, "no prefill, no refusal")
	assert.Equal(t, 2, s.Count())
}
