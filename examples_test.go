package gwtransport_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateExamples = flag.Bool("update-examples", false, "rewrite testdata/examples/*.txt from the examples' output")

// localPort is a port of a local server in an error text: it changes from
// run to run, nothing else in the examples' output may.
var localPort = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// TestExamplesRunOfflineAndDeterministically builds every program under
// examples/, runs each (they start their own gatewaytest providers: no
// network, no key), and compares its whole output with
// testdata/examples/<name>.txt. So every example keeps compiling, keeps
// printing which target served and in how many attempts, and prints the
// same on every run (examples/weighted is seeded). An example without a
// golden file fails the test. Run with -update-examples to rewrite them.
func TestExamplesRunOfflineAndDeterministically(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every example")
	}
	dirs, err := filepath.Glob("examples/*/main.go")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(filepath.Dir(d)))
	}
	sort.Strings(names)

	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+string(filepath.Separator), "./examples/...")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./examples/...: %s", out)

	golden, err := filepath.Glob("testdata/examples/*.txt")
	require.NoError(t, err)
	var goldenNames []string
	for _, g := range golden {
		goldenNames = append(goldenNames, filepath.Base(g[:len(g)-len(".txt")]))
	}
	sort.Strings(goldenNames)
	if !*updateExamples {
		require.Equal(t, names, goldenNames, "one testdata/examples/<name>.txt per example (go test -run TestExamples -update-examples . writes them)")
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			exe := filepath.Join(bin, name)
			if runtime.GOOS == "windows" {
				exe += ".exe"
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = hermeticEnv()
			got, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s failed:\n%s", name, got)
			got = localPort.ReplaceAll(got, []byte("127.0.0.1:PORT"))
			file := filepath.Join("testdata", "examples", name+".txt")
			if *updateExamples {
				require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
				require.NoError(t, os.WriteFile(file, got, 0o644))
				return
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
			assert.Regexp(t, `(served|->) `, string(got), "names the target that served")
			assert.Regexp(t, `attempt`, string(got), "says in how many attempts")
		})
	}
}

// hermeticEnv is the environment without any provider key or endpoint, so
// the examples run as on a fresh machine.
func hermeticEnv() []string {
	var env []string
	keep := regexp.MustCompile(`^(PATH|HOME|TMPDIR|TMP|TEMP|SYSTEMROOT|GO[A-Z0-9_]*)=`)
	for _, kv := range os.Environ() {
		if keep.MatchString(kv) {
			env = append(env, kv)
		}
	}
	return env
}
