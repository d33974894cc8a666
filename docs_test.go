// Package docs_test checks the commands the README and docs/ show against the
// program itself. It lives at the module root, not under integration/, so it
// needs no PostgreSQL, MariaDB or emulator: the integration package's TestMain
// starts all of those, which would cost minutes for a check that takes seconds.
package docs_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"mvdan.cc/sh/v3/syntax"
)

// TestDocsCommands reads every ```sh (or ```bash) block of README.md and
// docs/*.md, finds each rds-iam-proxy invocation in it (also inside $(...),
// pipes and go run ./cmd/rds-iam-proxy) and checks that its subcommand
// exists and that every flag it passes is one that subcommand lists in its
// own help. The flags come from the built binary's "SUBCOMMAND -h" (or "help
// SUBCOMMAND") output, so a doc cannot show a flag the program does not have,
// whether help spells flags -flag or --flag. Budget: about 15 s in CI, most of
// it the go build.
func TestDocsCommands(t *testing.T) {
	files := docFiles(t)
	h := &helpCache{bin: bin, got: map[string]helpResult{}}
	checked := 0
	for _, file := range files {
		for _, blk := range shellBlocks(t, file) {
			for _, inv := range invocations(t, blk) {
				checked++
				if msg := h.check(inv.args); msg != "" {
					t.Errorf("%s:%d: %s\n\tcommand: rds-iam-proxy %s", file, inv.line, msg, strings.Join(inv.args, " "))
				}
			}
		}
	}
	// A parser that silently found nothing would pass every doc: the README
	// alone shows a dozen invocations.
	if checked < 10 {
		t.Fatalf("found only %d rds-iam-proxy commands in %d files; the block or command finder is broken", checked, len(files))
	}
	t.Logf("checked %d rds-iam-proxy commands in %d files", checked, len(files))
}

// TestDocsCommandsCatchesMadeUpFlag proves the check can fail: a made-up
// flag, a made-up subcommand and a flag of another subcommand are refused,
// in both spellings and in the forms the docs use.
func TestDocsCommandsCatchesMadeUpFlag(t *testing.T) {
	h := &helpCache{bin: bin, got: map[string]helpResult{}}
	doc := "```sh\n" +
		"rds-iam-proxy --endpoint db.example.com:5432 --no-such-flag\n" +
		"PGPASSWORD=$(rds-iam-proxy token --endpoint x:5432 -made-up=1) psql\n" +
		"go run ./cmd/rds-iam-proxy demo --check --prewarm 3\n" +
		"rds-iam-proxy frobnicate --endpoint x:5432\n" +
		"rds-iam-proxy setup sql --db-user u --backend x\n" +
		"```\n"
	want := []string{"--no-such-flag", "--made-up", "--prewarm", "frobnicate", "--backend"}
	var got []string
	for _, blk := range splitBlocks("made-up.md", doc) {
		for _, inv := range invocations(t, blk) {
			if msg := h.check(inv.args); msg != "" {
				got = append(got, msg)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("want %d refusals, got %d: %q", len(want), len(got), got)
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("refusal %d = %q, want it to name %s", i, got[i], w)
		}
	}
	// And the real flags of the same commands pass.
	for _, args := range [][]string{
		{"--endpoint", "db.example.com:5432"},
		{"token", "--endpoint=x:5432", "-db-user", "u"},
		{"setup", "sql", "--db-user", "u"},
		{"demo", "--check", "--engine", "mysql"},
	} {
		if msg := h.check(args); msg != "" {
			t.Errorf("rds-iam-proxy %s: %s", strings.Join(args, " "), msg)
		}
	}
}

// bin is the binary TestMain builds once for every test here.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "rds-iam-proxy")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/rds-iam-proxy").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return append([]string{"README.md"}, files...)
}

// block is one fenced shell block: its text and the line its first line has
// in the file.
type block struct {
	file string
	line int
	text string
}

func shellBlocks(t *testing.T, file string) []block {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return splitBlocks(file, string(b))
}

// splitBlocks returns the ```sh and ```bash blocks of a markdown text, and
// the command lines of its plain ``` transcripts as blocks of one line.
func splitBlocks(file, text string) []block {
	var out []block
	var cur *block
	var body []string
	plain := false
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if cur == nil {
			if info, ok := strings.CutPrefix(trimmed, "```"); ok {
				// Every fence opens a block; only shell ones keep a file
				// name, the others are read past.
				cur = &block{line: i + 2}
				plain = false
				switch strings.TrimSpace(info) {
				case "sh", "bash", "shell":
					cur.file = file
				case "":
					plain = true
				}
				body = nil
			}
			continue
		}
		// A plain block is a transcript: its command lines ("$ cmd", or a
		// line that starts with the program) are commands shown too.
		if plain && trimmed != "```" {
			cmd, prompt := strings.CutPrefix(trimmed, "$ ")
			if prompt || strings.HasPrefix(trimmed, "rds-iam-proxy ") {
				out = append(out, block{file: file, line: i + 1, text: cmd + "\n"})
			}
		}
		if trimmed == "```" {
			if cur.file != "" {
				cur.text = strings.Join(body, "\n") + "\n"
				out = append(out, *cur)
			}
			cur = nil
			continue
		}
		body = append(body, l)
	}
	return out
}

// invocation is one rds-iam-proxy command: its arguments after the program
// name, and its line in the doc.
type invocation struct {
	line int
	args []string
}

// invocations parses a block as shell and returns every rds-iam-proxy call
// in it, wherever it sits (pipelines, &&, $(...), background jobs).
func invocations(t *testing.T, b block) []invocation {
	t.Helper()
	f, err := syntax.NewParser(syntax.KeepComments(false)).Parse(strings.NewReader(b.text), b.file)
	if err != nil {
		t.Errorf("%s:%d: the ```sh block does not parse as shell: %v", b.file, b.line, err)
		return nil
	}
	var out []invocation
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		words := make([]string, len(call.Args))
		for i, w := range call.Args {
			words[i] = wordText(w)
		}
		if args, ok := proxyArgs(words); ok {
			out = append(out, invocation{line: b.line + int(call.Pos().Line()) - 1, args: args})
		}
		return true
	})
	return out
}

// proxyArgs returns the program's arguments if words run rds-iam-proxy:
// by name or path, or as go run of its package.
func proxyArgs(words []string) ([]string, bool) {
	isProxy := func(w string) bool {
		w, _, _ = strings.Cut(w, "@")
		return w == "rds-iam-proxy" || strings.HasSuffix(w, "/rds-iam-proxy")
	}
	if isProxy(words[0]) {
		return words[1:], true
	}
	if len(words) >= 3 && words[0] == "go" && words[1] == "run" {
		for i := 2; i < len(words); i++ {
			if isProxy(words[i]) {
				return words[i+1:], true
			}
			if !strings.HasPrefix(words[i], "-") {
				return nil, false
			}
		}
	}
	return nil, false
}

// wordText is a word's literal text; parts that are not literal (a
// parameter, a command substitution) become "$".
func wordText(w *syntax.Word) string {
	var sb strings.Builder
	var parts func([]syntax.WordPart)
	parts = func(ps []syntax.WordPart) {
		for _, p := range ps {
			switch p := p.(type) {
			case *syntax.Lit:
				sb.WriteString(p.Value)
			case *syntax.SglQuoted:
				sb.WriteString(p.Value)
			case *syntax.DblQuoted:
				parts(p.Parts)
			default:
				sb.WriteString("$")
			}
		}
	}
	parts(w.Parts)
	return sb.String()
}

type helpResult struct {
	flags map[string]bool
	err   string
}

// helpCache asks the binary for each subcommand's flags once.
type helpCache struct {
	bin string
	mu  sync.Mutex
	got map[string]helpResult
}

// flagLine matches a line of a flag list in the flag package's form
// ("  -name type") and in pflag's ("  -n, --name string").
var flagLine = regexp.MustCompile(`^\s+(?:-[A-Za-z0-9], )?--?([A-Za-z0-9][A-Za-z0-9._-]*)`)

// help runs "PATH -h", then "help PATH", and reads the flag names.
func (h *helpCache) help(path []string) helpResult {
	key := strings.Join(path, " ")
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.got[key]; ok {
		return r
	}
	r := helpResult{flags: map[string]bool{"h": true, "help": true}}
	var outs []string
	for _, args := range [][]string{append(append([]string{}, path...), "-h"), append([]string{"help"}, path...)} {
		cmd := exec.Command(h.bin, args...)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		text := string(out)
		// A help that does not name the subcommand is the program's general
		// help (a CLI library may print it for an unknown subcommand).
		if err != nil || strings.Contains(text, "unknown command") || strings.Contains(text, "unexpected argument") ||
			strings.Contains(text, "Unknown help topic") || !strings.Contains(text, key) {
			outs = append(outs, fmt.Sprintf("%s: %v: %s", strings.Join(args, " "), err, firstLine(text)))
			continue
		}
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if m := flagLine.FindStringSubmatch(l); m != nil {
				r.flags[m[1]] = true
				n++
			}
		}
		if n > 0 || path[0] == "version" {
			h.got[key] = r
			return r
		}
		outs = append(outs, strings.Join(args, " ")+": no flags listed")
	}
	r.err = strings.Join(outs, "; ")
	h.got[key] = r
	return r
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// check returns "" if args name a subcommand that exists and pass only
// flags it accepts, else what is wrong.
func (h *helpCache) check(args []string) string {
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(path) == 2 {
			break
		}
		path = append(path, a)
	}
	if len(path) == 0 {
		path = []string{"run"}
	}
	if path[0] == "help" {
		return ""
	}
	// The longest path the program knows: "setup sql" before "setup".
	var r helpResult
	for n := len(path); n >= 1; n-- {
		r = h.help(path[:n])
		if r.err == "" {
			path = path[:n]
			break
		}
	}
	if r.err != "" {
		return fmt.Sprintf("no such subcommand %q (%s)", path[0], r.err)
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "$" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.Contains(name, "$") || name == "" {
			continue
		}
		if !r.flags[name] {
			return fmt.Sprintf("rds-iam-proxy %s does not accept --%s: its help lists no such flag", strings.Join(path, " "), name)
		}
	}
	return ""
}
