package main

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

	"github.com/stretchr/testify/require"
)

// nestedModules are the modules of this repository whose README blocks
// the root module cannot compile (it does not require them); this module
// requires them all, so it compiles those blocks.
var nestedModules = []string{"gwotel", "redisstore"}

// importsNested reports whether a Go block imports one of nestedModules.
func importsNested(code string) bool {
	for _, m := range nestedModules {
		if strings.Contains(code, `"github.com/gwtransport/gwtransport/`+m+`"`) {
			return true
		}
	}
	return false
}

// readmeBlocks returns the ```go blocks of a Markdown text that import a
// nested module (gwotel, redisstore), with the line of each opening fence.
func readmeBlocks(t *testing.T, text string) (blocks []string, lines []int) {
	t.Helper()
	var cur *strings.Builder
	var lang string
	start := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur, lang, start = &strings.Builder{}, strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), n
		case cur != nil && trimmed == "```":
			if code := cur.String(); lang == "go" && importsNested(code) {
				blocks, lines = append(blocks, code), append(lines, start)
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	require.Nil(t, cur, "README.md: a code block is never closed")
	require.NoError(t, sc.Err())
	return blocks, lines
}

// TestReadmeBlocksCompile type-checks (go vet, offline) every ```go block
// of the repository's README.md that imports gwotel or redisstore, each a
// whole program, against this module and its requirements: the README's
// OpenTelemetry and Redis setups cannot rot. (The root module's README
// check leaves these blocks to this test.)
func TestReadmeBlocksCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	blocks, lines := readmeBlocks(t, string(text))
	if len(blocks) == 0 {
		t.Skip("README.md has no ```go block importing gwotel or redisstore")
	}
	here, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Dir(filepath.Dir(here))
	dir := t.TempDir()
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	var sum []byte
	for _, f := range []string{"go.sum", filepath.Join(root, "go.sum"), filepath.Join(root, "gwotel", "go.sum"), filepath.Join(root, "redisstore", "go.sum")} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sum = append(sum, b...)
	}
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module readmecheck")
	// This repository's modules are required and replaced below, once.
	mod = regexp.MustCompile(`(?ms)^replace \(.*?^\)$`).ReplaceAllString(mod, "")
	mod = regexp.MustCompile(`(?m)^replace .*$`).ReplaceAllString(mod, "")
	mod = regexp.MustCompile(`(?m)^\s*(require )?github\.com/gwtransport/gwtransport(/\S+)? v\S+.*$`).ReplaceAllString(mod, "")
	mod += "\nrequire (\n\tgithub.com/gwtransport/gwtransport/gwotel v0.0.0\n\tgithub.com/gwtransport/gwtransport/redisstore v0.0.0\n)\n"
	mod += fmt.Sprintf("\nreplace github.com/gwtransport/gwtransport => %s\n", filepath.ToSlash(root))
	for _, m := range nestedModules {
		mod += fmt.Sprintf("\nreplace github.com/gwtransport/gwtransport/%s => %s\n", m, filepath.ToSlash(filepath.Join(root, m)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	var pkgs []string
	for i, code := range blocks {
		require.True(t, strings.HasPrefix(strings.TrimSpace(code), "package "), "README.md:%d: a block importing gwotel or redisstore is a whole program", lines[i])
		name := fmt.Sprintf("readme_md_line_%d", lines[i])
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "main.go"), []byte(code), 0o644))
		pkgs = append(pkgs, "./"+name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"vet"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "a ```go block of README.md importing gwotel or redisstore does not compile:\n%s", out)
}

// TestReadmeBlocksFound attacks the extraction: only ```go blocks
// importing a nested module are taken, with their lines; an unclosed fence
// fails.
func TestReadmeBlocksFound(t *testing.T) {
	text := "# x\n```go\nfmt.Println()\n```\n\n```go\npackage main\n\nimport _ \"github.com/gwtransport/gwtransport/gwotel\"\n```\n```sh\n\"github.com/gwtransport/gwtransport/gwotel\"\n```\n"
	blocks, lines := readmeBlocks(t, text)
	require.Equal(t, []string{"package main\n\nimport _ \"github.com/gwtransport/gwtransport/gwotel\"\n"}, blocks)
	require.Equal(t, []int{6}, lines)
}
