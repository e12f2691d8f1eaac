package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
	"github.com/gwtransport/gwtransport/gatewaytest"
)

// errorBody is an OpenAI-shaped error body as gwproxy writes it.
type errorBody struct {
	Error struct {
		Message  string        `json:"message"`
		Type     string        `json:"type"`
		Code     any           `json:"code"`
		Param    any           `json:"param"`
		Attempts []attemptJSON `json:"attempts"`
	} `json:"error"`
}

func decodeError(t *testing.T, b []byte) errorBody {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal(b, &e), "body %s", b)
	require.NotEmpty(t, e.Error.Message, "body %s", b)
	return e
}

// noProxyKeyAt asserts no request a provider received carried a proxy key
// in any header, in any of the forms a client may send it.
func noProxyKeyAt(t *testing.T, srvs ...*gatewaytest.Server) {
	t.Helper()
	var forms []string
	for _, k := range []string{keyAll, keySmall, "wrong-key"} {
		forms = append(forms, k, "Bearer "+k, gatewaytest.Mask(k), gatewaytest.Mask("Bearer "+k))
	}
	for _, s := range srvs {
		for _, r := range s.Journal() {
			for name, vs := range r.Header {
				for _, v := range vs {
					for _, f := range forms {
						assert.NotContains(t, v, f, "header %s at the provider carries a proxy key", name)
					}
				}
			}
			assert.NotContains(t, string(r.Body), keyAll)
		}
	}
}

// TestAuthentication: a request without a valid proxy key gets 401 and
// reaches no provider; a valid key in each header form is served, and no
// form of it reaches the provider, which gets its own configured key.
func TestAuthentication(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	body := fmt.Sprintf(chatBody, "gateway")
	for _, tc := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"none", nil, 401},
		{"wrong bearer", []string{"Authorization", "Bearer wrong-key"}, 401},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401},
		{"basic scheme", []string{"Authorization", "Basic " + keyAll}, 401},
		{"raw key without scheme", []string{"Authorization", keyAll}, 401},
		{"key prefix", []string{"Authorization", "Bearer " + keyAll[:len(keyAll)-1]}, 401},
		{"key with suffix", []string{"Authorization", "Bearer " + keyAll + "x"}, 401},
		{"wrong api-key", []string{"Api-Key", "wrong-key"}, 401},
		{"wrong x-api-key", []string{"X-Api-Key", "wrong-key"}, 401},
		{"bearer", []string{"Authorization", "Bearer " + keyAll}, 200},
		{"bearer lower case", []string{"Authorization", "bearer " + keyAll}, 200},
		{"api-key", []string{"Api-Key", keyAll}, 200},
		{"x-api-key", []string{"X-Api-Key", keyAll}, 200},
		{"env key", []string{"Authorization", "Bearer " + keySmall}, 403}, // valid, but not for "gateway"
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			res, rb := p.do("POST", "/v1/chat/completions", "", body, tc.hdr...)
			require.Equal(t, tc.status, res.StatusCode, "%s", rb)
			if tc.status != 200 {
				e := decodeError(t, rb)
				assert.NotContains(t, string(rb), keyAll)
				assert.Equal(t, 0, a.Count()+b.Count(), "a refused request reached a provider")
				if tc.status == 401 {
					assert.Equal(t, "invalid_api_key", e.Error.Code)
				}
				return
			}
			require.Equal(t, 1, a.Count())
			j := a.Journal()[0]
			assert.Equal(t, gatewaytest.Mask("Bearer key-a"), j.Header.Get("Authorization"), "the provider gets its own key")
			assert.Empty(t, j.Header.Values("Api-Key"))
			assert.Empty(t, j.Header.Values("X-Api-Key"))
			noProxyKeyAt(t, a, b)
		})
	}
	fams := p.metrics()
	v, _ := metricValue(fams, "gwproxy_auth_failures_total", map[string]string{"reason": "invalid"})
	assert.Equal(t, 5.0, v)
	v, _ = metricValue(fams, "gwproxy_auth_failures_total", map[string]string{"reason": "missing"})
	assert.Equal(t, 4.0, v) // none, empty, another scheme, no scheme
	v, _ = metricValue(fams, "gwproxy_auth_failures_total", map[string]string{"reason": "route"})
	assert.Equal(t, 1.0, v)
}

// TestRouteLimits: a key limited to some routes is refused every name of
// the others (route, target, alias) with 403 before any provider, and its
// model list shows only its routes' names.
func TestRouteLimits(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		key, model string
		status     int
	}{
		{keySmall, "gateway", 403},
		{keySmall, "a/m1", 403},
		{keySmall, "second", 403}, // alias of b/m2 in route gateway: served by gateway
		{keySmall, "small", 200},
		{keySmall, "b/m2", 403}, // b/m2's first route is gateway
		{keyAll, "small", 200},
		{keyAll, "gateway", 200},
	} {
		t.Run(tc.key[:8]+"/"+tc.model, func(t *testing.T) {
			a.Reset()
			b.Reset()
			res, rb := p.do("POST", "/v1/chat/completions", tc.key, fmt.Sprintf(chatBody, tc.model))
			require.Equal(t, tc.status, res.StatusCode, "%s", rb)
			if tc.status == 403 {
				assert.Equal(t, "model_not_allowed", decodeError(t, rb).Error.Code)
				assert.Equal(t, 0, a.Count()+b.Count())
			}
		})
	}
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{keySmall, []string{"small"}},
		{keyAll, []string{"gateway", "small", "a/m1", "b/m2", "second"}},
	} {
		res, rb := p.do("GET", "/v1/models", tc.key, "")
		require.Equal(t, 200, res.StatusCode)
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID     string `json:"id"`
				Object string `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(rb, &list))
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
			assert.Equal(t, "model", m.Object)
		}
		assert.Equal(t, "list", list.Object)
		assert.Equal(t, tc.want, ids)
	}
	res, _ := p.do("GET", "/v1/models", "", "")
	assert.Equal(t, 401, res.StatusCode)
	a.Reset()
	b.Reset()
	for _, tc := range []struct {
		key, id string
		status  int
	}{
		{keyAll, "a/m1", 200},
		{keyAll, "second", 200},
		{keySmall, "small", 200},
		{keySmall, "gateway", 404}, // not the key's: as if it did not exist
		{keyAll, "nope", 404},
		{"", "gateway", 401},
	} {
		res, rb := p.do("GET", "/v1/models/"+tc.id, tc.key, "")
		require.Equal(t, tc.status, res.StatusCode, "%s %s", tc.id, rb)
		if tc.status == 200 {
			var m struct{ ID, Object string }
			require.NoError(t, json.Unmarshal(rb, &m))
			assert.Equal(t, tc.id, m.ID)
			assert.Equal(t, "model", m.Object)
		} else {
			decodeError(t, rb)
		}
	}
	assert.Equal(t, 0, a.Count()+b.Count())
}

// TestUnknownModelNeverForwarded: a body naming no route, target or alias
// (or no string model at all) is answered by the proxy and reaches no
// provider; the engine's pass-through is guarded too.
func TestUnknownModelNeverForwarded(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		body   string
		status int
		code   any
	}{
		{fmt.Sprintf(chatBody, "gpt-4o"), 404, "model_not_found"},
		{fmt.Sprintf(chatBody, "a/m2"), 404, "model_not_found"},
		{fmt.Sprintf(chatBody, "A/M1"), 404, "model_not_found"},
		{fmt.Sprintf(chatBody, "gateway "), 404, "model_not_found"},
		{fmt.Sprintf(chatBody, "b"), 404, "model_not_found"},
		{`{"model":["gateway"]}`, 400, nil},
		{`{"model":null}`, 400, nil},
		{`{"messages":[]}`, 400, nil},
		{`{"model":"gateway"`, 400, nil},
		{`not json`, 400, nil},
		{``, 400, nil},
	} {
		t.Run(tc.body, func(t *testing.T) {
			res, rb := p.do("POST", "/v1/chat/completions", keyAll, tc.body)
			require.Equal(t, tc.status, res.StatusCode, "%s", rb)
			e := decodeError(t, rb)
			assert.Equal(t, tc.code, e.Error.Code)
		})
	}
	for _, path := range []string{"/v1/images/generations", "/v1/audio/speech", "/v2/chat/completions", "/v1/chat/completions/x"} {
		res, rb := p.do("POST", path, keyAll, fmt.Sprintf(chatBody, "gateway"))
		assert.Equal(t, 404, res.StatusCode, path)
		decodeError(t, rb)
	}
	res, rb := p.do("GET", "/v1/chat/completions", keyAll, "")
	assert.Equal(t, 405, res.StatusCode)
	decodeError(t, rb)
	assert.Equal(t, 0, a.Count()+b.Count(), "an unknown model reached a provider")

	// The guard under the engine refuses what no route took.
	req, _ := http.NewRequest("POST", originBase+"/chat/completions", strings.NewReader(`{"model":"x"}`))
	_, err := guard{next: http.DefaultTransport}.RoundTrip(req)
	assert.ErrorIs(t, err, errPassThrough)
}

// TestOperationsAndDirectTargets: every operation is served through the
// engine; a client naming a target or alias directly is served by that
// target first, then the rest of its route.
func TestOperationsAndDirectTargets(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		path, model, body string
		faultA            *gatewaytest.Fault
		wantTarget        string
		wantA, wantB      int
		wantPath          string
	}{
		{"/v1/chat/completions", "gateway", chatBody, nil, "a/m1", 1, 0, "/v1/chat/completions"},
		{"/v1/completions", "gateway", `{"model":%q,"prompt":"hi"}`, nil, "a/m1", 1, 0, "/v1/completions"},
		{"/v1/embeddings", "gateway", `{"model":%q,"input":"hi"}`, nil, "a/m1", 1, 0, "/v1/embeddings"},
		{"/v1/responses", "gateway", `{"model":%q,"input":"hi"}`, nil, "a/m1", 1, 0, "/v1/responses"},
		{"/v1/chat/completions", "b/m2", chatBody, nil, "b/m2", 0, 1, "/v1/chat/completions"},
		{"/v1/chat/completions", "second", chatBody, nil, "b/m2", 0, 1, "/v1/chat/completions"},
		{"/v1/chat/completions", "a/m1", chatBody, &gatewaytest.Fault{Status: 503}, "b/m2", 1, 1, "/v1/chat/completions"},
		{"/v1/chat/completions", "small", chatBody, nil, "b/m2", 0, 1, "/v1/chat/completions"},
	} {
		t.Run(tc.path+"/"+tc.model, func(t *testing.T) {
			a.Reset()
			b.Reset()
			if tc.faultA != nil {
				a.Enqueue(*tc.faultA)
			}
			res, rb := p.do("POST", tc.path, keyAll, fmt.Sprintf(tc.body, tc.model))
			require.Equal(t, 200, res.StatusCode, "%s", rb)
			assert.Equal(t, tc.wantTarget, res.Header.Get(gwtransport.HeaderTarget))
			assert.Equal(t, tc.wantA, a.Count())
			assert.Equal(t, tc.wantB, b.Count())
			for _, j := range append(a.Journal(), b.Journal()...) {
				assert.Equal(t, tc.wantPath, j.Path)
				assert.Contains(t, []string{"m1", "m2"}, j.Model, "the provider gets the target's model")
			}
			noProxyKeyAt(t, a, b)
		})
	}
}

// TestFinalFailureShape: when every target fails, the client gets the last
// provider's status and an OpenAI-shaped body naming every attempt; no
// answer at all is a 502 naming them too.
func TestFinalFailureShape(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		name         string
		fa, fb       gatewaytest.Fault
		status       int
		wantStatuses []int
		wantType     string
	}{
		{"503 then 500", gatewaytest.Fault{Status: 503}, gatewaytest.Fault{Status: 500, Message: "b broke", Type: "server_error"}, 500, []int{503, 500}, "server_error"},
		// The engine hands back the availability failure, not the
		// fallback's refusal that would hide it.
		{"429 then 400", gatewaytest.Fault{Status: 429, Message: "slow down", Type: "rate_limit_error", Code: "rate_limited"}, gatewaytest.Fault{Status: 400, Message: "bad", Type: "invalid_request_error", Code: "bad_thing"}, 429, []int{429, 400}, "rate_limit_error"},
		{"500 then 404", gatewaytest.Fault{Status: 500}, gatewaytest.Fault{Status: 404, Message: "no such model", Type: "invalid_request_error", Code: "model_not_found"}, 500, []int{500, 404}, "server_error"},
		{"reset then reset", gatewaytest.Fault{Reset: true}, gatewaytest.Fault{Reset: true}, 502, []int{0, 0}, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			a.Enqueue(tc.fa)
			b.Enqueue(tc.fb)
			res, rb := p.do("POST", "/v1/chat/completions", keyAll, fmt.Sprintf(chatBody, "gateway"))
			require.Equal(t, tc.status, res.StatusCode, "%s", rb)
			assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
			e := decodeError(t, rb)
			assert.Equal(t, tc.wantType, e.Error.Type)
			require.Len(t, e.Error.Attempts, 2)
			for i, target := range []string{"a/m1", "b/m2"} {
				assert.Equal(t, target, e.Error.Attempts[i].Target)
				assert.Equal(t, tc.wantStatuses[i], e.Error.Attempts[i].Status)
				assert.Contains(t, e.Error.Message, target)
			}
			// The provider's own message and code, of the response handed back.
			f := tc.fb
			if tc.status == tc.wantStatuses[0] {
				f = tc.fa
			}
			if f.Message != "" {
				assert.Contains(t, e.Error.Message, f.Message)
			}
			if f.Code != "" {
				assert.Equal(t, f.Code, e.Error.Code)
			}
			assert.NotContains(t, string(rb), "key-a")
			assert.NotContains(t, string(rb), "key-b")
		})
	}
}

// TestBrokenStreamIsNotACleanEnd: a committed stream that breaks reaches
// the client as the events so far, an SSE error event, and then a broken
// connection: reading the body fails, it never ends cleanly.
func TestBrokenStreamIsNotACleanEnd(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "")
	p := startProxy(t, cfg, proxyOpts{env: env})
	for _, tc := range []struct {
		name  string
		fault gatewaytest.Fault
	}{
		{"cut", gatewaytest.Fault{CutAfter: 2}},
		{"in-band error", gatewaytest.Fault{Script: "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":\"boom\"}}\n\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.Reset()
			b.Reset()
			a.Enqueue(tc.fault)
			req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
			req.Header.Set("Authorization", "Bearer "+keyAll)
			req.Header.Set("Content-Type", "application/json")
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			res, err := c.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, 200, res.StatusCode)
			got, err := io.ReadAll(res.Body)
			require.Error(t, err, "the body ended cleanly: %s", got)
			assert.NotErrorIs(t, err, io.EOF)
			s := string(got)
			i := strings.Index(s, "event: error\ndata: ")
			require.GreaterOrEqual(t, i, 0, "no error event in %q", s)
			assert.Contains(t, s[:i], "data: {", "the events before the break are delivered")
			line := strings.SplitN(s[i+len("event: error\ndata: "):], "\n", 2)[0]
			e := decodeError(t, []byte(line))
			require.NotEmpty(t, e.Error.Attempts)
			assert.Equal(t, "a/m1", e.Error.Attempts[0].Target)
			assert.NotContains(t, s, "[DONE]")
			assert.Equal(t, 0, b.Count(), "a committed stream is not retried elsewhere")
		})
	}
}

// TestStreamFlushedEventByEvent: the client gets each event while the
// provider is still holding the next one.
func TestStreamFlushedEventByEvent(t *testing.T) {
	release := make(chan struct{})
	prov := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"first\"},\"finish_reason\":null}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"second\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	})
	srv := newHTTPServer(t, prov)
	cfg := fmt.Sprintf("proxy:\n  keys:\n    - name: all\n      hash: sha256:%x\nmodels:\n  - target: p/m\nproviders:\n  - name: p\n    base_url: %s/v1\n    key_optional: true\n", hashKey(keyAll), srv)
	p := startProxy(t, cfg, proxyOpts{})
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(streamBody, "gateway")))
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	assert.Equal(t, "no", res.Header.Get("X-Accel-Buffering"))
	br := bufio.NewReader(res.Body)
	got := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		assert.Contains(t, l, `"first"`)
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the first event did not arrive while the provider held the second")
	}
	close(release)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Contains(t, string(rest), `"second"`)
	assert.Contains(t, string(rest), "[DONE]")
}

// newHTTPServer serves h on 127.0.0.1 until the test ends and returns its
// URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestLimits: a body over the limit gets 413 and reaches no provider; a
// client that trickles its headers, or its body, is cut.
func TestLimits(t *testing.T) {
	a, b, cfg, env := twoProviders(t, "  max_body_bytes: 1024\n  read_header_timeout: 200ms\n  read_timeout: 300ms\n  idle_timeout: 300ms\n")
	p := startProxy(t, cfg, proxyOpts{env: env})

	big := fmt.Sprintf(`{"model":"gateway","messages":[{"role":"user","content":%q}]}`, strings.Repeat("x", 2000))
	res, rb := p.do("POST", "/v1/chat/completions", keyAll, big)
	assert.Equal(t, 413, res.StatusCode)
	decodeError(t, rb)
	small := fmt.Sprintf(chatBody, "gateway")
	res, _ = p.do("POST", "/v1/chat/completions", keyAll, small)
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, 1, a.Count()+b.Count())

	t.Run("slow headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer conn.Close()
		start := time.Now()
		_, err = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		// One header byte every 20ms: never done before the 200ms limit.
		var werr error
		for i := 0; i < 250 && werr == nil; i++ {
			_, werr = conn.Write([]byte("X"))
			time.Sleep(20 * time.Millisecond)
			if time.Since(start) > 2*time.Second {
				break
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 512)
		n, rerr := conn.Read(buf)
		for rerr == nil {
			var m int
			m, rerr = conn.Read(buf[n:])
			n += m
		}
		var ne net.Error
		if assert.Error(t, rerr) {
			assert.False(t, asTimeout(rerr, &ne), "the server did not cut the connection: %v", rerr)
		}
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", keyAll, len(small))
		for i := 0; i < len(small) && time.Since(start) < 2*time.Second; i++ {
			if _, err := conn.Write([]byte{small[i]}); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			assert.Equal(t, 408, res.StatusCode)
			res.Body.Close()
		}
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = br.ReadByte()
		require.Error(t, err)
		var ne net.Error
		assert.False(t, asTimeout(err, &ne), "the idle connection was not closed: %v", err)
		assert.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("huge headers", func(t *testing.T) {
		res, _ := p.do("POST", "/v1/chat/completions", keyAll, small, "X-Big", strings.Repeat("x", 100<<10))
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
	})
	assert.Equal(t, 1, a.Count()+b.Count(), "a cut request reached a provider")
}

func asTimeout(err error, ne *net.Error) bool {
	if e, ok := err.(net.Error); ok {
		*ne = e
		return e.Timeout()
	}
	return false
}

// TestOutgoingHeader: of the caller's headers, only the allowlisted ones
// are handed to the engine: no credential, in any spelling, nor any other
// header, whatever its name.
func TestOutgoingHeader(t *testing.T) {
	in := http.Header{}
	for _, h := range []string{"Authorization", "authorization", "Api-Key", "api-key", "X-Api-Key", "x-api-key", "Cookie",
		"Proxy-Authorization", "X-Forwarded-For", "Openai-Organization", "Openai-Project", "X-Stainless-Os", "Host", "Traceparent"} {
		in[h] = []string{"Bearer " + keyAll}
	}
	in.Set("Accept", "text/event-stream")
	in.Set("Openai-Beta", "assistants=v2")
	in.Set(gwtransport.HeaderPrefer, "b/m2")
	// Random names besides: none gets through.
	for i := 0; i < 200; i++ {
		in.Set(fmt.Sprintf("X-Random-%d-%x", i, i*7919), keyAll)
	}
	out := outgoingHeader(in)
	assert.Equal(t, http.Header{
		"Accept":                 {"text/event-stream"},
		"Openai-Beta":            {"assistants=v2"},
		"Content-Type":           {"application/json"},
		gwtransport.HeaderPrefer: {"b/m2"},
	}, out)
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8", ""} {
		in.Set("Content-Type", ct)
		assert.Equal(t, "application/json", outgoingHeader(in).Get("Content-Type"))
	}
}
