package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
)

// TestReleaseBinaryVersion runs scripts/release for linux/amd64 (the CI
// machine's kind; this machine's own kind elsewhere) into a temporary
// directory, then the binary it made: `version` prints the version it was
// given, the checkout's commit and the commit's time, and checksums.txt
// has the binary's sha256. CI also runs the full release (six targets and
// the SBOM) in .ci/run; this test keeps the script's stamping honest
// wherever the tests run. Budget: one static build (about 30 s on a cold
// cache on 2 vCPUs, a link when warm).
func TestReleaseBinaryVersion(t *testing.T) {
	shortskip.Skip(t, "builds the release binary")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		c := exec.Command("git", append([]string{"-C", root}, args...)...)
		c.Env = append(os.Environ(), "TZ=UTC")
		out, err := c.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	wantCommit := git("rev-parse", "HEAD")
	if git("status", "--porcelain") != "" {
		wantCommit += "-dirty"
	}
	wantDate := git("log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")

	target := runtime.GOOS + "/" + runtime.GOARCH
	dist := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "scripts", "release"))
	cmd.Env = append(os.Environ(), "VERSION=v9.8.7-test", "TARGETS="+target, "DIST="+dist, "SBOM=0", "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, out)
	}
	name := "rds-iam-proxy_v9.8.7-test_" + runtime.GOOS + "_" + runtime.GOARCH
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	bin := filepath.Join(dist, name)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", name, err, out)
	}
	for _, want := range []string{"rds-iam-proxy v9.8.7-test ", "commit " + wantCommit + ",", "built " + wantDate + ","} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s version = %q, lacks %q", name, out, want)
		}
	}
	sums, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+name+"\n") {
		t.Errorf("checksums.txt lacks %s's sha256:\n%s", name, sums)
	}
}
