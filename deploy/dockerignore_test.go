package deploy

import (
	"bufio"
	"bytes"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerignoreKeepsSources checks that the build context keeps every
// file the build needs and leaves out .git.
func TestDockerignoreKeepsSources(t *testing.T) {
	var patterns []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ".dockerignore")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf(".dockerignore: exceptions (%q) are not understood by this test", l)
			}
			patterns = append(patterns, strings.TrimPrefix(path.Clean(l), "/"))
		}
	}
	ignored := func(p string) bool {
		for _, pat := range patterns {
			for q := p; q != "." && q != "/"; q = path.Dir(q) {
				if ok, _ := path.Match(pat, q); ok {
					return true
				}
				if rest, ok := strings.CutPrefix(pat, "**/"); ok {
					parts := strings.Split(q, "/")
					for i := range parts {
						if ok, _ := path.Match(rest, strings.Join(parts[i:], "/")); ok {
							return true
						}
					}
				}
			}
		}
		return false
	}
	if !ignored(".git") {
		t.Error(".dockerignore does not leave out .git")
	}
	n := 0
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
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
