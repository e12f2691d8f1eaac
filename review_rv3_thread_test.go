package gwtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// A [DONE] inside a "thread.*" event does not complete a stream for the
// gateway (dispatch clears it), yet doneSeen is set by its line: go-openai
// stops at that line with "Hel" (no finish_reason), closes, and the stream
// counts as a success. "A caller's close or cancel before completion records
// nothing."
func TestRV3ThreadDoneCountsSuccessOnClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n")
		io.WriteString(w, "event: thread.message.delta\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	a := &rv2Server{Server: srv}
	b := newRV2Server(t, "unused")
	tr := rv2Transport(t, a, b, gwtransport.WithContinuation(false))
	text, err := goopenaiStreamAsk(context.Background(), goopenaiAt(a.URL, "ka", tr), "Hi")
	require.NoError(t, err)
	assert.Equal(t, "Hel", text)
	assert.Equal(t, [3]int64{1, 0, 0}, rv2Stats(tr)["pa/m1"], "not complete for the gateway: no verdict")
}
