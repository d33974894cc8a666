package deploy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// Shell words and assignments are read with mvdan.cc/sh's POSIX parser and
// expander, not by hand. The Dockerfile's RUN line is run by /bin/sh -c, so
// sh's grammar is the right one for it. systemd's ExecStart= and
// EnvironmentFile= quoting agrees with sh for what these files use (blanks,
// '...', "...", backslashes); a file that strays beyond that (a $variable, a
// pipe, a second command) fails the test instead of being read some other
// way.

// simpleCommand parses src as exactly one simple command: assignments, then
// words, and nothing a shell would run around it (no list, pipe,
// redirection, background or negation).
func simpleCommand(src string) (*syntax.CallExpr, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(src), "")
	if err != nil {
		return nil, fmt.Errorf("%q: %w", src, err)
	}
	if len(f.Stmts) != 1 {
		return nil, fmt.Errorf("%q: %d commands, want one", src, len(f.Stmts))
	}
	st := f.Stmts[0]
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || st.Negated || st.Background || st.Coprocess || len(st.Redirs) > 0 {
		return nil, fmt.Errorf("%q: not one simple command", src)
	}
	return call, nil
}

// expandCall expands a simple command's assignments (as NAME=value) and its
// words as sh would, with the variables in env set and no others: a
// reference to any other variable, or a command substitution, is an error.
// A nil env sets no variables.
func expandCall(call *syntax.CallExpr, env expand.Environ) (assigns, words []string, err error) {
	cfg := &expand.Config{Env: env, NoUnset: true}
	for _, a := range call.Assigns {
		if a.Naked || a.Append || a.Index != nil || a.Array != nil {
			return nil, nil, fmt.Errorf("assignment to %s: only NAME=value is understood", a.Name.Value)
		}
		v, err := expand.Literal(cfg, a.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("%s=: %w", a.Name.Value, err)
		}
		assigns = append(assigns, a.Name.Value+"="+v)
	}
	words, err = expand.Fields(cfg, call.Args...)
	if err != nil {
		return nil, nil, err
	}
	return assigns, words, nil
}

// shellWords splits a command line (systemd's ExecStart=) into words as sh
// would, with no variables set and no NAME=value before the command.
func shellWords(s string) ([]string, error) {
	call, err := simpleCommand(s)
	if err != nil {
		return nil, err
	}
	assigns, words, err := expandCall(call, nil)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if len(assigns) > 0 || len(words) == 0 {
		return nil, fmt.Errorf("%q: want a command and its arguments, no variable assignments", s)
	}
	return words, nil
}

var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// envFile parses an EnvironmentFile (or the emulator's --env-out file):
// one KEY=value a line, with comments. Each line is read as a lone sh
// assignment, so quotes are removed as systemd and compose remove them; a
// line that is anything else, or that refers to a variable, fails.
func envFile(t *testing.T, rel string) map[string]string {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(string(readFile(t, rel))), rel)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	env := map[string]string{}
	for _, st := range f.Stmts {
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || len(call.Args) > 0 || len(call.Assigns) != 1 || st.Negated || st.Background || len(st.Redirs) > 0 ||
			st.Semicolon.IsValid() {
			t.Fatalf("%s:%d: not a lone KEY=value line", rel, st.Pos().Line())
		}
		assigns, _, err := expandCall(call, nil)
		if err != nil {
			t.Fatalf("%s:%d: %v", rel, st.Pos().Line(), err)
		}
		k, v, _ := strings.Cut(assigns[0], "=")
		if !envNameRE.MatchString(k) {
			t.Fatalf("%s:%d: bad name %q", rel, st.Pos().Line(), k)
		}
		env[k] = v
	}
	return env
}

// TestShellWordsRefuseMoreThanOneCommand: a packaging line that a shell
// would run as more than one plain command, or whose words depend on the
// environment, is refused rather than split into misleading words; the
// quoting these files use comes out as sh gives it.
func TestShellWordsRefuseMoreThanOneCommand(t *testing.T) {
	for _, line := range []string{
		"/bin/x run && /bin/y", "/bin/x run; /bin/y", "/bin/x | /bin/y", "/bin/x > /tmp/f", "/bin/x &",
		"! /bin/x", "/bin/x --a=$HOME", "/bin/x $(id -u)", "FOO=1 /bin/x", "/bin/x 'unterminated", "",
	} {
		if words, err := shellWords(line); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", line, words)
		}
	}
	words, err := shellWords(`/bin/x --a="b c" --d='e f' g\ h "i\"j"`)
	if want := []string{"/bin/x", "--a=b c", "--d=e f", "g h", `i"j`}; err != nil || !slices.Equal(words, want) {
		t.Errorf("shellWords: %q, %v; want %q", words, err, want)
	}
}
