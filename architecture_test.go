package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArchitectureListsEveryGoFile keeps ARCHITECTURE.md's file map honest:
// every Go file of the repository is listed, and every listed file exists.
func TestArchitectureListsEveryGoFile(t *testing.T) {
	doc, err := os.ReadFile("ARCHITECTURE.md")
	require.NoError(t, err)
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+\\.go)` \\|").FindAllStringSubmatch(string(doc), -1) {
		listed[m[1]] = true
	}
	require.NotEmpty(t, listed)
	var files []string
	require.NoError(t, filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, filepath.ToSlash(path))
		}
		return nil
	}))
	for _, f := range files {
		assert.True(t, listed[f], "%s is not in ARCHITECTURE.md's file map", f)
		delete(listed, f)
	}
	for f := range listed {
		t.Errorf("ARCHITECTURE.md lists %s, which does not exist", f)
	}
}

// TestNoLongFunctions keeps every function outside cmd/, e2e/ and tools/
// (tests aside) within 60 lines, as ARCHITECTURE.md says: a long function is
// several steps that want names.
func TestNoLongFunctions(t *testing.T) {
	const most = 60
	fset := token.NewFileSet()
	require.NoError(t, filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains([]string{"cmd", "e2e", "tools", "bin", "testdata"}, d.Name())) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok {
				lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				assert.LessOrEqual(t, lines, most, "%s: %s has %d lines", path, fn.Name.Name, lines)
			}
		}
		return nil
	}))
}
