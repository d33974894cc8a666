package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runMain(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestHelpPages: help COMMAND prints that command's page on stdout, with
// its flags written --name; COMMAND --help prints the same page on stderr;
// the overview names help and completion.
func TestHelpPages(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"help", "run"}, []string{"rds-iam-proxy [run] --endpoint HOST:PORT", "\n  --endpoint string\n", "\n  --allow-non-loopback\n", "(default 1024)"}},
		{[]string{"help", "setup", "sql"}, []string{"rds-iam-proxy setup sql", "\n  --db-user string\n"}},
		{[]string{"help", "setup"}, []string{"setup policy"}},
		{[]string{"help", "token"}, []string{"\n  --endpoint string\n", "\n  --role-duration duration\n"}},
		{[]string{"help", "completion"}, []string{"completion bash|zsh|fish"}},
		{[]string{"help", "version"}, []string{"commit"}},
		{[]string{"help"}, []string{`rds-iam-proxy help COMMAND`, "completion bash|zsh|fish"}},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(c.args...)
		if code != 0 {
			t.Errorf("%q: exit %d\n%s", c.args, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: stdout lacks %q:\n%s", c.args, w, out)
			}
		}
		if regexp.MustCompile(`(?m)^  -[a-z]`).MatchString(out) {
			t.Errorf("%q: a flag is listed with one dash:\n%s", c.args, out)
		}
	}
	_, page, _ := runCLI("help", "doctor")
	code, out, errOut := runCLI("doctor", "--help")
	if code != 0 || out != "" || errOut != page {
		t.Errorf("doctor --help: exit %d, stdout %q; its page differs from help doctor's:\n%s\n---\n%s", code, out, errOut, page)
	}
	if code, _, errOut := runCLI("help", "doctr"); code != 2 || !strings.Contains(errOut, "did you mean doctor?") {
		t.Errorf("help doctr: exit %d, %q", code, errOut)
	}
}

// TestUnknownFlagSuggests: an unknown flag is told once (not followed by
// the whole page), with two dashes, the closest flag of that command and
// where the flags are listed; exit status 2.
func TestUnknownFlagSuggests(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--endpont", "x"}, "unknown flag --endpont; did you mean --endpoint? (rds-iam-proxy help run lists the flags)"},
		{[]string{"run", "-max-handshake=3"}, "unknown flag --max-handshake; did you mean --max-handshakes?"},
		{[]string{"token", "--db-usr", "u"}, "did you mean --db-user?"},
		{[]string{"setup", "policy", "--kidn", "trust"}, "did you mean --kind? (rds-iam-proxy help setup policy lists the flags)"},
		{[]string{"doctor", "--rgeion", "x"}, "did you mean --region?"},
		{[]string{"whoami", "--time", "1s"}, "did you mean --timeout?"},
		{[]string{"wait", "--zzzzzz"}, "unknown flag --zzzzzz (rds-iam-proxy help wait lists the flags)"},
	}
	for _, c := range cases {
		code, _, errOut := runCLI(c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
		if strings.Contains(errOut, "Flags (each") || strings.Count(errOut, "unknown flag") != 1 {
			t.Errorf("%q: the error is not told once, alone:\n%s", c.args, errOut)
		}
	}
	if code, _, errOut := runCLI("doctr"); code != 2 || !strings.Contains(errOut, `unknown command "doctr"; did you mean doctor?`) {
		t.Errorf("doctr: exit %d, %q", code, errOut)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"endpoint", "endpoint", 0}, {"endpont", "endpoint", 1}, {"enpdoint", "endpoint", 1}, {"rgeion", "region", 1}, {"kitten", "sitting", 3}, {"", "abc", 3}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
	if n, ok := closest("port", []string{"endpoint", "listen"}); ok {
		t.Errorf("port: suggested %q; nothing is close", n)
	}
}

// TestCommandListComplete: every command the overview names is in the
// list help and completion use, and the dispatcher knows each.
func TestCommandListComplete(t *testing.T) {
	for _, m := range regexp.MustCompile(`(?m)^  rds-iam-proxy (?:\[run\]|([a-z]+))`).FindAllStringSubmatch(usage, -1) {
		name := m[1]
		if name == "" {
			name = "run"
		}
		if !slices.Contains(topCommands(), name) {
			t.Errorf("the overview names %q, the command list does not", name)
		}
	}
	for _, c := range topCommands() {
		if _, _, errOut := runCLI(c, "--help"); strings.Contains(errOut, "unknown command") {
			t.Errorf("%q is listed but unknown: %s", c, errOut)
		}
	}
}

// complete runs the bash completion function on a command line (the last
// word being completed) and returns what it offers.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _rds_iam_proxy; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script, "rds-iam-proxy"}, words...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("completing %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

// TestCompletionScripts: each shell's script is generated; bash's passes
// bash -n and completes commands, subcommands, each command's own flags
// (a setting's flag included, from the table) and a flag's words; zsh's
// and fish's pass their shell's syntax check where that shell is
// installed (neither is on the CI install list; their content is checked
// here everywhere).
func TestCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runCLI("completion", sh)
		if code != 0 || out == "" {
			t.Fatalf("completion %s: exit %d\n%s", sh, code, errOut)
		}
		scripts[sh] = filepath.Join(dir, "rds-iam-proxy."+sh)
		if err := os.WriteFile(scripts[sh], []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"--endpoint", "--upstream-tcp-timeout", "--pod-identity", "--backend-password", "setup", "doctor"} {
			if sh == "fish" {
				w = strings.Replace(w, "--", "-l ", 1) // complete -l NAME
			}
			if !strings.Contains(out, w) {
				t.Errorf("completion %s lacks %q", sh, w)
			}
		}
	}
	if out, err := exec.Command("bash", "-n", scripts["bash"]).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("%s is not installed: its script's syntax is not checked", sh)
			continue
		}
		if out, err := exec.Command(sh, "-n", scripts[sh]).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	cases := []struct {
		words []string
		want  []string
		not   []string
	}{
		{[]string{"do"}, []string{"doctor"}, nil},
		{[]string{""}, []string{"run", "setup", "completion"}, nil},
		{[]string{"setup", ""}, []string{"sql", "policy"}, nil},
		{[]string{"--endp"}, []string{"--endpoint"}, nil}, // run is the default command
		{[]string{"run", "--upstream-t"}, []string{"--upstream-tcp-timeout"}, nil},
		{[]string{"token", "--"}, []string{"--db-user", "--role-arn"}, []string{"--listen", "--admin-address"}},
		{[]string{"setup", "policy", "--pod"}, []string{"--pod-identity"}, nil},
		{[]string{"setup", "sql", "--"}, []string{"--database"}, []string{"--kind"}},
		{[]string{"run", "--engine", ""}, []string{"postgres", "mysql"}, nil},
		{[]string{"--tls-mode", "verify-"}, []string{"verify-full", "verify-ca"}, nil},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, nil},
		{[]string{"help", "wa"}, []string{"wait"}, nil},
		{[]string{"run", "--allow-non-loopback", "--ma"}, []string{"--max-connections", "--max-handshakes"}, nil},
	}
	for _, c := range cases {
		got := complete(t, scripts["bash"], c.words...)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("completing %q: %q lacks %q", c.words, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("completing %q: %q offers %q", c.words, got, w)
			}
		}
	}
	// fish, where installed, completes from its script as bash does.
	if _, err := exec.LookPath("fish"); err == nil {
		for line, want := range map[string]string{
			"rds-iam-proxy token --db":        "--db-user",
			"rds-iam-proxy setup policy --ki": "--kind",
			"rds-iam-proxy --tls-mode ":       "verify-full",
			"rds-iam-proxy do":                "doctor",
		} {
			out, err := exec.Command("fish", "-c", `source $argv[1]; complete -C $argv[2]`, scripts["fish"], line).CombinedOutput()
			if err != nil || !strings.Contains(string(out), want) {
				t.Errorf("fish completing %q: %v, %q lacks %q", line, err, out, want)
			}
		}
	}
	if code, _, errOut := runCLI("completion", "bsh"); code != 2 || !strings.Contains(errOut, "did you mean bash?") {
		t.Errorf("completion bsh: exit %d, %q", code, errOut)
	}
}
