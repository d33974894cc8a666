package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// installHint is appended to every "binaries not found" error: the demo
// command runs on fresh machines, where the fix is one command away.
const installHint = "install the PostgreSQL server with: apt-get install -y postgresql (Debian/Ubuntu)"

// defaultVersionedRoots are glob patterns of per-version binary directories.
// Debian/Ubuntu keeps the real server binaries there, off PATH; the RHEL
// PGDG layout is included so the same code works on those machines.
var defaultVersionedRoots = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
}

// binFinder locates the directory holding initdb and postgres. Its fields
// exist so tests can point the search at fake trees; production code uses
// newBinFinder.
type binFinder struct {
	// roots are glob patterns whose single "*" is a major version.
	roots []string
	// path is the PATH-style list searched when no root matches.
	path string
}

func newBinFinder() binFinder {
	return binFinder{roots: defaultVersionedRoots, path: os.Getenv("PATH")}
}

// FindBinDir returns the directory holding the real initdb and postgres
// binaries: the highest-version /usr/lib/postgresql/*/bin (or
// /usr/pgsql-*/bin) that has both, else a PATH directory whose postgres is
// a real binary (symlinks are followed so that sibling tools like pgbench
// are found too). Debian's wrapper scripts on PATH are skipped because they
// are not the server and cannot be run with a custom data directory.
func FindBinDir() (string, error) {
	return newBinFinder().find()
}

func (f binFinder) find() (string, error) {
	var searched []string
	for _, pattern := range f.roots {
		searched = append(searched, pattern)
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return "", fmt.Errorf("localpg: bad search pattern %q: %w", pattern, err)
		}
		sortByVersionDesc(pattern, matches)
		for _, dir := range matches {
			if isServerBinDir(dir) {
				return dir, nil
			}
		}
	}

	pathDirs := filepath.SplitList(f.path)
	for _, dir := range pathDirs {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // a relative PATH entry depends on the cwd: never trust it
		}
		pg := filepath.Join(dir, "postgres")
		if !localsrv.IsRealExecutable(pg) {
			continue
		}
		// Follow symlinks such as /usr/local/bin/postgres ->
		// /usr/lib/postgresql/15/bin/postgres: the real directory also holds
		// pgbench, psql, ... which BinPath callers need.
		if resolved, err := filepath.EvalSymlinks(pg); err == nil {
			if real := filepath.Dir(resolved); isServerBinDir(real) {
				return real, nil
			}
		}
		if isServerBinDir(dir) {
			return dir, nil
		}
	}
	pathDesc := "PATH (empty)"
	if len(pathDirs) > 0 {
		pathDesc = "PATH (" + strings.Join(pathDirs, ":") + ")"
	}
	searched = append(searched, pathDesc)
	return "", fmt.Errorf("localpg: no PostgreSQL server binaries found: looked for a real \"initdb\" next to a real \"postgres\" in %s; %s",
		strings.Join(searched, ", "), installHint)
}

// isServerBinDir reports whether dir holds both server programs as real
// executables.
func isServerBinDir(dir string) bool {
	return localsrv.IsRealExecutable(filepath.Join(dir, "initdb")) && localsrv.IsRealExecutable(filepath.Join(dir, "postgres"))
}

// sortByVersionDesc orders directories matched by pattern by the numeric
// version found where the pattern's "*" is, highest first, so that a
// machine with 15 and 16 installed uses 16 (and "9.6" sorts below "10").
func sortByVersionDesc(pattern string, dirs []string) {
	prefix, suffix, _ := strings.Cut(pattern, "*")
	version := func(dir string) []int {
		v := strings.TrimSuffix(strings.TrimPrefix(dir, prefix), suffix)
		var out []int
		for _, part := range strings.Split(v, ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil // unparsable versions sort last
			}
			out = append(out, n)
		}
		return out
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		a, b := version(dirs[i]), version(dirs[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
}

// serverVersion runs `postgres --version` and returns the version number,
// e.g. "15.18" from "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
func serverVersion(ctx context.Context, binDir string) (string, error) {
	out, err := localsrv.VersionOutput(ctx, childEnv(""), filepath.Join(binDir, "postgres"), "--version")
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	return parseVersion(out)
}

func parseVersion(s string) (string, error) {
	if v := localsrv.WordAfter(s, "(PostgreSQL)"); v != "" {
		return v, nil
	}
	return "", errors.New("localpg: unexpected `postgres --version` output: " + strings.TrimSpace(s))
}
