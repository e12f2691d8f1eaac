package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport/gatewaytest"
)

// TestReviewReloadUnderLoad: streams and plain requests in flight while
// the file flips between a valid and an invalid version on SIGHUP: every
// request completes (200, streams to [DONE]); an invalid file never takes.
func TestReviewReloadUnderLoad(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "  shutdown_timeout: 2s\n")
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	p := startProxy(t, "", proxyOpts{env: env, path: path})
	script := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	a.SetFault(&gatewaytest.Fault{Script: script, ScriptPause: 20 * time.Millisecond})
	b.SetFault(&gatewaytest.Fault{Script: script, ScriptPause: 20 * time.Millisecond})
	stop := make(chan struct{})
	var hups sync.WaitGroup
	hups.Add(1)
	go func() {
		defer hups.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := cfg
			if i%2 == 1 {
				c = "{broken"
			}
			_ = os.WriteFile(path, []byte(c), 0o600)
			p.sigs <- syscall.SIGHUP
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 15; i++ {
				req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
				req.Header.Set("Authorization", "Bearer "+keyAll)
				res, err := c.Do(req)
				if err != nil {
					errs <- err.Error()
					continue
				}
				got, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 || !strings.Contains(string(got), "[DONE]") {
					errs <- fmt.Sprintf("%d %v %q", res.StatusCode, err, got)
				}
			}
			c.CloseIdleConnections()
		}()
	}
	wg.Wait()
	close(stop)
	hups.Wait()
	close(errs)
	var all []string
	for e := range errs {
		all = append(all, e)
	}
	assert.Empty(t, all)
	a.SetFault(nil)
	b.SetFault(nil)
}
