package gwtransport_test

import (
	"context"
	"encoding/json"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

const uniReply = "Ça va? \"quoted\" back\\slash\nnew line 😀 emoji \u2028 sep <tag> & café end"

// uniProvider streams uniReply in tokens; the primary writes its JSON with
// \u escapes for every non-ASCII rune (as Python's json.dumps does) and cuts
// after `cut` events; the fallback continues a trailing assistant message
// only when it is a prefix of the reply, else answers the whole reply.
func uniProvider(t *testing.T, escape bool, cut int, prefills *[]string, mu *sync.Mutex) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Messages []map[string]any `json:"messages"`
		}
		_ = json.Unmarshal(body, &req)
		rest := uniReply
		if n := len(req.Messages); n > 0 && req.Messages[n-1]["role"] == "assistant" {
			c, _ := req.Messages[n-1]["content"].(string)
			mu.Lock()
			*prefills = append(*prefills, c)
			mu.Unlock()
			if strings.HasPrefix(uniReply, c) {
				rest = uniReply[len(c):]
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		toks := strings.SplitAfter(rest, " ")
		for i, tk := range toks {
			if cut > 0 && i == cut {
				return
			}
			b, _ := json.Marshal(tk)
			s := string(b)
			if escape {
				var e strings.Builder
				for _, r := range s {
					switch {
					case r > 0xffff:
						r -= 0x10000
						e.WriteString(`\u` + hex4(0xd800+(r>>10)) + `\u` + hex4(0xdc00+(r&0x3ff)))
					case r > 127:
						e.WriteString(`\u` + hex4(r))
					default:
						e.WriteRune(r)
					}
				}
				s = e.String()
			}
			_, _ = io.WriteString(w, `data: {"id":"u","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":`+s+`},"finish_reason":null}]}`+"\n\n")
			fl.Flush()
		}
		_, _ = io.WriteString(w, `data: {"id":"u","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	}))
}

func hex4(r rune) string {
	const h = "0123456789abcdef"
	return string([]byte{h[r>>12&15], h[r>>8&15], h[r>>4&15], h[r&15]})
}

// TestReviewContinuationUnicodeEscapes: the delivered text (escaped runes,
// a surrogate pair, \n, quotes, U+2028) is the prefill sent to the
// fallback, exactly; the caller reads the reply once.
func TestReviewContinuationUnicodeEscapes(t *testing.T) {
	for cut := 1; cut < 12; cut++ {
		var mu sync.Mutex
		var prefills []string
		prim := uniProvider(t, true, cut, &prefills, &mu)
		fb := uniProvider(t, false, 0, &prefills, &mu)
		c := openaiClientURL(prim.URL)
		mustInit(t, c, []string{"openai/gpt-4o", "mistral/m"}, noEnv(),
			gwtransport.WithProvider(gwtransport.Provider{Name: "mistral", BaseURL: fb.URL, APIKey: "k"}),
			gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{"mistral/m": gwtransport.ContinuePrefill}))
		text, _, err := streamChat(t, t_ctx(), c, "gateway")
		require.NoError(t, err, "cut %d", cut)
		assert.Equal(t, uniReply, text, "cut %d", cut)
		mu.Lock()
		if assert.Len(t, prefills, 1, "cut %d", cut) {
			assert.True(t, strings.HasPrefix(uniReply, prefills[0]), "cut %d: prefill %q", cut, prefills[0])
		}
		mu.Unlock()
		prim.Close()
		fb.Close()
	}
}

func t_ctx() context.Context { return context.Background() }

func openaiClientURL(u string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(u), option.WithAPIKey("key-p"), option.WithHTTPClient(&http.Client{}))
	return &c
}
