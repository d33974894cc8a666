package main

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"go.yaml.in/yaml/v3"
)

// updateSpellings rewrites testdata/spellings.golden from the parser as it
// is: go test -run TestFlagSpellings ./cmd/rds-iam-proxy/ -update-spellings.
// The file was first written from the stdlib-flag parser before help,
// suggestions and completion were added, so it pins what every flag did
// then.
var updateSpellings = flag.Bool("update-spellings", false, "rewrite testdata/spellings.golden")

const spellingsGolden = "testdata/spellings.golden"

// spelledCommands are the commands with flags, as typed.
var spelledCommands = [][]string{{"run"}, {"token"}, {"whoami"}, {"doctor"}, {"validate"}, {"setup", "sql"}, {"setup", "policy"}, {"demo"}, {"emulate"}, {"wait"}, {"shutdown"}}

// spellingBase is the run command's one upstream, so that Load gets past
// "no upstreams" and shows what each flag changed; a variable, so that
// --endpoint's own spellings (variable included) override it.
var spellingBase = map[string]string{"RDS_IAM_PROXY_ENDPOINT": "db.c0ffee123456.us-east-1.rds.amazonaws.com:5432"}

// spellingValues are values each flag takes without an error where a
// generic one would be refused; the rest get one per type.
var spellingValues = map[string]string{
	"region": "eu-west-1", "tls-mode": "verify-ca", "listen": "127.0.0.1:7001", "dial-address": "127.0.0.1:7002",
	"role-arn": "arn:aws:iam::123456789012:role/r", "mfa-serial": "arn:aws:iam::123456789012:mfa/me", "mfa-code": "123456",
	"log-level": "debug", "log-format": "json", "admin-address": "127.0.0.1:9801", "shutdown-address": "127.0.0.1:9802",
	"sts-endpoint": "https://sts.example.com", "ca-bundle-url": "https://example.com/b.pem", "socket-mode": "0640",
	"ca-bundle-region": "eu-west-1", "endpoint": "other.c0ffee123456.eu-west-1.rds.amazonaws.com:5433",
	"upstream": "name=u,endpoint=u.c0ffee123456.us-east-1.rds.amazonaws.com:5432,listen=127.0.0.1:7003",
	"config":   "/nonexistent/rds-iam-proxy.yaml", "engine": "mysql", "format": "json", "kind": "trust",
	"backend": "127.0.0.1:5432", "require": "public.*:SELECT", "require-sequences": "public.*:USAGE",
	"mfa-duration": "1h", "role-duration": "20m",
}

// spellingValue is the value a flag is tested with.
func spellingValue(f *flag.Flag) string {
	if v, ok := spellingValues[f.Name]; ok {
		return v
	}
	if _, err := strconv.Atoi(f.DefValue); err == nil {
		return "7"
	}
	if _, err := time.ParseDuration(f.DefValue); err == nil {
		return "41s"
	}
	return "v1"
}

// isBool reports whether f takes no value (-x alone sets it).
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// spelledResult is what one command line made of the flags: every flag's
// value, the flags counted as set (they decide what wins over a config
// file), and for run what Load made of it all (the settings as YAML,
// the lines that differ from the base), or the error.
func spelledResult(t *testing.T, cmd []string, args []string, env map[string]string) string {
	t.Helper()
	fs := flagSetOf(cmd)
	if fs == nil {
		t.Fatalf("%q has no flag set", cmd)
	}
	var runFlags *config.Flags
	if cmd[0] == "run" {
		// run's own registration, so that Load can be asked.
		fs = flag.NewFlagSet("run", flag.ContinueOnError)
		runFlags = config.Register(fs)
		all := maps.Clone(spellingBase)
		maps.Copy(all, env)
		env = all
	}
	fs.SetOutput(&strings.Builder{})
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.ParseArgs(fs, args, lookup); err != nil {
		return "parse error: " + err.Error()
	}
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if v := f.Value.String(); v != f.DefValue {
			fmt.Fprintf(&b, " %s=%q", f.Name, v)
		}
	})
	var set []string
	fs.Visit(func(f *flag.Flag) {
		// RDS_IAM_PROXY_UPSTREAM is taken by SetFromEnv, not counted as a
		// given flag (Load reads the specs themselves, not whether the
		// flag was given), so --upstream's "given" is left out.
		if f.Name != "upstream" {
			set = append(set, f.Name)
		}
	})
	fmt.Fprintf(&b, " set=%s", strings.Join(set, ","))
	if runFlags != nil {
		b.WriteString(" load:" + loadDiff(t, runFlags))
	}
	return strings.TrimSpace(b.String())
}

// loadDiff is run's Load result as the YAML lines that differ from the
// base's, or its error.
func loadDiff(t *testing.T, f *config.Flags) string {
	t.Helper()
	s, err := f.Load()
	if err != nil {
		return " error: " + strings.ReplaceAll(err.Error(), "\n", " | ")
	}
	bfs := flag.NewFlagSet("run", flag.ContinueOnError)
	bf := config.Register(bfs)
	if err := config.ParseArgs(bfs, nil, func(k string) (string, bool) { v, ok := spellingBase[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	base, err := bf.Load()
	if err != nil {
		t.Fatal(err)
	}
	got, want := yamlLines(t, s), yamlLines(t, base)
	var diff []string
	for _, l := range got {
		if i := slices.Index(want, l); i >= 0 {
			want = slices.Delete(want, i, i+1)
			continue
		}
		diff = append(diff, "+"+l)
	}
	for _, l := range want {
		diff = append(diff, "-"+l)
	}
	return " " + strings.Join(diff, " ")
}

func yamlLines(t *testing.T, s *config.Settings) []string {
	out, err := yaml.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l = strings.TrimSpace(l)
		// Zero values are left out, so that a setting added to the table
		// later (zero unless given) does not change every recorded result;
		// a setting that becomes zero still shows, as the base's line gone.
		if strings.HasSuffix(l, `: ""`) || strings.HasSuffix(l, ": 0") || strings.HasSuffix(l, ": false") || strings.HasSuffix(l, ": []") || strings.HasSuffix(l, ": {}") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// spelling is one way of giving a flag a value.
type spelling struct {
	name string
	args []string
	env  map[string]string
}

// spellingsOf are the ways today's parser takes f = v: with one or two
// dashes, the value as the next word or after "=", and its variable.
// A boolean is set with the bare flag or =true, and unset with =false.
func spellingsOf(f *flag.Flag) map[string][]spelling {
	n := f.Name
	env := config.EnvName(n)
	if isBool(f) {
		return map[string][]spelling{
			"true": {
				{"-x", []string{"-" + n}, nil}, {"--x", []string{"--" + n}, nil},
				{"-x=true", []string{"-" + n + "=true"}, nil}, {"--x=true", []string{"--" + n + "=true"}, nil},
				{"env=true", nil, map[string]string{env: "true"}},
			},
			"false": {
				{"-x=false", []string{"-" + n + "=false"}, nil}, {"--x=false", []string{"--" + n + "=false"}, nil},
				{"env=false", nil, map[string]string{env: "false"}},
			},
		}
	}
	v := spellingValue(f)
	return map[string][]spelling{v: {
		{"--x=v", []string{"--" + n + "=" + v}, nil},
		{"-x v", []string{"-" + n, v}, nil}, {"--x v", []string{"--" + n, v}, nil},
		{"-x=v", []string{"-" + n + "=" + v}, nil},
		{"env", nil, map[string]string{env: v}},
	}}
}

// TestFlagSpellings: every flag of every command, in every spelling the
// stdlib-flag parser took (-x v, --x v, -x=v, --x=v; booleans -x, --x,
// -x=false, --x=false) and as its RDS_IAM_PROXY_* variable, gives the
// same flags, the same set of flags counted as given and, for run, the
// same settings; and that result is the one recorded in the golden file
// from the parser before the CLI's help and completion were added. A flag
// added since (a new setting in the table) is checked for the spellings,
// and a flag in the golden file that is gone fails.
func TestFlagSpellings(t *testing.T) {
	golden := readSpellings(t)
	got := map[string]string{}
	for _, cmd := range spelledCommands {
		fs := flagSetOf(cmd)
		if fs == nil {
			t.Errorf("%q: no flags", cmd)
			continue
		}
		fs.VisitAll(func(f *flag.Flag) {
			for value, spellings := range spellingsOf(f) {
				key := fmt.Sprintf("%s --%s %s", strings.Join(cmd, " "), f.Name, value)
				var first string
				for i, sp := range spellings {
					r := spelledResult(t, cmd, sp.args, sp.env)
					if i == 0 {
						first = r
						got[key] = r
						continue
					}
					if r != first {
						t.Errorf("%s: %s gives\n  %s\nbut %s gives\n  %s", key, sp.name, r, spellings[0].name, first)
					}
				}
			}
		})
	}
	if *updateSpellings {
		writeSpellings(t, got)
		return
	}
	for key, want := range golden {
		g, ok := got[key]
		switch {
		case !ok:
			t.Errorf("%s: in %s but no longer a flag (or its test value changed)", key, spellingsGolden)
		case g != want:
			t.Errorf("%s:\n  now    %s\n  golden %s", key, g, want)
		}
	}
	for key := range got {
		if _, ok := golden[key]; !ok {
			t.Logf("%s: newer than %s; its spellings are checked (-update-spellings records it)", key, spellingsGolden)
		}
	}
}

func readSpellings(t *testing.T) map[string]string {
	t.Helper()
	fh, err := os.Open(spellingsGolden)
	if err != nil {
		if *updateSpellings {
			return nil
		}
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " => ")
		if ok {
			out[key] = val
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", spellingsGolden)
	}
	return out
}

func writeSpellings(t *testing.T, got map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Every flag of every command, and what the parser made of it (see TestFlagSpellings).\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s => %s\n", k, got[k])
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spellingsGolden, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
