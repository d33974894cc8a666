package localpg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestFindBinDirNothingFound(t *testing.T) {
	root := t.TempDir()
	emptyPath := filepath.Join(root, "path")
	if err := os.Mkdir(emptyPath, 0o755); err != nil {
		t.Fatal(err)
	}
	// A wrapper script on PATH must not count as a server.
	srvtest.FakeExe(t, filepath.Join(emptyPath, "postgres"), true)
	srvtest.FakeExe(t, filepath.Join(emptyPath, "initdb"), true)

	f := binFinder{roots: []string{filepath.Join(root, "lib", "*", "bin")}, path: emptyPath}
	dir, err := f.find()
	if err == nil {
		t.Fatalf("find() = %q, want error", dir)
	}
	for _, want := range []string{
		"no PostgreSQL server binaries found",
		filepath.Join(root, "lib", "*", "bin"),
		"PATH (" + emptyPath + ")",
		`"initdb"`, `"postgres"`,
		"apt-get install -y postgresql",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindBinDirPrefersHighestCompleteVersion(t *testing.T) {
	root := t.TempDir()
	lib := filepath.Join(root, "lib")
	for _, v := range []string{"9.6", "10", "15"} {
		srvtest.FakeExe(t, filepath.Join(lib, v, "bin", "initdb"), false)
		srvtest.FakeExe(t, filepath.Join(lib, v, "bin", "postgres"), false)
	}
	// 16 is incomplete (client-only install): must be passed over.
	srvtest.FakeExe(t, filepath.Join(lib, "16", "bin", "initdb"), false)

	f := binFinder{roots: []string{filepath.Join(lib, "*", "bin")}}
	dir, err := f.find()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(lib, "15", "bin"); dir != want {
		t.Errorf("find() = %q, want %q", dir, want)
	}
}

func TestFindBinDirFromPathFollowsSymlinks(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real", "bin")
	srvtest.FakeExe(t, filepath.Join(real, "initdb"), false)
	srvtest.FakeExe(t, filepath.Join(real, "postgres"), false)
	wrappers := filepath.Join(root, "wrappers")
	srvtest.FakeExe(t, filepath.Join(wrappers, "postgres"), true)
	links := filepath.Join(root, "links")
	if err := os.Mkdir(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "postgres"), filepath.Join(links, "postgres")); err != nil {
		t.Fatal(err)
	}

	f := binFinder{roots: []string{filepath.Join(root, "none", "*")}, path: "relative:" + wrappers + ":" + links}
	dir, err := f.find()
	if err != nil {
		t.Fatal(err)
	}
	if dir != real {
		t.Errorf("find() = %q, want the symlink target's dir %q", dir, real)
	}
}

func TestParseVersion(t *testing.T) {
	got, err := parseVersion("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n")
	if err != nil || got != "15.18" {
		t.Errorf("parseVersion = %q, %v; want 15.18", got, err)
	}
	if _, err := parseVersion("something else"); err == nil {
		t.Error("parseVersion accepted garbage")
	}
}
