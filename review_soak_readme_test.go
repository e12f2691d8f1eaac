package gwtransport_test

import (
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestReviewRecommendedSnippetUninstall runs the README's recommended
// configuration literally (only the base URL points at a local server),
// then Uninstall: the "gateway" request must pass through untouched.
func TestReviewRecommendedSnippetUninstall(t *testing.T) {
	p := server(t, "primary", "key-p")
	t.Setenv("OPENAI_API_KEY", "key-p")
	client := openai.NewClient(option.WithBaseURL(p.URL))
	mgr, err := gwtransport.Init(&client,
		[]string{"openai/gpt-4o", "mistral/mistral-large-latest"},
		gwtransport.WithModelContinuation(map[string]gwtransport.Continuation{
			"mistral/mistral-large-latest": gwtransport.ContinuePrefix,
		}),
	)
	require.NoError(t, err)
	res, _, err := chat(t, &client, "gateway")
	require.NoError(t, err)
	require.Equal(t, "gpt-4o", p.Journal()[0].Model, res.Model)
	mgr.Uninstall()
	_, _, _ = chat(t, &client, "gateway")
	j := p.Journal()
	require.Len(t, j, 2)
	require.Equal(t, "gateway", j[1].Model, "after Uninstall the request passes through untouched")
}
