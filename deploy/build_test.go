package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// testVersion is what the Dockerfile's VERSION build argument is set to
// when the test builds the binary.
const testVersion = "v0.0.0-deploytest"

// readFile reads a file of the repository, by its path from the root.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The binary, built once per test run with the Dockerfile's command.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// binary builds the proxy as the Dockerfile does, once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rds-iam-proxy-deploy-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "rds-iam-proxy")
		var df []byte
		if df, buildErr = os.ReadFile(filepath.Join(repoRoot, "Dockerfile")); buildErr != nil {
			return
		}
		var b dockerBuild
		if b, buildErr = dockerfileBuild(df); buildErr != nil {
			return
		}
		env, args, err := b.expanded(buildArgEnv(false))
		if err != nil {
			buildErr = err
			return
		}
		for i := range args {
			if i > 0 && args[i-1] == "-o" {
				args[i] = binPath
			}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
