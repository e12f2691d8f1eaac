package gwtransport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestRVCallerContinuationBodyIsTheRewriteplusThePrefill: the continuation
// request is byte for byte the fallback's ordinary rewrite of the caller's
// body with exactly one assistant message added at the end of the
// "messages" array; the caller's request is untouched.
func TestRVCallerContinuationBodyIsTheRewritePlusThePrefill(t *testing.T) {
	bodies := []string{
		`{"model":"gateway","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a ] } [ {"}]}]  ,"stream_options":{"include_usage":true},"n":1,"logprobs":false}`,
		"{ \"messages\" : [ {\"role\":\"user\",\"content\":\"x\"} ,\n {\"role\":\"assistant\",\"content\":\"Sure:\"} ] , \"model\" : \"gateway\", \"stream\" : true , \"N\":1, \"top_logprobs\":null, \"extra\":{\"messages\":[1]}}  \n",
		`{"stream":true,"model":"gateway","messages":[{"role":"user","content":"x"}],"continue_final_message":false,"add_generation_prompt":true}`,
	}
	for _, mode := range []string{"prefill", "prefix", "continue_final_message"} {
		for i, body := range bodies {
			rig := newContRig(t, [3]string{"", mode, ""}, [3][]gatewaytest.Option{})
			rig.a.Enqueue(gatewaytest.Fault{CutAfter: 2})
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, rig.a.URL+"/chat/completions", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer key-p")
			hdr := req.Header.Clone()
			res, err := (&http.Client{Transport: rig.tr}).Do(req)
			require.NoError(t, err)
			raw, err := io.ReadAll(res.Body)
			res.Body.Close()
			require.NoError(t, err, "%s body %d", mode, i)
			got := readSSE(bytes.NewReader(raw))
			assert.Equal(t, contReply, got.text, "%s body %d", mode, i)
			assert.Equal(t, hdr, req.Header, "the caller's headers are untouched")
			gb, _ := req.GetBody()
			again, _ := io.ReadAll(gb)
			assert.Equal(t, body, string(again), "the caller's body is untouched")

			ja, jb := rig.a.Journal(), rig.b.Journal()
			require.Len(t, ja, 1)
			require.Len(t, jb, 1)
			first := strings.Replace(string(ja[0].Body), `"gpt-4o"`, `"b-model"`, 1)
			cont := string(jb[0].Body)
			delivered := strings.Join(strings.SplitAfter(contReply, " ")[:2], "")
			q, _ := json.Marshal(delivered)
			msg := `{"role":"assistant","content":` + string(q)
			if mode == "prefix" {
				msg += `,"prefix":true`
			}
			msg += `}`
			i1 := strings.Index(cont, msg)
			require.GreaterOrEqual(t, i1, 0, "%s body %d: %s", mode, i, cont)
			stripped := cont[:i1] + cont[i1+len(msg):]
			stripped = strings.Replace(stripped, `,]`, `]`, 1)
			stripped = strings.Replace(stripped, `,"continue_final_message":true,"add_generation_prompt":false`, "", 1)
			// the separator comma before the message
			if k := strings.LastIndex(cont[:i1], ","); k >= 0 && strings.TrimSpace(cont[k+1:i1]) == "" {
				stripped = cont[:k] + cont[k+1:i1] + cont[i1+len(msg):]
				stripped = strings.Replace(stripped, `,"continue_final_message":true,"add_generation_prompt":false`, "", 1)
			}
			assert.Equal(t, first, stripped, "%s body %d", mode, i)
			var m struct {
				Messages []map[string]any `json:"messages"`
			}
			require.NoError(t, json.Unmarshal(jb[0].Body, &m))
			last := m.Messages[len(m.Messages)-1]
			assert.Equal(t, delivered, last["content"])
		}
	}
}
