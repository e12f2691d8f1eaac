// Command config drives Init from a configuration file (gateway.yaml):
// two routes, aliases, a time window, per-model settings, a key pool, all
// against local providers whose URLs and keys come from the environment.
//
//	go run ./examples/config
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

func main() {
	primary := gatewaytest.NewServer(gatewaytest.WithName("primary"), gatewaytest.WithAPIKey("sk-primary"))
	defer primary.Close()
	backup := gatewaytest.NewServer(gatewaytest.WithName("backup"))
	defer backup.Close()
	// What a deployment would set in the environment.
	for k, v := range map[string]string{
		"PRIMARY_BASE_URL": primary.URL, "PRIMARY_API_KEY": "sk-primary",
		"BACKUP_BASE_URL": backup.URL, "BACKUP_KEY_1": "bk-1", "BACKUP_KEY_2": "bk-2",
	} {
		os.Setenv(k, v)
	}

	_, file, _, _ := runtime.Caller(0)
	cfg, err := gwtransport.LoadConfigFile(filepath.Join(filepath.Dir(file), "gateway.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	client := openai.NewClient(option.WithBaseURL(primary.URL), option.WithAPIKey("sk-primary"))
	// The clock says noon (UTC) so the output is the same at any hour: the
	// configuration's night window (23:00-05:00) would otherwise change it.
	mgr, err := gwtransport.Init(&client, gwtransport.FromConfig, gwtransport.WithConfig(cfg), gwtransport.WithClock(noonClock{}))
	if err != nil {
		log.Fatal(err)
	}

	primary.Enqueue(gatewaytest.Fault{Status: 503}, gatewaytest.Fault{Status: 503})
	for _, model := range []string{"gateway", "gateway-cheap", "gateway-cheap", "strong"} {
		var raw *http.Response
		res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}, option.WithResponseInto(&raw))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-14s -> %-22s %q (attempts: %s)\n", model, raw.Header.Get(gwtransport.HeaderTarget), res.Choices[0].Message.Content, raw.Header.Get(gwtransport.HeaderAttempts))
	}
	fmt.Println("\nlive state:")
	for _, s := range mgr.Stats() {
		fmt.Printf("  %-14s %-22s breaker=%-6s attempts=%d failures=%d keys=%d\n", s.Route, s.Target, s.Breaker, s.Attempts, s.Failures, len(s.Keys))
	}
	out, err := cfg.JSON()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\nthe same configuration as JSON (no secrets in it): %d bytes\n", len(out))
}

// noonClock is the real clock moved to today's noon, UTC.
type noonClock struct{}

// Now returns today at 12:00 UTC, plus the time elapsed since the start.
func (noonClock) Now() time.Time {
	n := time.Now().UTC()
	return time.Date(n.Year(), n.Month(), n.Day(), 12, 0, 0, 0, time.UTC).Add(time.Since(start))
}

// Sleep waits for d or until ctx is done.
func (noonClock) Sleep(ctx context.Context, d time.Duration) error {
	return gwtransport.SystemClock.Sleep(ctx, d)
}

var start = time.Now()
