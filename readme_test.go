package gwtransport_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// codeBlock is one fenced block of a Markdown file.
type codeBlock struct {
	lang string
	line int // line of the opening fence, from 1
	code string
}

// fencedBlocks returns the fenced code blocks of a Markdown text, in order.
// An unclosed fence is an error: the rest of the file would be code.
func fencedBlocks(text string) ([]codeBlock, error) {
	var out []codeBlock
	var cur *codeBlock
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &codeBlock{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: n}
			body.Reset()
		case cur != nil && trimmed == "```":
			cur.code = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: code block never closed", cur.line)
	}
	return out, sc.Err()
}

// readmeImports are the imports a README fragment may use without writing
// them (imports are per file, so each fragment's file has them all).
const readmeImports = `package readme

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/gwtransport/gwtransport"
)

var (
	_ = fmt.Sprint
	_ = log.Println
	_ = time.Second
	_ = option.WithAPIKey
	_ = context.Background
	_ = gwtransport.FromConfig
	_ = openai.NewClient
	_ http.Client
)
`

// readmeVars are the variables the README's prose talks about (a context,
// an openai-go client, chat parameters, an http.Client): a fragment may use
// them without declaring them, and one declaring them with := shadows them.
const readmeVars = readmeImports + `
var (
	ctx    = context.Background()
	client = openai.NewClient()
	params openai.ChatCompletionNewParams
	hc     = &http.Client{}
)
`

// TestReadmeGoBlocksCompile type-checks (go vet) every ```go block of
// README.md against this module, offline: a whole program (a block starting
// with "package") as its own package, any other block as the body of a
// function in a package that imports what the README uses (see
// readmeImports and readmeVars). Unused variables, wrong signatures, renamed identifiers:
// the README cannot rot. Blocks that are deliberately not Go must be fenced
// with another language.
func TestReadmeGoBlocksCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	text, err := os.ReadFile("README.md")
	require.NoError(t, err)
	blocks, err := fencedBlocks(string(text))
	require.NoError(t, err)
	var goBlocks []codeBlock
	for _, b := range blocks {
		assert.NotEmpty(t, b.lang, "README.md:%d: a fenced block names its language (```go, ```sh, ```text)", b.line)
		if b.lang == "go" && !strings.Contains(b.code, `"github.com/gwtransport/gwtransport/gwotel"`) &&
			!strings.Contains(b.code, `"github.com/gwtransport/gwtransport/redisstore"`) {
			// (A block importing gwotel or redisstore is compiled by
			// cmd/gwproxy's TestReadmeBlocksCompile, whose module
			// requires both.)
			goBlocks = append(goBlocks, b)
		}
	}
	require.NotEmpty(t, goBlocks)

	repo, err := os.Getwd()
	require.NoError(t, err)
	dir := t.TempDir()
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	gosum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	// The module's own requirements, so nothing is resolved anew, and
	// this repository as gwtransport.
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module readmecheck")
	mod += "\nrequire github.com/gwtransport/gwtransport v0.0.0\n\nreplace github.com/gwtransport/gwtransport => " + filepath.ToSlash(repo) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), gosum, 0o644))

	var pkgs []string
	frag := filepath.Join(dir, "readme")
	require.NoError(t, os.MkdirAll(frag, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(frag, "prelude.go"), []byte(readmeVars), 0o644))
	pkgs = append(pkgs, "./readme")
	for _, b := range goBlocks {
		name := fmt.Sprintf("readme_md_line_%d", b.line)
		if strings.HasPrefix(strings.TrimSpace(b.code), "package ") {
			sub := filepath.Join(dir, name)
			require.NoError(t, os.MkdirAll(sub, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(sub, "main.go"), []byte(b.code), 0o644))
			pkgs = append(pkgs, "./"+name)
			continue
		}
		// A //line directive makes the errors point into README.md.
		src := fmt.Sprintf("%s\nfunc _() {\n//line README.md:%d\n%s}\n", readmeImports, b.line+1, b.code)
		require.NoError(t, os.WriteFile(filepath.Join(frag, name+".go"), []byte(src), 0o644))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"vet"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "a ```go block of README.md does not compile:\n%s", out)
}

// TestReadmeCheckCatchesBrokenBlocks attacks the extraction: an unclosed
// fence is an error, and blocks come back with their language and line.
func TestReadmeCheckCatchesBrokenBlocks(t *testing.T) {
	blocks, err := fencedBlocks("text\n```go\nx := 1\n```\n\n```sh\ngo test\n```\n")
	require.NoError(t, err)
	assert.Equal(t, []codeBlock{{lang: "go", line: 2, code: "x := 1\n"}, {lang: "sh", line: 6, code: "go test\n"}}, blocks)
	_, err = fencedBlocks("```go\nx := 1\n")
	assert.EqualError(t, err, "line 1: code block never closed")
}
