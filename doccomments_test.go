package gwtransport_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// undocumented parses the non-test Go files of dir and returns every
// exported identifier without a doc comment: package-level funcs, methods
// of exported types, types, consts and vars (a comment on the group counts
// for a grouped const or var), exported fields of exported struct types
// (named or embedded), and exported methods of exported interfaces. It also
// reports a package without a package comment.
func undocumented(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var missing []string
	pkgDoc := false
	pos := func(n ast.Node) string {
		p := fset.Position(n.Pos())
		return filepath.ToSlash(filepath.Join(dir, filepath.Base(p.Filename))) + ":" + itoa(p.Line)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		require.NoError(t, err)
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package ") {
			pkgDoc = true
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv != nil && !exportedRecv(d.Recv) {
					continue
				}
				if d.Doc == nil {
					missing = append(missing, pos(d)+": func "+funcName(d))
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if s.Doc == nil && d.Doc == nil {
							missing = append(missing, pos(s)+": type "+s.Name.Name)
						}
						missing = append(missing, undocumentedMembers(s, pos)...)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && s.Doc == nil && d.Doc == nil && s.Comment == nil {
								missing = append(missing, pos(n)+": "+d.Tok.String()+" "+n.Name)
							}
						}
					}
				}
			}
		}
	}
	if !pkgDoc {
		missing = append(missing, dir+": no package comment")
	}
	sort.Strings(missing)
	return missing
}

// undocumentedMembers returns the exported fields of an exported struct
// type and the exported methods of an exported interface that have no
// comment (a doc comment above, or a line comment after).
func undocumentedMembers(s *ast.TypeSpec, pos func(ast.Node) string) []string {
	var list *ast.FieldList
	kind := "field"
	switch tt := s.Type.(type) {
	case *ast.StructType:
		list = tt.Fields
	case *ast.InterfaceType:
		list, kind = tt.Methods, "method"
	default:
		return nil
	}
	var missing []string
	for _, f := range list.List {
		documented := f.Doc != nil || f.Comment != nil
		names := f.Names
		if len(names) == 0 { // embedded
			if id := embeddedName(f.Type); id != nil {
				names = []*ast.Ident{id}
			}
		}
		for _, n := range names {
			if n.IsExported() && !documented {
				missing = append(missing, pos(n)+": "+kind+" "+s.Name.Name+"."+n.Name)
			}
		}
	}
	return missing
}

func embeddedName(e ast.Expr) *ast.Ident {
	switch e := e.(type) {
	case *ast.Ident:
		return e
	case *ast.StarExpr:
		return embeddedName(e.X)
	case *ast.SelectorExpr:
		return e.Sel
	case *ast.IndexExpr:
		return embeddedName(e.X)
	}
	return nil
}

func exportedRecv(r *ast.FieldList) bool {
	if len(r.List) == 0 {
		return false
	}
	id := embeddedName(r.List[0].Type)
	return id != nil && id.IsExported()
}

func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	if id := embeddedName(d.Recv.List[0].Type); id != nil {
		return id.Name + "." + d.Name.Name
	}
	return d.Name.Name
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestEveryExportedIdentifierIsDocumented fails on any exported identifier
// or exported struct field of the root package and gatewaytest without a
// doc comment, and on a package without a package comment, naming each by
// file and line: the documentation cannot rot.
func TestEveryExportedIdentifierIsDocumented(t *testing.T) {
	for _, dir := range []string{".", "gatewaytest", "gwotel"} {
		assert.Empty(t, undocumented(t, dir), "exported identifiers without a doc comment in %s", dir)
	}
}

// TestUndocumentedFindsWhatIsMissing attacks the checker itself: a file
// with one undocumented identifier of each kind is reported in full, and
// its documented twin is not.
func TestUndocumentedFindsWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	bad := `package p

func F() {}

type T struct {
	A int
	b int
	C, D string
	*Embedded
}

type Embedded struct{}

func (T) M() {}

func (t *T) N() {}

type I interface {
	Do()
}

const K = 1

var (
	V = 2
)
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.go"), []byte(bad), 0o644))
	var got []string
	pkgComment := false
	for _, m := range undocumented(t, dir) {
		if strings.HasSuffix(m, ": no package comment") {
			pkgComment = true
			continue
		}
		got = append(got, m[strings.Index(m, "p.go:"):])
	}
	assert.True(t, pkgComment, "a package without a package comment is reported")
	assert.ElementsMatch(t, []string{
		"p.go:3: func F", "p.go:5: type T", "p.go:6: field T.A", "p.go:8: field T.C", "p.go:8: field T.D",
		"p.go:9: field T.Embedded", "p.go:12: type Embedded", "p.go:14: func T.M", "p.go:16: func T.N",
		"p.go:18: type I", "p.go:19: method I.Do", "p.go:22: const K", "p.go:25: var V",
	}, got)

	good := `// Package p is documented.
package p

// F is documented.
func F() {}

// T is documented.
type T struct {
	// A is documented.
	A int
	b int
	C, D string // C and D are documented.
	// Embedded is documented.
	*Embedded
}

// Embedded is documented.
type Embedded struct{}

// M is documented.
func (T) M() {}

// I is documented.
type I interface {
	// Do is documented.
	Do()
}

// K is documented.
const K = 1

// The vars are documented as a group.
var (
	V = 2
)
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.go"), []byte(good), 0o644))
	assert.Empty(t, undocumented(t, dir))
}
