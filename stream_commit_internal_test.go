package gwtransport

// The streaming commit point against every wire form of a role-only first
// chunk, of white space around a data value and of white space before a
// field name.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const contentEvent = `data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}` + "\n\n"

// peekCommit runs the commit point over stream for op: the prefix length
// at which it commits, or failover with its error.
func peekCommit(t *testing.T, stream, op string) (prefix int, failover error) {
	t.Helper()
	p, ev, err := peekFirstEvent(bufio.NewReaderSize(strings.NewReader(stream), 16), op)
	if err != nil {
		return len(p), err
	}
	if o, bad := eventFailure(ev); bad {
		if o.Err == nil {
			o.Err = errors.New("failure event")
		}
		return len(p), o.Err
	}
	return len(p), nil
}

// roleOnlyForms: data values, and whether each is a role-only chunk.
var roleOnlyForms = []struct {
	name string
	data string
	role bool
}{
	{"openai real", `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x"}`, true},
	{"without content key", `{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}`, true},
	{"content null", `{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`, true},
	{"refusal null", `{"choices":[{"index":0,"delta":{"role":"assistant","refusal":null}}]}`, true},
	{"tool_calls empty", `{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[ ]}}]}`, true},
	{"tool_calls null", `{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":null}}]}`, true},
	{"role null", `{"choices":[{"index":0,"delta":{"role":null}}]}`, true},
	{"empty delta", `{"choices":[{"index":0,"delta":{}}]}`, true},
	{"Role case variant", `{"choices":[{"index":0,"delta":{"Role":"assistant","content":""}}]}`, true},
	{"ROLE duplicate", `{"choices":[{"index":0,"delta":{"role":"assistant","ROLE":"user"}}]}`, true},
	{"escaped role", `{"choices":[{"index":0,"delta":{"\u0072ole":"assistant"}}]}`, true},
	{"two choices", `{"choices":[{"index":0,"delta":{"role":"assistant"}},{"index":1,"delta":{"role":"assistant","content":""}}]}`, true},
	{"no index", `{"choices":[{"delta":{"role":"assistant"}}]}`, true},
	{"usage null", `{"choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":null}`, true},
	{"azure filter results", `{"choices":[{"content_filter_results":{},"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"prompt_filter_results":[{"prompt_index":0}]}`, true},
	{"azure empty choices", `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}`, true},
	{"white space inside", "{ \"choices\" : [ { \"delta\" : { \"role\" : \"assistant\" , \"content\" : \"\" } } ] }", true},

	{"content", `{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}`, false},
	{"Content case variant", `{"choices":[{"index":0,"delta":{"role":"assistant","content":"","Content":"Hi"}}]}`, false},
	{"escaped content", `{"choices":[{"index":0,"delta":{"role":"assistant","\u0063ontent":"Hi"}}]}`, false},
	{"refusal", `{"choices":[{"index":0,"delta":{"role":"assistant","refusal":"no"}}]}`, false},
	{"tool call", `{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}`, false},
	{"function_call empty object", `{"choices":[{"index":0,"delta":{"role":"assistant","function_call":{}}}]}`, false},
	{"role number", `{"choices":[{"index":0,"delta":{"role":1}}]}`, false},
	{"finish_reason", `{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":"stop"}]}`, false},
	{"finish_reason empty", `{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":""}]}`, false},
	{"Finish_Reason case variant", `{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null,"Finish_Reason":"stop"}]}`, false},
	{"second choice content", `{"choices":[{"index":0,"delta":{"role":"assistant"}},{"index":1,"delta":{"content":"Hi"}}]}`, false},
	{"usage with data", `{"choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":{"total_tokens":3}}`, false},
	{"usage only", `{"choices":[],"usage":{"total_tokens":3}}`, false},
	{"Usage case variant", `{"choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":null,"Usage":{"total_tokens":3}}`, false},
	{"duplicate choices", `{"choices":[{"index":0,"delta":{"role":"assistant"}}],"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, false},
	{"Choices case variant", `{"choices":[{"index":0,"delta":{"role":"assistant"}}],"Choices":[{"index":0,"delta":{"content":"Hi"}}]}`, false},
	{"long s choices variant", "{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"choice\u017f\":[{\"delta\":{\"content\":\"Hi\"}}]}", false},
	{"Delta case variant", `{"choices":[{"index":0,"delta":{"role":"assistant"},"Delta":{"content":"Hi"}}]}`, false},
	{"logprobs", `{"choices":[{"index":0,"delta":{"role":"assistant"},"logprobs":{"content":[]}}]}`, false},
	{"index string", `{"choices":[{"index":"0","delta":{"role":"assistant"}}]}`, false},
	{"index negative", `{"choices":[{"index":-1,"delta":{"role":"assistant"}}]}`, false},
	{"delta null", `{"choices":[{"index":0,"delta":null}]}`, false},
	{"delta string", `{"choices":[{"index":0,"delta":"x"}]}`, false},
	{"choices object", `{"choices":{}}`, false},
	{"choice not object", `{"choices":[1]}`, false},
	{"no choices", `{"id":"chatcmpl-1","object":"chat.completion.chunk"}`, false},
	{"type member", `{"type":"x","choices":[{"delta":{"role":"assistant"}}]}`, false},
	{"array", `[{"choices":[{"delta":{"role":"assistant"}}]}]`, false},
	{"string", `"x"`, false},
}

func TestRoleOnlyForms(t *testing.T) {
	for _, c := range roleOnlyForms {
		t.Run(c.name, func(t *testing.T) {
			require.True(t, strings.HasPrefix(c.data, "{") || strings.HasPrefix(c.data, "[") || strings.HasPrefix(c.data, `"`))
			assert.Equal(t, c.role, roleOnly([]byte(c.data)), "roleOnly")
			assert.Equal(t, c.role, refRoleOnly([]byte(c.data)), "the model agrees")
			first := "data: " + c.data + "\n\n"
			for _, op := range []string{"chat/completions", "completions", "responses", ""} {
				at, err := peekCommit(t, first+contentEvent, op)
				require.NoError(t, err, op)
				if c.role && op == "chat/completions" {
					assert.Equal(t, len(first+contentEvent), at, "%s: a role-only chunk does not commit; it is replayed", op)
				} else {
					assert.Equal(t, len(first), at, "%s: the first chunk commits", op)
				}
			}
			// Cut right after it: a role-only chunk delivered nothing.
			_, err := peekCommit(t, first, "chat/completions")
			if c.role {
				assert.ErrorIs(t, err, ErrStreamTruncated)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

// The role-only rule in the events around it.
func TestRoleOnlyEvents(t *testing.T) {
	role := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n"
	finish := `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	cases := []struct {
		name   string
		stream string
		commit int // bytes before the commit; -1: fails over with err
		err    error
	}{
		{"role then content", role + "\n" + contentEvent, len(role + "\n" + contentEvent), nil},
		{"role twice then content", role + "\n" + role + "\n" + contentEvent, len(role+"\n"+role+"\n") + len(contentEvent), nil},
		{"role, keep-alive, content", role + "\n: ping\n\n" + contentEvent, len(role+"\n: ping\n\n") + len(contentEvent), nil},
		{"role then finish", role + "\n" + finish, len(role + "\n" + finish), nil},
		{"role then [DONE]", role + "\ndata: [DONE]\n\n", len(role + "\ndata: [DONE]\n\n"), nil},
		{"role then error", role + "\n" + `data: {"error":{"message":"overloaded"}}` + "\n\n", -1, nil},
		{"role then cut", role + "\n", -1, ErrStreamTruncated},
		{"role cut before its blank line", role, -1, ErrStreamTruncated},
		{"two role lines in one event", role + role + "\n" + contentEvent, len(role + role + "\n"), nil},
		{"role line and content line in one event", role + contentEvent, len(role + contentEvent), nil},
		{"role line with an empty data line", "data:\n" + role + "\n" + contentEvent, len("data:\n"+role+"\n") + len(contentEvent), nil},
		{"named event", "event: message\n" + role + "\n" + contentEvent, len("event: message\n" + role + "\n"), nil},
		{"ping event", "event: ping\n" + role + "\n" + contentEvent, len("event: ping\n"+role+"\n") + len(contentEvent), nil},
		{"role only, past maxFirstEvent", strings.Repeat(role+"\n", maxFirstEvent/len(role+"\n")+1), -1, ErrStreamMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at, err := peekCommit(t, c.stream, "chat/completions")
			if c.commit < 0 {
				require.Error(t, err)
				if c.err != nil {
					assert.ErrorIs(t, err, c.err)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.commit, at)
		})
	}
}

// whiteSpaces: bytes around a data value, and whether JSON allows them.
var whiteSpaces = []struct {
	name string
	ws   string
	json bool
}{
	{"U+00A0", "\u00a0", false},
	{"U+0085", "\u0085", false},
	{"form feed", "\f", false},
	{"vertical tab", "\v", false},
	{"U+3000", "\u3000", false},
	{"tab", "\t", true},
	{"carriage return", "\r", true},
	{"space", " ", true},
}

// Only JSON's white space may frame a data value: anything else is
// malformed before the commit (fail over) and after it (the stream
// breaks, never delivering it).
func TestDataWhiteSpaceForms(t *testing.T) {
	const chunk = `{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`
	for _, w := range whiteSpaces {
		for _, where := range []string{"before", "after", "both"} {
			t.Run(w.name+"/"+where, func(t *testing.T) {
				v := chunk
				if where != "after" {
					v = w.ws + v
				}
				if where != "before" {
					v += w.ws
				}
				ev := "data: " + v + "\n\n"
				at, err := peekCommit(t, ev+contentEvent, "chat/completions")
				if w.json {
					require.NoError(t, err)
					assert.Equal(t, len(ev), at)
				} else {
					assert.ErrorIs(t, err, ErrStreamMalformed, "fail over")
				}
				// After the commit.
				got, rerr := readCommitted(t, contentEvent+ev+"data: [DONE]\n\n")
				if w.json {
					assert.ErrorIs(t, rerr, io.EOF)
					assert.Equal(t, contentEvent+ev+"data: [DONE]\n\n", got)
				} else {
					assert.ErrorIs(t, rerr, ErrStreamMalformed)
					assert.Equal(t, contentEvent, got, "the malformed line is never delivered")
				}
			})
		}
	}
}

// readCommitted commits to stream (its first event must commit) and reads
// it to its end through a streamBody.
func readCommitted(t *testing.T, stream string) (string, error) {
	t.Helper()
	up := newUpstream(io.NopCloser(strings.NewReader(stream)))
	br := bufio.NewReaderSize(up, 16)
	prefix, ev, err := peekFirstEvent(br, "chat/completions")
	require.NoError(t, err)
	_, bad := eventFailure(ev)
	require.False(t, bad)
	_, cancel := context.WithCancel(context.Background())
	sb := newStreamBody(prefix, br, up, cancel, time.Minute, time.Minute, 1, "chat/completions")
	defer sb.Close()
	var out []byte
	buf := make([]byte, 7)
	for {
		n, err := sb.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out), err
		}
	}
}

// A line with white space before "data:" or "event:" is data to go-openai
// (it trims every line) and nothing to an SSE client: malformed. Other
// lines with white space are ignored by both, and passed.
func TestSpacedFieldForms(t *testing.T) {
	const value = `{"choices":[{"index":0,"delta":{"content":"y"},"finish_reason":null}]}`
	spaces := []string{" ", "  ", "\t", "\v", "\f", "\r", "\u00a0", "\u0085", "\u2000", "\u3000", " \t"}
	lines := []struct {
		line      string
		malformed bool
	}{
		{"data: " + value, true},
		{"data:" + value, true},
		{"data:", true},
		{"event: ping", true},
		{"event: error", true},
		{"event:", true},
		{": comment", false},
		{"id: 1", false},
		{"retry: 10", false},
		{"Data: " + value, false},
		{"x", false},
		{"", false},
	}
	for _, sp := range spaces {
		for _, l := range lines {
			line := sp + l.line + "\n"
			t.Run(strings.TrimSpace(strings.ReplaceAll(line, value, "{...}")), func(t *testing.T) {
				// Before the commit, alone in its event or with a content line.
				for _, ev := range []string{line + "\n", line + contentEvent, strings.TrimSuffix(contentEvent, "\n") + line + "\n"} {
					at, err := peekCommit(t, ev+contentEvent, "chat/completions")
					if l.malformed {
						assert.ErrorIs(t, err, ErrStreamMalformed, "%q", ev)
					} else {
						require.NoError(t, err, "%q", ev)
						assert.Greater(t, at, 0)
					}
				}
				got, err := readCommitted(t, contentEvent+line+"\n"+"data: [DONE]\n\n")
				if l.malformed {
					assert.ErrorIs(t, err, ErrStreamMalformed)
					assert.Equal(t, contentEvent, got)
				} else {
					assert.ErrorIs(t, err, io.EOF)
					assert.Equal(t, contentEvent+line+"\n"+"data: [DONE]\n\n", got)
				}
			})
		}
	}
}

func TestTrimJSONSpace(t *testing.T) {
	cases := map[string]string{
		"":                        "",
		" \t\r\n":                 "",
		" {} ":                    "{}",
		"\t\r\n{}\n\r\t":          "{}",
		"\u00a0{}\u00a0":          "\u00a0{}\u00a0",
		"\f{}\v":                  "\f{}\v",
		" \u0085{} ":              "\u0085{}",
		"[DONE] ":                 "[DONE]",
		" a b ":                   "a b",
		"\u3000 {} \u3000":        "\u3000 {} \u3000",
		"{}\t\u00a0\t":            "{}\t\u00a0",
		"\x85{}\x85":              "\x85{}\x85",
		string([]byte{' ', 0xa0}): string([]byte{0xa0}),
	}
	for in, want := range cases {
		assert.Equal(t, want, string(trimJSONSpace([]byte(in))), "%q", in)
	}
}
