package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at build time by scripts/release (and the Dockerfile, version
// only): -ldflags "-X main.version=v1.2.3 -X main.commit=SHA -X main.date=RFC3339".
var (
	version = ""
	commit  = ""
	date    = ""
)

// buildStamp is what a binary knows about its own build.
type buildStamp struct {
	Version, Commit, Date string
}

// stampOf fills what the linker did not stamp from the build info Go
// records itself: `go install MODULE@vX` records the module version, a
// `go build` in a git checkout the commit and its time (vcs.revision,
// vcs.time), so a binary built without scripts/release still says what it
// is made of.
func stampOf(version, commit, date string, info *debug.BuildInfo) buildStamp {
	s := buildStamp{Version: version, Commit: commit, Date: date}
	if info != nil {
		var modified bool
		for _, kv := range info.Settings {
			switch kv.Key {
			case "vcs.revision":
				if s.Commit == "" {
					s.Commit = kv.Value
				}
			case "vcs.time":
				if s.Date == "" {
					s.Date = kv.Value
				}
			case "vcs.modified":
				modified = kv.Value == "true"
			}
		}
		if commit == "" && modified && s.Commit != "" {
			s.Commit += "-dirty"
		}
		if s.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			s.Version = info.Main.Version
		}
	}
	if s.Version == "" {
		s.Version = "dev"
	}
	if s.Commit == "" {
		s.Commit = "unknown"
	}
	if s.Date == "" {
		s.Date = "unknown"
	}
	return s
}

// currentStamp is this binary's stamp.
func currentStamp() buildStamp {
	info, _ := debug.ReadBuildInfo()
	return stampOf(version, commit, date, info)
}

// String is the version line: the first two words are the program and
// its version, as `rds-iam-proxy version | cut -d' ' -f2` expects.
func (s buildStamp) String() string {
	return fmt.Sprintf("rds-iam-proxy %s (commit %s, built %s, %s %s/%s)",
		s.Version, s.Commit, s.Date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
