package localmy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// installHint is appended to every "binary not found" error: the fix on
// a fresh Debian/Ubuntu machine is one command away.
const installHint = "install MariaDB with: apt-get install -y mariadb-server mariadb-client (Debian/Ubuntu)"

// Program names. MariaDB 10.5+ installs these; the old mysqld/mysql names
// are compatibility symlinks that may point at a different product.
const (
	serverProg  = "mariadbd"
	installProg = "mariadb-install-db"
	clientProg  = "mariadb"
)

// defaultBinDirs are searched after PATH: Debian puts mariadbd in
// /usr/sbin, which is not on a normal user's (or a CI job's) PATH.
var defaultBinDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin"}

// packageFor names the Debian package that ships a program, for errors.
var packageFor = map[string]string{
	serverProg:  "mariadb-server",
	installProg: "mariadb-server",
	clientProg:  "mariadb-client",
}

// binFinder locates MariaDB programs. Its fields exist so tests can point
// the search at fake trees; production code uses newBinFinder.
type binFinder struct {
	path string   // PATH-style list, searched first
	dirs []string // then these
}

func newBinFinder() binFinder {
	return binFinder{path: os.Getenv("PATH"), dirs: defaultBinDirs}
}

// FindBin returns the path of a MariaDB program ("mariadbd",
// "mariadb-install-db", "mariadb", "mariadb-dump", ...), looking on PATH
// and then in /usr/sbin, /usr/bin, /usr/local/... so that the server is
// found when /usr/sbin is not on PATH. The error names the Debian package
// to install.
func FindBin(name string) (string, error) {
	return newBinFinder().find(name)
}

func (f binFinder) dirList() []string {
	var dirs []string
	seen := map[string]bool{}
	for _, d := range append(filepath.SplitList(f.path), f.dirs...) {
		if d == "" || !filepath.IsAbs(d) || seen[d] {
			continue // a relative PATH entry depends on the cwd: never trust it
		}
		seen[d] = true
		dirs = append(dirs, d)
	}
	return dirs
}

func (f binFinder) find(name string) (string, error) {
	dirs := f.dirList()
	for _, d := range dirs {
		p := filepath.Join(d, name)
		// mariadb-install-db is a shell script; the server must be a
		// real binary (not a wrapper that would ignore our options).
		ok := localsrv.IsExecutable(p)
		if name == serverProg {
			ok = localsrv.IsRealExecutable(p)
		}
		if ok {
			return p, nil
		}
	}
	pkg := packageFor[name]
	if pkg == "" {
		pkg = "mariadb-server or mariadb-client"
	}
	return "", fmt.Errorf("localmy: MariaDB program %q not found in %s (it comes with the %s package); %s",
		name, strings.Join(dirs, ":"), pkg, installHint)
}

// serverVersion runs `mariadbd --version` and returns the version number,
// e.g. "10.11.19" from "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for
// debian-linux-gnu on x86_64 (Debian 12)".
func serverVersion(ctx context.Context, mariadbd string) (string, error) {
	out, err := localsrv.VersionOutput(ctx, childEnv(""), mariadbd, "--no-defaults", "--version")
	if err != nil {
		return "", fmt.Errorf("localmy: %w", err)
	}
	return parseVersion(out)
}

func parseVersion(s string) (string, error) {
	if v, _, _ := strings.Cut(localsrv.WordAfter(s, "Ver"), "-"); v != "" {
		return v, nil
	}
	return "", errors.New("localmy: unexpected `mariadbd --version` output: " + strings.TrimSpace(s))
}
