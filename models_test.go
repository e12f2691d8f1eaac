package gwtransport_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwtransport/gwtransport"
)

// TestInitWrongClients: every client Init cannot install into fails with
// an error naming which client, what it is (with its import path, since
// go-openai's package is named openai too) and what to do instead; and a
// failed Init installs nothing, not even into the valid clients before the
// bad one. Wrong types given directly do not compile (see
// TestWrongTypesDoNotCompile); these come through a []any, or are nil.
func TestInitWrongClients(t *testing.T) {
	goClient := goopenai.NewClient("sk-x")
	tests := []struct {
		name    string
		clients func(hc *http.Client) any
		want    string
	}{
		{"empty []any", func(*http.Client) any { return []any{} }, "gwtransport: no client given"},
		{"empty []*http.Client", func(*http.Client) any { return []*http.Client{} }, "gwtransport: no client given"},
		{"nil []*openai.Client", func(*http.Client) any { return []*openai.Client(nil) }, "gwtransport: no client given"},
		{"nil *http.Client", func(*http.Client) any { return (*http.Client)(nil) }, "gwtransport: client 0 is a nil *http.Client"},
		{"nil *openai.Client in a slice", func(*http.Client) any { return []*openai.Client{nil} }, "gwtransport: client 0 is a nil *openai.Client"},
		{"nil in []any", func(hc *http.Client) any { return []any{hc, nil} }, "gwtransport: client 1 is nil"},
		{"openai.Client value", func(*http.Client) any { return []any{openai.NewClient()} },
			"gwtransport: client 0 is an openai.Client value; pass its address (&client) so the gateway can be installed"},
		{"go-openai client", func(hc *http.Client) any { return []any{hc, goClient} },
			"gwtransport: client 1 is a go-openai client, *openai.Client (github.com/sashabaranov/go-openai), which Init cannot install into; " +
				"wrap the *http.Client of its ClientConfig.HTTPClient with gwtransport.NewTransport instead"},
		{"go-openai config", func(*http.Client) any { return []any{goopenai.DefaultConfig("sk-x")} },
			"gwtransport: client 0 is a go-openai client, openai.ClientConfig (github.com/sashabaranov/go-openai), which Init cannot install into; " +
				"wrap the *http.Client of its ClientConfig.HTTPClient with gwtransport.NewTransport instead"},
		{"a transport", func(*http.Client) any { return []any{http.DefaultTransport} },
			"gwtransport: client 0 has unsupported type *http.Transport (net/http); want *http.Client or *openai.Client (github.com/openai/openai-go/v3); " +
				"wrap the *http.Client of other clients with gwtransport.NewTransport"},
		{"an int", func(*http.Client) any { return []any{42} },
			"gwtransport: client 0 has unsupported type int; want *http.Client or *openai.Client (github.com/openai/openai-go/v3); " +
				"wrap the *http.Client of other clients with gwtransport.NewTransport"},
		{"an http.Client value", func(*http.Client) any { return []any{http.Client{}} },
			"gwtransport: client 0 has unsupported type http.Client (net/http); want *http.Client or *openai.Client (github.com/openai/openai-go/v3); " +
				"wrap the *http.Client of other clients with gwtransport.NewTransport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc := &http.Client{}
			models := []string{"openai/gpt-4o"}
			var m *gwtransport.Installation
			var err error
			switch c := tc.clients(hc).(type) {
			case []any:
				m, err = gwtransport.Init(c, models, noEnv())
			case []*http.Client:
				m, err = gwtransport.Init(c, models, noEnv())
			case []*openai.Client:
				m, err = gwtransport.Init(c, models, noEnv())
			case *http.Client:
				m, err = gwtransport.Init(c, models, noEnv())
			default:
				t.Fatalf("no Init call for %T", c)
			}
			require.EqualError(t, err, tc.want)
			assert.Nil(t, m)
			assert.Nil(t, hc.Transport, "a failed Init installs nothing, not even into the valid clients")
		})
	}
}

// TestModelsValues: the values of the right types that still cannot be
// routed fail with exact errors, from Init, NewTransport, Reconfigure and
// WithRoute alike.
func TestModelsValues(t *testing.T) {
	tests := []struct {
		name   string
		models any // []string, map[string]float64 or nil (FromConfig)
		want   string
	}{
		{"FromConfig without WithConfig", nil, "gwtransport: no models: FromConfig takes them from WithConfig, which gave none (and no route was added)"},
		{"nil list", []string(nil), "gwtransport: at least one model is required"},
		{"empty list", []string{}, "gwtransport: at least one model is required"},
		{"empty weights", map[string]float64{}, "gwtransport: at least one model is required"},
		{"all weights zero", map[string]float64{"openai/a": 0}, "gwtransport: at least one weight must be positive"},
		{"negative weight", map[string]float64{"openai/a": -1}, `gwtransport: weight of "openai/a" must be a finite non-negative number, got -1`},
		{"no provider", []string{"gpt-4o"}, `gwtransport: model "gpt-4o" must have the form <provider>/<model>`},
		{"twice", []string{"openai/a", "openai/a"}, `gwtransport: model "openai/a" is listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := initAny([]any{&http.Client{}}, tc.models, noEnv())
			assert.EqualError(t, err, tc.want, "Init")
			_, err = newTransportAny(tc.models, noEnv())
			assert.EqualError(t, err, tc.want, "NewTransport")
			tr, err := gwtransport.NewTransport(nil, []string{"openai/ok"}, noEnv())
			require.NoError(t, err)
			switch m := tc.models.(type) {
			case []string:
				err = gwtransport.Reconfigure(tr, m, noEnv())
			case map[string]float64:
				err = gwtransport.Reconfigure(tr, m, noEnv())
			default:
				err = gwtransport.Reconfigure(tr, gwtransport.FromConfig, noEnv())
			}
			assert.EqualError(t, err, tc.want, "Reconfigure")
			if tc.models != nil {
				var route gwtransport.Option
				switch m := tc.models.(type) {
				case []string:
					route = gwtransport.WithRoute("cheap", m)
				case map[string]float64:
					route = gwtransport.WithRoute("cheap", m)
				}
				_, err = gwtransport.NewTransport(nil, []string{"openai/ok"}, noEnv(), route)
				require.Error(t, err, "WithRoute")
				assert.Contains(t, err.Error(), strings.TrimPrefix(tc.want, "gwtransport: "), "WithRoute")
			}
		})
	}
}

// Named types of the two model forms are Models too.
type (
	priority []string
	weights  map[string]float64
)

// TestModelsForms: every form Models admits routes as the plain one does:
// named types of []string and map[string]float64 (converted, not
// rejected), and FromConfig with WithConfig or with WithRoute alone.
func TestModelsForms(t *testing.T) {
	a, b := server(t, "a", ""), server(t, "b", "")
	provs := []gwtransport.Option{noEnv(),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pa", BaseURL: a.URL, Auth: gwtransport.AuthNone}),
		gwtransport.WithProvider(gwtransport.Provider{Name: "pb", BaseURL: b.URL, Auth: gwtransport.AuthNone})}
	send := func(t *testing.T, tr *gwtransport.Transport, model string) string {
		t.Helper()
		res, err := (&http.Client{Transport: tr}).Post(a.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		return res.Header.Get(gwtransport.HeaderTarget)
	}

	t.Run("named list", func(t *testing.T) {
		tr, err := gwtransport.NewTransport(nil, priority{"pb/m", "pa/m"}, provs...)
		require.NoError(t, err)
		assert.Equal(t, "pb/m", send(t, tr, "gateway"))
		require.NoError(t, gwtransport.Reconfigure(tr, priority{"pa/m"}, provs...))
		assert.Equal(t, "pa/m", send(t, tr, "gateway"))
	})
	t.Run("named weights", func(t *testing.T) {
		m, err := gwtransport.Init(&http.Client{}, weights{"pb/m": 1, "pa/m": 0}, provs...)
		require.NoError(t, err)
		t.Cleanup(m.Uninstall)
		assert.Equal(t, []string{"pa/m", "pb/m"}, m.Models("gateway"), "weights sorted by name")
		tr, err := gwtransport.NewTransport(nil, weights{"pb/m": 1, "pa/m": 0}, provs...)
		require.NoError(t, err)
		for i := 0; i < 5; i++ {
			assert.Equal(t, "pb/m", send(t, tr, "gateway"), "a weight of 0 is never used")
		}
	})
	t.Run("named route", func(t *testing.T) {
		tr, err := gwtransport.NewTransport(nil, []string{"pa/m"}, append(provs, gwtransport.WithRoute("cheap", priority{"pb/m"}))...)
		require.NoError(t, err)
		assert.Equal(t, "pa/m", send(t, tr, "gateway"))
		assert.Equal(t, "pb/m", send(t, tr, "cheap"))
	})
	t.Run("FromConfig with routes only", func(t *testing.T) {
		tr, err := gwtransport.NewTransport(nil, gwtransport.FromConfig, append(provs, gwtransport.WithRoute("cheap", weights{"pb/m": 1}))...)
		require.NoError(t, err)
		assert.Equal(t, "pb/m", send(t, tr, "cheap"))
		res, err := (&http.Client{Transport: tr}).Post(a.URL+"/chat/completions", "application/json", strings.NewReader(`{"model":"gateway","messages":[]}`))
		require.NoError(t, err)
		res.Body.Close()
		assert.Empty(t, res.Header.Get(gwtransport.HeaderTarget), "no default route: \"gateway\" passes through")
	})
	t.Run("FromConfig is no route's models", func(t *testing.T) {
		_, err := gwtransport.NewTransport(nil, []string{"pa/m"}, append(provs, gwtransport.WithRoute("cheap", gwtransport.FromConfig))...)
		assert.EqualError(t, err, `gwtransport: route "cheap": FromConfig stands for Init's models, not a route's; give the route its own`)
	})
	t.Run("FromConfig with WithConfig", func(t *testing.T) {
		cfg, err := gwtransport.LoadConfig([]byte("providers:\n  - {name: pa, base_url: " + a.URL + ", auth: none}\n  - {name: pb, base_url: " + b.URL + ", auth: none}\n" +
			"models:\n  - target: pb/m\n  - target: pa/m\n"))
		require.NoError(t, err)
		m, err := gwtransport.Init([]*http.Client{{}, {}}, gwtransport.FromConfig, append(provs, gwtransport.WithConfig(cfg))...)
		require.NoError(t, err)
		t.Cleanup(m.Uninstall)
		assert.Equal(t, []string{"pb/m", "pa/m"}, m.Models("gateway"))
	})
}

// compileCase is a program that must not compile, and what the compiler
// must say about it.
type compileCase struct {
	name, body, want string
}

// TestWrongTypesDoNotCompile type-checks small programs against this module
// (offline, as TestReadmeGoBlocksCompile does): each wrong models or
// clients type, and nil models, is a compile error saying so; the control
// program, every accepted form, compiles (so the harness itself is not what
// fails).
func TestWrongTypesDoNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	cases := []compileCase{
		{"int_slice", `_, _ = gwtransport.Init(hc, []int{1})`, `[]int does not satisfy gwtransport.Models`},
		{"one_string", `_, _ = gwtransport.Init(hc, "openai/gpt-4o")`, `string does not satisfy gwtransport.Models`},
		{"int_weights", `_, _ = gwtransport.NewTransport(nil, map[string]int{"openai/a": 1})`, `map[string]int does not satisfy gwtransport.Models`},
		{"any_list", `_ = gwtransport.WithRoute("cheap", []any{"openai/a"})`, `[]any does not satisfy gwtransport.Models`},
		{"reconfigure_int", `tr, _ := gwtransport.NewTransport(nil, []string{"openai/a"}); _ = gwtransport.Reconfigure(tr, 42)`, `int does not satisfy gwtransport.Models`},
		{"models_in_any", `var m any = []string{"openai/a"}; _, _ = gwtransport.Init(hc, m)`, `any does not satisfy gwtransport.Models`},
		{"nil_models", `_, _ = gwtransport.Init(hc, nil)`, `cannot infer M`},
		{"go_openai", `_, _ = gwtransport.Init(goopenai.NewClient("k"), []string{"openai/a"})`, `*"github.com/sashabaranov/go-openai".Client does not satisfy gwtransport.Clients`},
		{"openai_value", `c := openai.NewClient(); _, _ = gwtransport.Init(c, []string{"openai/a"})`, `"github.com/openai/openai-go/v3".Client does not satisfy gwtransport.Clients`},
		{"transport", `_, _ = gwtransport.Init(http.DefaultTransport, []string{"openai/a"})`, `http.RoundTripper does not satisfy gwtransport.Clients`},
	}
	control := `type names []string
	c := openai.NewClient()
	_, _ = gwtransport.Init(&c, []string{"openai/a"})
	_, _ = gwtransport.Init(hc, map[string]float64{"openai/a": 1})
	_, _ = gwtransport.Init([]*http.Client{hc}, names{"openai/a"})
	_, _ = gwtransport.Init([]*openai.Client{&c}, gwtransport.FromConfig)
	_, _ = gwtransport.Init([]any{hc, &c}, []string{"openai/a"}, gwtransport.WithRoute("r", map[string]float64{"openai/b": 1}))
	tr, _ := gwtransport.NewTransport(nil, []string{"openai/a"})
	_ = gwtransport.Reconfigure(tr, gwtransport.FromConfig)
	_ = goopenai.DefaultConfig`
	out, err := buildPrograms(t, append(cases, compileCase{name: "control", body: control}))
	require.Error(t, err, "the wrong programs must not compile:\n%s", out)
	for _, tc := range cases {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta("bad_"+tc.name+"/main.go:") + `\d+:\d+: .*` + regexp.QuoteMeta(tc.want))
		assert.Regexp(t, re, out, "%s: the compiler must say %q", tc.name, tc.want)
	}
	assert.NotContains(t, out, "bad_control", "every accepted form compiles")
	// One package per case: each fails on its own, none hides another.
	var failed []string
	for _, m := range regexp.MustCompile(`(?m)^# .*/(bad_\w+)$`).FindAllStringSubmatch(out, -1) {
		failed = append(failed, m[1])
	}
	sort.Strings(failed)
	var want []string
	for _, tc := range cases {
		want = append(want, "bad_"+tc.name)
	}
	sort.Strings(want)
	assert.Equal(t, want, failed)
}

// buildPrograms writes each case as a package of a module that requires
// this repository and runs go build on them all.
func buildPrograms(t *testing.T, cases []compileCase) (string, error) {
	t.Helper()
	repo, err := os.Getwd()
	require.NoError(t, err)
	dir := t.TempDir()
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	gosum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module typecheck")
	mod += "\nrequire github.com/gwtransport/gwtransport v0.0.0\n\nreplace github.com/gwtransport/gwtransport => " + filepath.ToSlash(repo) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644))
	for _, tc := range cases {
		pkg := "bad_" + tc.name
		src := fmt.Sprintf(`package %s

import (
	"net/http"

	"github.com/openai/openai-go/v3"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/gwtransport/gwtransport"
)

var (
	_ = openai.NewClient
	_ = goopenai.NewClient
)

func _(hc *http.Client) {
	%s
}
`, pkg, tc.body)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, pkg), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, pkg, "main.go"), []byte(src), 0o644))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	// Paths relative to the module: "bad_x/main.go:3:4: ...".
	return strings.ReplaceAll(string(out), "./", ""), err
}
