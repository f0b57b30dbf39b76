package caddyworkspaceprofile

import (
	"go/parser"
	"go/token"
	"os/exec"
	"strings"
	"testing"
)

// TestImportGroups holds every Go file of the module to the grouping Go
// teams read fastest: the standard library, then third-party modules, then
// this module, each group a block of its own, in that order. A reader then
// sees at a glance what a file reaches outside the module and what inside.
func TestImportGroups(t *testing.T) {
	const module = "github.com/workspace-edge/caddy-workspace-profile"
	out, err := exec.Command("git", "ls-files", "*.go").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Fields(string(out))
	if len(files) == 0 {
		t.Fatal("git ls-files listed no Go file")
	}
	rank := func(path string) int {
		switch {
		case path == module || strings.HasPrefix(path, module+"/"):
			return 2
		case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
			return 1
		default:
			return 0
		}
	}
	names := [...]string{"standard library", "third-party", "this module"}
	for _, name := range files {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		prevLine, prevRank, groupRank := 0, -1, -1
		for i, spec := range f.Imports {
			path := strings.Trim(spec.Path.Value, `"`)
			line := fset.Position(spec.Pos()).Line
			if spec.Doc != nil {
				line = fset.Position(spec.Doc.Pos()).Line
			}
			r := rank(path)
			newGroup := i == 0 || line > prevLine+1
			switch {
			case newGroup && r <= prevRank:
				t.Errorf("%s:%d: %q (%s) starts a group after a group of %s",
					name, line, path, names[r], names[prevRank])
			case !newGroup && r != groupRank:
				t.Errorf("%s:%d: %q (%s) shares a group with %s imports",
					name, line, path, names[r], names[groupRank])
			}
			if newGroup {
				groupRank = r
			}
			prevLine = fset.Position(spec.End()).Line
			prevRank = r
		}
	}
}
