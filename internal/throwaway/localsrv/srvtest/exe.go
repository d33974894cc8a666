package srvtest

import (
	"os"
	"path/filepath"
	"testing"
)

// FakeExe writes an executable file for the binary searches: a
// real-looking binary (ELF magic) or, with script set, a "#!" wrapper as
// distributions install under server program names.
func FakeExe(t *testing.T, path string, script bool) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	content := "\x7fELF fake"
	if script {
		content = "#!/bin/sh\nexit 1\n"
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
