package gwotel_test

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

// readmeBlocks returns the ```go blocks of a Markdown text that import
// gwotel, with the line of each opening fence.
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
			if code := cur.String(); lang == "go" && strings.Contains(code, `"github.com/gwtransport/gwtransport/gwotel"`) {
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
// of the repository's README.md that imports gwotel, each a whole program,
// against this module and its requirements: the README's OpenTelemetry
// setup cannot rot. (The root module's README check leaves these blocks
// to this test.)
func TestReadmeBlocksCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	text, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	blocks, lines := readmeBlocks(t, string(text))
	if len(blocks) == 0 {
		t.Skip("README.md has no ```go block importing gwotel")
	}
	here, err := os.Getwd()
	require.NoError(t, err)
	root := filepath.Dir(here)
	dir := t.TempDir()
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	var sum []byte
	for _, f := range []string{"go.sum", filepath.Join("..", "go.sum")} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sum = append(sum, b...)
	}
	mod := regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(string(gomod), "module readmecheck")
	mod = regexp.MustCompile(`(?m)^replace .*$`).ReplaceAllString(mod, "")
	mod += fmt.Sprintf("\nrequire github.com/gwtransport/gwtransport/gwotel v0.0.0\n\nreplace github.com/gwtransport/gwtransport => %s\n\nreplace github.com/gwtransport/gwtransport/gwotel => %s\n",
		filepath.ToSlash(root), filepath.ToSlash(here))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	var pkgs []string
	for i, code := range blocks {
		require.True(t, strings.HasPrefix(strings.TrimSpace(code), "package "), "README.md:%d: a block importing gwotel is a whole program", lines[i])
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
	require.NoError(t, err, "a ```go block of README.md importing gwotel does not compile:\n%s", out)
}

// TestReadmeBlocksFound attacks the extraction: only ```go blocks
// importing gwotel are taken, with their lines; an unclosed fence fails.
func TestReadmeBlocksFound(t *testing.T) {
	text := "# x\n```go\nfmt.Println()\n```\n\n```go\npackage main\n\nimport _ \"github.com/gwtransport/gwtransport/gwotel\"\n```\n```sh\n\"github.com/gwtransport/gwtransport/gwotel\"\n```\n"
	blocks, lines := readmeBlocks(t, text)
	require.Equal(t, []string{"package main\n\nimport _ \"github.com/gwtransport/gwtransport/gwotel\"\n"}, blocks)
	require.Equal(t, []int{6}, lines)
}
