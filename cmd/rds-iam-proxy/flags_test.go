package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// proxyCommands are the commands that configure or check the proxy's
// upstream; their flags come from config's settings table.
var proxyCommands = [][]string{{"run"}, {"token"}, {"whoami"}, {"doctor"}, {"validate"}, {"setup", "sql"}, {"setup", "policy"}}

// flagLine is a flag in -h output: "  --name type", then its usage
// indented on the next line.
var flagLine = regexp.MustCompile(`^  --(\S+)`)

// helpFlags runs a command with -h and returns each flag's usage text,
// without its default (defaults may differ: validate waits longer than
// whoami).
func helpFlags(t *testing.T, cmd []string) map[string]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), append(append([]string(nil), cmd...), "-h"), &stdout, &stderr); code != 0 {
		t.Fatalf("%q -h: exit %d\n%s", cmd, code, stderr.String())
	}
	flags := map[string]string{}
	lines := strings.Split(stderr.String(), "\n")
	for i, line := range lines {
		m := flagLine.FindStringSubmatch(line)
		if m == nil || i+1 >= len(lines) {
			continue
		}
		usage := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(usage, " (default "); j >= 0 {
			usage = usage[:j]
		}
		flags[m[1]] = usage
	}
	if len(flags) == 0 {
		t.Fatalf("%q -h lists no flags:\n%s", cmd, stderr.String())
	}
	return flags
}

// TestFlagHelpIsOneText: a flag that several commands take is explained
// with one text in all of them, and the upstream flags of run are the
// very flags the other commands take (the settings table), so the help
// cannot drift apart again.
func TestFlagHelpIsOneText(t *testing.T) {
	seen := map[string]string{}  // flag -> usage
	where := map[string]string{} // flag -> first command seen with it
	for _, cmd := range proxyCommands {
		name := strings.Join(cmd, " ")
		for flag, usage := range helpFlags(t, cmd) {
			if prev, ok := seen[flag]; ok && prev != usage {
				t.Errorf("--%s: %q says %q, but %q says %q", flag, where[flag], prev, name, usage)
				continue
			}
			seen[flag], where[flag] = usage, name
		}
	}
	// The signing and login flags: every command that reaches an
	// upstream has them.
	for _, cmd := range [][]string{{"token"}, {"whoami"}, {"doctor"}, {"validate"}, {"setup", "policy"}} {
		flags := helpFlags(t, cmd)
		for _, f := range []string{"endpoint", "engine", "region", "db-user", "profile", "role-arn", "external-id", "role-session-name", "role-duration", "sts-endpoint"} {
			if _, ok := flags[f]; !ok {
				t.Errorf("%q has no --%s", cmd, f)
			}
		}
	}
	for _, cmd := range [][]string{{"whoami"}, {"doctor"}, {"validate"}} {
		flags := helpFlags(t, cmd)
		for _, f := range []string{"dial-address", "tls-mode", "tls-server-name", "ca-bundle", "ca-bundle-url", "ca-bundle-region", "cache-dir", "ca-cache-dir"} {
			if _, ok := flags[f]; !ok {
				t.Errorf("%q has no --%s", cmd, f)
			}
		}
	}
	// The harness commands log as run does.
	for _, cmd := range [][]string{{"demo"}, {"emulate"}} {
		flags := helpFlags(t, cmd)
		for _, f := range []string{"log-level", "log-format", "engine"} {
			if cmd[0] == "demo" && f == "engine" {
				continue // the demo's --engine also takes "all"
			}
			if flags[f] != seen[f] {
				t.Errorf("%q --%s says %q, run says %q", cmd, f, flags[f], seen[f])
			}
		}
	}
}

// TestUpstreamFlagProblems: the one-upstream commands check their flags
// as run does, naming each flag, before anything connects (exit 2).
func TestUpstreamFlagProblems(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"token", "--endpoint", "db:5432:1", "--db-user", "u"}, []string{"--endpoint: \"db:5432:1\": want HOST or HOST:PORT"}},
		{[]string{"whoami", "--role-arn", "not-an-arn", "--tls-mode", "maybe"}, []string{"--role-arn:", "--tls-mode:"}},
		{[]string{"doctor", "--endpoint", "a.b.c:1", "--db-user", "u", "--engine", "oracle"}, []string{"--engine: \"oracle\": use postgres, mysql or dsql"}},
		{[]string{"validate", "--endpoint", "a.b.c:1", "--db-user", "u", "--ca-bundle", "/x.pem", "--ca-bundle-url", "https://x"}, []string{"--ca-bundle: names a file"}},
		{[]string{"validate", "--engine", "mysql", "--endpoint", "a.b.c:1", "--db-user", "u", "--tls-mode", "disable"}, []string{"--tls-mode: disable is not possible for mysql"}},
		{[]string{"setup", "policy", "--endpoint", "a.b.c:1", "--db-user", "u", "--role-duration", "-1m"}, []string{"--role-duration: -1m0s is negative"}},
		{[]string{"setup", "sql", "--engine", "db2", "--db-user", "u"}, []string{"--engine: \"db2\""}},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), c.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", c.args, code, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", c.args, w, stderr.String())
			}
		}
	}
}
