package gwtransport_test

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"net/http"

	"github.com/gwtransport/gwtransport"
)

// Azure OpenAI opens a stream with a prompt-filter chunk whose "id" is ""
// (choices [], prompt_filter_results), then chunks with the real id. The
// splice takes the first chunk's id ("") for every continuation chunk, so
// openai-go's ChatCompletionAccumulator (which takes the first non-empty id)
// rejects the continuation: "the caller reads one whole answer".
func TestRV3AzureEmptyFirstIDBreaksAccumulatorAfterSplice(t *testing.T) {
	aScript := "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\n" +
		"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
	bScript := "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":2,\"model\":\"m2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	a := newRV2Server(t, aScript)
	b := newRV2Server(t, bScript)
	tr := rv2Transport(t, a, b)
	oc := openai.NewClient(option.WithBaseURL(a.URL), option.WithAPIKey("ka"), option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
	st := oc.Chat.Completions.NewStreaming(context.Background(), chatParams("gateway"))
	acc := openai.ChatCompletionAccumulator{}
	var ids []string
	rejected := 0
	for st.Next() {
		ch := st.Current()
		ids = append(ids, ch.ID)
		if !acc.AddChunk(ch) {
			rejected++
		}
	}
	require.NoError(t, st.Err())
	require.Len(t, b.reqs(), 1, "a continuation was spliced")
	t.Logf("chunk ids: %q", ids)
	assert.Equal(t, 0, rejected, "the accumulator rejected spliced chunks (ids %q)", ids)
	require.Len(t, acc.Choices, 1)
	assert.Equal(t, "Hello", acc.Choices[0].Message.Content)
	_ = gwtransport.ErrStreamTruncated
}
