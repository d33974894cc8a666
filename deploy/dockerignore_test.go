package deploy

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerignoreKeepsSources checks that the build context keeps every
// file the build needs and leaves out .git. The file is read and matched
// with moby/patternmatcher, the code docker and BuildKit use for
// .dockerignore, so ** and !exceptions mean here what they mean there.
func TestDockerignoreKeepsSources(t *testing.T) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	ignored := func(p string) bool {
		ok, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatalf(".dockerignore on %s: %v", p, err)
		}
		return ok
	}
	if !ignored(".git") {
		t.Error(".dockerignore does not leave out .git")
	}
	n := 0
	err = filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "go.mod" || rel == "go.sum" || strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			n++
			if ignored(rel) {
				t.Errorf(".dockerignore leaves out %s, which the build needs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d Go files under %s", n, repoRoot)
	}
}
