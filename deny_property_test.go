package gwtransport_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// propProvider is one provider of a random configuration.
type propProvider struct {
	name, basePath, query string
	srv                   int
	auth                  gwtransport.AuthScheme
	conf                  string // its configured header, "" for none
}

// TestDenyByDefaultProperty: random configurations (2 to 5 providers on 1
// to 3 servers, nested and identical base URLs, random auth schemes,
// configured headers and base-URL queries), random caller headers (random
// names and case, credential lookalikes, other providers' configured header
// names, allowlisted names), random clients (http.Client or openai-go with
// a secret query parameter) and random faults forcing fallbacks (503, 401,
// connection resets), every response setting a cookie. For every request
// received by a provider other than the caller's own (computed here by the
// longest-prefix rule): each header is allowlisted with the caller's value,
// or the target's own credential or configured header with its own value,
// or one net/http adds; its query is the target's own. No response handed
// to the caller carries another provider's Set-Cookie. No query string
// appears in any error, attempt, event, header or log line.
// Configurations with identical base URLs that the client provider does
// not disambiguate are refused by Init, and only those.
func TestDenyByDefaultProperty(t *testing.T) {
	const configs, perConfig = 150, 12
	rng := rand.New(rand.NewPCG(2026, 1121))
	bases := []string{"", "/v1", "/v1/x", "/openai", "/api/v1"}
	credLike := []string{"Authorization", "Api-Key", "X-Api-Key", "Cookie", "Proxy-Authorization", "Ocp-Apim-Subscription-Key", "X-Auth-Token", "Dd-Api-Key", "X-Honeycomb-Team", "X-Gateway-Key"}
	allowLike := []string{"Accept", "Accept-Language", "Traceparent", "Tracestate", "X-Stainless-Lang", "X-Stainless-Retry-Count", "Idempotency-Key", "Openai-Beta", "X-Datadog-Trace-Id", "User-Agent", "X-B3-Traceid"}
	randCase := func(s string) string {
		b := []byte(s)
		for i := range b {
			if rng.IntN(3) == 0 {
				if b[i] >= 'a' && b[i] <= 'z' {
					b[i] -= 32
				} else if b[i] >= 'A' && b[i] <= 'Z' {
					b[i] += 32
				}
			}
		}
		return string(b)
	}
	var mu sync.Mutex
	faultRng := rand.New(rand.NewPCG(5, 5))
	respond := func(model string) reply {
		mu.Lock()
		defer mu.Unlock()
		rep := reply{header: map[string]string{"Set-Cookie": "from-" + model + "=1; Path=/"}}
		switch x := faultRng.IntN(20); {
		case x < 7:
			rep.status = 503
		case x < 9:
			rep.status = 401
		case x < 11:
			rep.reset = true
		}
		return rep
	}
	servers := make([]*recServer, 3)
	for i := range servers {
		servers[i] = newRecServer(t, respond)
	}
	seen := make([]int, len(servers)) // requests of each server already checked
	var nonOrigin, own, refused, requests int
	for c := 0; c < configs; c++ {
		n := 2 + rng.IntN(4)
		nSrv := 1 + rng.IntN(3)
		provs := make([]propProvider, n)
		byName := map[string]*propProvider{}
		opts := []gwtransport.Option{noEnv(), seeded(uint64(c)), gwtransport.WithMaxRetries(rng.IntN(2)), gwtransport.WithBackoff(gwtransport.Backoff{}),
			gwtransport.WithCircuitBreaker(gwtransport.Breaker{Disabled: true})}
		for i := range provs {
			p := &provs[i]
			p.name = fmt.Sprintf("p%d", i)
			p.srv = rng.IntN(nSrv)
			p.basePath = bases[rng.IntN(len(bases))]
			p.auth = []gwtransport.AuthScheme{gwtransport.AuthBearer, gwtransport.AuthAPIKey, gwtransport.AuthNone}[rng.IntN(3)]
			if rng.IntN(2) == 0 {
				p.conf = "X-Conf-" + p.name
			}
			if rng.IntN(4) == 0 {
				p.query = "pq=pqsecret-" + p.name
			}
			base := servers[p.srv].URL + p.basePath
			if p.query != "" {
				base += "?" + p.query
			}
			pr := gwtransport.Provider{Name: p.name, BaseURL: base, Auth: p.auth}
			if p.auth != gwtransport.AuthNone {
				pr.APIKey = "key-" + p.name
			}
			if p.conf != "" {
				pr.Headers = map[string]string{p.conf: "conf-" + p.name}
			}
			opts = append(opts, gwtransport.WithProvider(pr))
			byName[p.name] = p
		}
		client := "openai"
		if rng.IntN(3) > 0 {
			client = provs[rng.IntN(n)].name
			opts = append(opts, gwtransport.WithClientProvider(client))
		}
		extended := rng.IntN(2) == 0
		if extended {
			opts = append(opts, gwtransport.WithForwardHeaders("X-Tenant-*"))
		}
		var targets []string
		for _, i := range rng.Perm(n)[:1+rng.IntN(n)] {
			targets = append(targets, provs[i].name+"/m-"+provs[i].name)
		}
		// Identical base URLs must be refused unless the client provider
		// is among them.
		ambiguous := false
		for i := range provs {
			group, hasClient := 0, false
			for j := range provs {
				if provs[j].srv == provs[i].srv && provs[j].basePath == provs[i].basePath {
					group++
					hasClient = hasClient || provs[j].name == client
				}
			}
			ambiguous = ambiguous || (group > 1 && !hasClient)
		}
		logs := &logCapture{}
		var texts []string
		var tmu sync.Mutex
		addText := func(s ...string) {
			tmu.Lock()
			texts = append(texts, s...)
			tmu.Unlock()
		}
		opts = append(opts, gwtransport.WithLogger(logs.logger()), gwtransport.WithOnEvent(func(e gwtransport.Event) {
			if a := e.Attempt; a != nil {
				addText(a.String())
				if a.Err != nil {
					addText(a.Err.Error(), fmt.Sprintf("%+v", a.Err))
				}
			}
		}))
		tr, err := gwtransport.NewTransport(nil, targets, opts...)
		if ambiguous {
			require.Error(t, err, "config %d: %+v client %s", c, provs, client)
			assert.Contains(t, err.Error(), "have the same base URL")
			refused++
			continue
		}
		require.NoError(t, err, "config %d", c)

		// The caller addresses a provider's base URL, or a path no
		// provider's base covers exactly.
		srv, basePath := 0, "/zz"
		if rng.IntN(4) > 0 {
			o := provs[rng.IntN(n)]
			srv, basePath = o.srv, o.basePath
		}
		origin := client
		best, bestPath := -1, ""
		for _, p := range provs {
			if p.srv == srv && (p.basePath == basePath || strings.HasPrefix(basePath, p.basePath+"/")) && len(p.basePath) > best {
				best, bestPath, origin = len(p.basePath), p.basePath, p.name
			}
		}
		for _, p := range provs { // a tie: the client provider wins
			if best >= 0 && p.srv == srv && p.basePath == bestPath && p.name == client {
				origin = client
			}
		}
		callerURL := servers[srv].URL + basePath
		useOpenAI := rng.IntN(2) == 0
		var oc *openai.Client
		hc := &http.Client{Transport: tr}
		if useOpenAI {
			cl := openai.NewClient(option.WithBaseURL(callerURL), option.WithAPIKey("client-key"), option.WithQuery("sig", "qsecret-caller"),
				option.WithHTTPClient(&http.Client{}), option.WithMaxRetries(0))
			oc = &cl
			mustInit(t, oc, targets, opts...)
		}
		for r := 0; r < perConfig; r++ {
			requests++
			caller, callerCanon := http.Header{}, http.Header{}
			for i, k := 0, 3+rng.IntN(5); i < k; i++ {
				var name string
				switch rng.IntN(5) {
				case 0:
					name = credLike[rng.IntN(len(credLike))]
				case 1:
					name = fmt.Sprintf("X-Conf-p%d", rng.IntN(n)) // another provider's configured header
				case 2:
					name = fmt.Sprintf("X-R%d-%d", rng.IntN(1000), rng.IntN(1000))
				case 3:
					name = allowLike[rng.IntN(len(allowLike))]
				default:
					name = fmt.Sprintf("X-Tenant-%d", rng.IntN(10))
				}
				if _, dup := callerCanon[http.CanonicalHeaderKey(name)]; dup {
					continue
				}
				v := []string{fmt.Sprintf("v-%d", rng.IntN(1e6))}
				caller[randCase(name)] = v
				callerCanon[http.CanonicalHeaderKey(name)] = v
			}
			if rng.IntN(5) == 0 {
				caller[gwtransport.HeaderPrefer] = []string{targets[rng.IntN(len(targets))]}
			}
			var resHeader http.Header
			var rerr error
			if useOpenAI {
				var ropts []option.RequestOption
				for k, v := range caller {
					ropts = append(ropts, option.WithHeader(k, v[0]))
				}
				var raw *http.Response
				ctx, trail := gwtransport.ContextWithTrail(context.Background())
				_, rerr = oc.Chat.Completions.New(ctx, chatParams("gateway"), append(ropts, option.WithResponseInto(&raw))...)
				if raw != nil {
					resHeader = raw.Header
				}
				for _, a := range trail.Attempts() {
					addText(a.String())
				}
			} else {
				req, _ := http.NewRequest(http.MethodPost, callerURL+"/chat/completions?sig=qsecret-caller", strings.NewReader(`{"model":"gateway","messages":[]}`))
				for k, v := range caller {
					req.Header[k] = v
				}
				res, err := hc.Do(req)
				rerr = err
				if err == nil {
					resHeader = res.Header
					res.Body.Close()
				}
			}
			if rerr != nil {
				// The caller's own client wraps the error with the caller's
				// own URL (http.Client's *url.Error, openai-go's
				// *openai.Error): that text is not the gateway's. The
				// gateway's is.
				var ge *gwtransport.Error
				if errors.As(rerr, &ge) {
					addText(ge.Error(), fmt.Sprintf("%+v", ge))
					for _, a := range ge.Attempts {
						addText(a.String())
						if a.Err != nil {
							addText(a.Err.Error())
						}
					}
				}
			}
			if resHeader != nil {
				addText(resHeader.Get(gwtransport.HeaderFallbackReason))
				target := resHeader.Get(gwtransport.HeaderTarget)
				if prov, _, ok := strings.Cut(target, "/"); ok && prov != origin {
					assert.Empty(t, resHeader.Values("Set-Cookie"), "config %d: %s's cookie handed to the caller of %s", c, prov, origin)
				}
			}
			// Every request the servers received for this one.
			for si, s := range servers {
				got := s.requests()
				for _, rec := range got[seen[si]:] {
					pname := strings.TrimPrefix(rec.Model, "m-")
					p := byName[pname]
					require.NotNil(t, p, "config %d: unexpected model %q", c, rec.Model)
					if pname == origin {
						// The caller's own provider: the caller's URL.
						assert.Equal(t, srv, si, "config %d: %s's request left the caller's server", c, p.name)
						own++
						continue
					}
					assert.Equal(t, p.srv, si, "config %d: %s's request went to another server", c, p.name)
					nonOrigin++
					assert.Equal(t, p.basePath+"/chat/completions", rec.Path, "config %d", c)
					assert.Equal(t, p.query, rec.Query, "config %d: %s received a query that is not its own", c, p.name)
					for k, vs := range rec.Header {
						switch {
						case k == "Authorization":
							assert.Equal(t, []string{"Bearer key-" + p.name}, vs, "config %d: %s's Authorization", c, p.name)
							assert.Equal(t, gwtransport.AuthBearer, p.auth)
						case k == "Api-Key":
							assert.Equal(t, []string{"key-" + p.name}, vs, "config %d: %s's Api-Key", c, p.name)
							assert.Equal(t, gwtransport.AuthAPIKey, p.auth)
						case p.conf != "" && k == http.CanonicalHeaderKey(p.conf):
							assert.Equal(t, []string{"conf-" + p.name}, vs, "config %d: %s's configured header", c, p.name)
						case allowed(k, extended):
							if useOpenAI {
								if cv, ok := callerCanon[k]; ok {
									assert.Equal(t, cv, vs, "config %d: %s", c, k)
								}
							} else if cv, ok := callerCanon[k]; ok {
								assert.Equal(t, cv, vs, "config %d: %s", c, k)
							} else {
								assert.True(t, k == "User-Agent" || netHTTPHeaders[k], "config %d: %s was never sent by the caller", c, k)
							}
						case netHTTPHeaders[k]:
						default:
							t.Errorf("config %d: %s (origin %s) received the caller's %s: %q", c, p.name, origin, k, vs)
						}
					}
				}
				seen[si] = len(got)
			}
		}
		addText(logs.String())
		tmu.Lock()
		for _, s := range texts {
			if strings.Contains(s, "qsecret") || strings.Contains(s, "pqsecret") {
				t.Errorf("config %d: a query string leaked: %s", c, s)
			}
		}
		tmu.Unlock()
	}
	t.Logf("%d configurations (%d refused as ambiguous), %d requests; %d attempts at the caller's provider, %d at others", configs, refused, requests, own, nonOrigin)
	assert.Greater(t, refused, 0)
	assert.Greater(t, own, 100)
	assert.Greater(t, nonOrigin, 300)
}

// allowed is the test's own statement of the allowlist.
func allowed(k string, extended bool) bool {
	if strings.HasPrefix(k, "X-Stainless-") || (extended && strings.HasPrefix(k, "X-Tenant-")) {
		return true
	}
	for _, a := range gwtransport.DefaultForwardHeaders() {
		if http.CanonicalHeaderKey(a) == k {
			return true
		}
	}
	return false
}
