package gwtransport_test

// Installing, reconfiguring and uninstalling while requests run, on every
// client kind: race-free, the latest Init wins, an older Installation never
// removes a newer installation.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// configOf is configuration number i: the route "gateway" to the single
// target "p/m<i>" on the upstream u.
func configOf(u *upstream, i int, extra ...gwtransport.Option) (models []string, opts []gwtransport.Option) {
	opts = append([]gwtransport.Option{noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "p", BaseURL: u.srv.URL + "/v1", APIKey: "key-p"})}, extra...)
	return []string{fmt.Sprintf("p/m%d", i)}, opts
}

// clientKind sends a chat request through one kind of client and returns
// the target that served it ("" when the gateway passed it through) and
// the text.
type clientKind struct {
	name string
	// client makes a client addressed at own; init is what Init and
	// Uninstall take (nil for a client only NewTransport wraps);
	// transport is its Transport, for Reconfigure (nil for openai-go).
	make func(t *testing.T, own *upstream, u *upstream) (send func(model string) (string, string, error), init any, transport *gwtransport.Transport)
}

func httpSend(hc *http.Client, own *upstream) func(model string) (string, string, error) {
	return func(model string) (string, string, error) {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, model)
		res, err := hc.Post(own.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return "", "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return "", "", err
		}
		if res.StatusCode != http.StatusOK {
			return "", "", fmt.Errorf("status %d: %s", res.StatusCode, b)
		}
		var out openai.ChatCompletion
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) == 0 {
			return "", "", fmt.Errorf("not a completion: %s", b)
		}
		return res.Header.Get(gwtransport.HeaderTarget), out.Choices[0].Message.Content, nil
	}
}

var clientKinds = []clientKind{
	{
		name: "http.Client",
		make: func(t *testing.T, own, u *upstream) (func(string) (string, string, error), any, *gwtransport.Transport) {
			hc := &http.Client{}
			mustInit(t, hc, []string{"p/m0"}, configOpts(u)...)
			return httpSend(hc, own), hc, hc.Transport.(*gwtransport.Transport)
		},
	},
	{
		name: "openai-go",
		make: func(t *testing.T, own, u *upstream) (func(string) (string, string, error), any, *gwtransport.Transport) {
			c := openai.NewClient(option.WithBaseURL(own.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
			mustInit(t, &c, []string{"p/m0"}, configOpts(u)...)
			send := func(model string) (string, string, error) {
				var raw *http.Response
				res, err := c.Chat.Completions.New(context.Background(), chatParams(model), option.WithResponseInto(&raw))
				if err != nil {
					return "", "", err
				}
				return raw.Header.Get(gwtransport.HeaderTarget), res.Choices[0].Message.Content, nil
			}
			return send, &c, nil
		},
	},
	{
		name: "NewTransport",
		make: func(t *testing.T, own, u *upstream) (func(string) (string, string, error), any, *gwtransport.Transport) {
			tr, err := gwtransport.NewTransport(nil, []string{"p/m0"}, configOpts(u)...)
			require.NoError(t, err)
			hc := &http.Client{Transport: tr}
			return httpSend(hc, own), hc, tr
		},
	},
}

func configOpts(u *upstream) []gwtransport.Option {
	_, opts := configOf(u, 0)
	return opts
}

// TestInstallRaceUnderLoad: requests (routed and passed through) run on
// every client kind while Init, Uninstall and Reconfigure loop; every
// request succeeds, served by a configuration that existed, and after the
// final Init its configuration serves. Run with -race.
func TestInstallRaceUnderLoad(t *testing.T) {
	for _, k := range clientKinds {
		t.Run(k.name, func(t *testing.T) {
			own := newUpstream(t, "own", modeOK)
			u := newUpstream(t, "u", modeOK)
			send, client, tr := k.make(t, own, u)

			const senders, perSender, configs = 6, 40, 4
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var loops atomic.Int64
			// The configuration loop: Init by new managers, Uninstall by
			// older or newer ones, Reconfigure.
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(1, 2))
				var mgrs []*gwtransport.Installation
				for i := 0; ; i++ {
					select {
					case <-stop:
						for _, m := range mgrs {
							m.Uninstall()
						}
						return
					default:
					}
					loops.Add(1)
					models, opts := configOf(u, 1+r.IntN(configs))
					switch op := r.IntN(3); {
					case op == 0:
						m, err := gwtransport.Init([]any{client}, models, opts...)
						if !assert.NoError(t, err) {
							return
						}
						mgrs = append(mgrs, m)
					case op == 1 && len(mgrs) > 0:
						mgrs[r.IntN(len(mgrs))].Uninstall()
					case tr != nil:
						if !assert.NoError(t, gwtransport.Reconfigure(tr, models, opts...)) {
							return
						}
					}
				}
			}()
			var served sync.Map
			var swg sync.WaitGroup
			for i := 0; i < senders; i++ {
				swg.Add(1)
				go func(i int) {
					defer swg.Done()
					for j := 0; j < perSender; j++ {
						model := "gateway"
						if (i+j)%3 == 0 {
							model = "gpt-4o" // passed through
						}
						target, text, err := send(model)
						if !assert.NoError(t, err) {
							return
						}
						if model != "gateway" {
							assert.Empty(t, target, "a pass-through request is never routed")
							assert.Equal(t, "Hello from own", text)
							continue
						}
						served.Store(target, true)
						if target == "" {
							assert.Equal(t, "Hello from own", text, "uninstalled: passed through")
						} else {
							assert.Regexp(t, `^p/m[0-4]$`, target)
							assert.Equal(t, "Hello from u", text)
						}
					}
				}(i)
			}
			swg.Wait()
			close(stop)
			wg.Wait()
			var kinds []string
			served.Range(func(k, _ any) bool { kinds = append(kinds, fmt.Sprintf("%q", k)); return true })
			t.Logf("%d configuration changes during the requests; gateway requests served by %v", loops.Load(), kinds)

			// The latest Init's configuration serves.
			models, opts := configOf(u, 9)
			mustInit(t, []any{client}, models, opts...)
			target, text, err := send("gateway")
			require.NoError(t, err)
			assert.Equal(t, "p/m9", target)
			assert.Equal(t, "Hello from u", text)
		})
	}
}

// TestInstallOwnership is a model-based test of installation: random
// sequences of Init (a new manager each), Uninstall (by any manager, old or
// new) and Reconfigure, checked after each step against a model: the
// latest Init serves until its own manager uninstalls it; an older
// manager's Uninstall changes nothing; Uninstall restores the client's own
// configuration (pass-through, or a NewTransport's).
func TestInstallOwnership(t *testing.T) {
	for _, k := range clientKinds {
		t.Run(k.name, func(t *testing.T) {
			own := newUpstream(t, "own", modeOK)
			u := newUpstream(t, "u", modeOK)
			send, client, tr := k.make(t, own, u)
			// The client as made: installed with configuration 0 by a
			// manager the test does not hold, or a NewTransport's own.
			type model struct {
				own     int // -1: pass-through
				owner   int // -1: none
				current int
			}
			m := model{own: -1, owner: -2, current: 0} // -2: the make's manager
			if k.name == "NewTransport" {
				m = model{own: 0, owner: -1, current: 0}
			}
			var mgrs []*gwtransport.Installation
			r := rand.New(rand.NewPCG(7, 11))
			for step := 0; step < 150; step++ {
				cfg := 1 + r.IntN(5)
				var did string
				switch op := r.IntN(4); {
				case op == 0 || len(mgrs) == 0:
					models, opts := configOf(u, cfg)
					mgr, err := gwtransport.Init([]any{client}, models, opts...)
					require.NoError(t, err)
					mgrs = append(mgrs, mgr)
					m.owner, m.current = len(mgrs)-1, cfg
					did = fmt.Sprintf("Init#%d(m%d)", len(mgrs)-1, cfg)
				case op == 1 || op == 2:
					i := r.IntN(len(mgrs))
					mgrs[i].Uninstall()
					if m.owner == i {
						m.owner, m.current = -1, m.own
					}
					did = fmt.Sprintf("Uninstall#%d", i)
				case tr != nil:
					models, opts := configOf(u, cfg)
					require.NoError(t, gwtransport.Reconfigure(tr, models, opts...))
					if m.owner == -1 {
						m.own = cfg
					}
					m.current = cfg
					did = fmt.Sprintf("Reconfigure(m%d)", cfg)
				default:
					continue
				}
				target, _, err := send("gateway")
				require.NoError(t, err, "step %d: %s", step, did)
				want := ""
				if m.current >= 0 {
					want = fmt.Sprintf("p/m%d", m.current)
				}
				require.Equal(t, want, target, "step %d: %s (model %+v)", step, did, m)
			}
		})
	}
}

// TestOlderManagerUninstall: the plain case, spelled out.
func TestOlderManagerUninstall(t *testing.T) {
	for _, k := range clientKinds[:2] {
		t.Run(k.name, func(t *testing.T) {
			own := newUpstream(t, "own", modeOK)
			u := newUpstream(t, "u", modeOK)
			send, client, _ := k.make(t, own, u)
			models, opts := configOf(u, 1)
			m1, err := gwtransport.Init([]any{client}, models, opts...)
			require.NoError(t, err)
			models, opts = configOf(u, 2)
			m2, err := gwtransport.Init([]any{client}, models, opts...)
			require.NoError(t, err)

			m1.Uninstall()
			target, _, err := send("gateway")
			require.NoError(t, err)
			assert.Equal(t, "p/m2", target, "the older manager does not remove the newer installation")

			m2.Uninstall()
			target, text, err := send("gateway")
			require.NoError(t, err)
			assert.Empty(t, target)
			assert.Equal(t, "Hello from own", text, "uninstalled: passed through")

			models, opts = configOf(u, 3)
			mustInit(t, []any{client}, models, opts...)
			target, _, err = send("gateway")
			require.NoError(t, err)
			assert.Equal(t, "p/m3", target, "a later Init reactivates")
		})
	}
}

// countingTransport counts the requests it sends and the calls to
// CloseIdleConnections.
type countingTransport struct {
	base   http.RoundTripper
	n      atomic.Int64
	closes atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func (c *countingTransport) CloseIdleConnections() { c.closes.Add(1) }

// TestSecondInitBaseTransport: the latest Init's WithBaseTransport sends
// an openai-go client's cross-host attempts.
func TestSecondInitBaseTransport(t *testing.T) {
	own := newUpstream(t, "own", modeOK)
	u := newUpstream(t, "u", modeOK)
	c := openai.NewClient(option.WithBaseURL(own.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
	rt1 := &countingTransport{base: http.DefaultTransport}
	rt2 := &countingTransport{base: http.DefaultTransport}
	for i, rt := range []*countingTransport{rt1, rt2} {
		models, opts := configOf(u, i+1, gwtransport.WithBaseTransport(rt))
		mustInit(t, &c, models, opts...)
		_, err := c.Chat.Completions.New(context.Background(), chatParams("gateway"))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), rt1.n.Load())
	assert.Equal(t, int64(1), rt2.n.Load(), "the second Init's base transport")
	assert.Equal(t, 2, u.count())
	assert.Zero(t, own.count())
}

// TestCloseIdleConnectionsForwarded: http.Client.CloseIdleConnections
// reaches the transport under the gateway.
func TestCloseIdleConnectionsForwarded(t *testing.T) {
	base := &countingTransport{base: http.DefaultTransport}
	tr, err := gwtransport.NewTransport(base, []string{"openai/gpt-4o"}, noEnv())
	require.NoError(t, err)
	(&http.Client{Transport: tr}).CloseIdleConnections()
	assert.Equal(t, int64(1), base.closes.Load())

	base2 := &countingTransport{base: http.DefaultTransport}
	hc := &http.Client{Transport: base2}
	m := mustInit(t, hc, []string{"openai/gpt-4o"}, noEnv())
	hc.CloseIdleConnections()
	assert.Equal(t, int64(1), base2.closes.Load())
	m.Uninstall()
	hc.CloseIdleConnections()
	assert.Equal(t, int64(2), base2.closes.Load(), "uninstalled too")

	var zero gwtransport.Transport
	c, ok := any(&zero).(interface{ CloseIdleConnections() })
	require.True(t, ok)
	c.CloseIdleConnections() // http.DefaultTransport's: no panic
}

// TestInflightKeepsItsConfiguration: a request in flight when Uninstall or
// a new Init happens finishes with the configuration it started with.
func TestInflightKeepsItsConfiguration(t *testing.T) {
	own := newUpstream(t, "own", modeOK)
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := newUpstream(t, "slow", modeOK)
	gate := &gatedTransport{base: http.DefaultTransport, release: release, arrived: arrived}
	c := openai.NewClient(option.WithBaseURL(own.srv.URL+"/v1"), option.WithAPIKey("key-own"), option.WithHTTPClient(&http.Client{}))
	models, opts := configOf(slow, 1, gwtransport.WithBaseTransport(gate))
	m := mustInit(t, &c, models, opts...)

	done := make(chan error, 1)
	var raw *http.Response
	go func() {
		_, err := c.Chat.Completions.New(context.Background(), chatParams("gateway"), option.WithResponseInto(&raw))
		done <- err
	}()
	<-arrived
	m.Uninstall()
	models, opts = configOf(own, 2)
	mustInit(t, &c, models, opts...)
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, "p/m1", raw.Header.Get(gwtransport.HeaderTarget))
	assert.Equal(t, 1, slow.count())
}

// gatedTransport holds each request until release is closed.
type gatedTransport struct {
	base    http.RoundTripper
	release chan struct{}
	arrived chan struct{}
}

func (g *gatedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-time.After(10 * time.Second):
	}
	return g.base.RoundTrip(r)
}
