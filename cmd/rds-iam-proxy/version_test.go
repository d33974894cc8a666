package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

// TestStamp: what the linker stamps wins; without it the build info Go
// records (a module version from go install, the commit and its time
// from a git checkout) fills in; without either the line still says so.
func TestStamp(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	cases := []struct {
		name                  string
		version, commit, date string
		info                  *debug.BuildInfo
		want                  buildStamp
	}{
		{"stamped", "v1.2.3", "def456", "2026-12-07T05:00:00Z", vcs, buildStamp{"v1.2.3", "def456", "2026-12-07T05:00:00Z"}},
		{"git checkout", "", "", "", vcs, buildStamp{"dev", "abc123-dirty", "2026-12-01T10:00:00Z"}},
		{"go install", "", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, buildStamp{"v1.4.0", "unknown", "unknown"}},
		{"nothing", "", "", "", nil, buildStamp{"dev", "unknown", "unknown"}},
		{"Dockerfile: version only", "v0.9.0", "", "", vcs, buildStamp{"v0.9.0", "abc123-dirty", "2026-12-01T10:00:00Z"}},
	}
	for _, c := range cases {
		if got := stampOf(c.version, c.commit, c.date, c.info); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	var out bytes.Buffer
	if code := runMain(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "rds-iam-proxy ") || !strings.Contains(out.String(), "commit ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}
