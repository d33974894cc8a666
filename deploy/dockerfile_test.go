package deploy

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// parseDockerfile reads a Dockerfile with BuildKit's own parser, the one
// `docker build` uses, and returns its instructions in order. A parser
// warning (an empty continuation line, say) is an error here: docker shows
// it on every build.
func parseDockerfile(dockerfile []byte) ([]*parser.Node, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("Dockerfile: %w", err)
	}
	var warns []error
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		warns = append(warns, fmt.Errorf("Dockerfile:%d: %s", line, w.Short))
	}
	if err := errors.Join(warns...); err != nil {
		return nil, err
	}
	return res.AST.Children, nil
}

// dockerfile parses the repository's Dockerfile.
func dockerfile(t *testing.T) []*parser.Node {
	t.Helper()
	nodes, err := parseDockerfile(readFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// isInstruction reports whether n is the instruction named (RUN, COPY, ...).
func isInstruction(n *parser.Node, name string) bool {
	return strings.EqualFold(n.Value, name)
}

// instructionArgs returns an instruction's arguments after its flags: the
// words of the exec (JSON) form, or the space-separated words BuildKit
// splits FROM, COPY, ARG and USER into; for the shell form of RUN and CMD,
// the one command line.
func instructionArgs(n *parser.Node) []string {
	var args []string
	for a := n.Next; a != nil; a = a.Next {
		args = append(args, a.Value)
	}
	return args
}

// dockerBuild is the Dockerfile's `go build` RUN line, split as sh splits
// it, with the build arguments it names left as ${NAME}.
type dockerBuild struct {
	call *syntax.CallExpr
	env  []string // NAME=value before the command
	args []string // after "go"
}

// buildArgEnv holds the build arguments the go build line may use. With
// symbolic, each is its own ${NAME}, for checking the line as written;
// otherwise the values docker gives them when building for this machine
// with --build-arg VERSION=testVersion. Any other variable is an error.
func buildArgEnv(symbolic bool) expand.Environ {
	var pairs []string
	for name, v := range map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "VERSION": testVersion} {
		if symbolic {
			v = "${" + name + "}"
		}
		pairs = append(pairs, name+"="+v)
	}
	return expand.ListEnviron(pairs...)
}

// expanded returns the line's environment and arguments (after "go") as
// the shell in the build stage sees them.
func (b dockerBuild) expanded(env expand.Environ) (assigns, args []string, err error) {
	assigns, words, err := expandCall(b.call, env)
	if err != nil {
		return nil, nil, fmt.Errorf("Dockerfile: the go build RUN line: %w", err)
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return nil, nil, fmt.Errorf("Dockerfile: the go build RUN line must be [NAME=value...] go build ...: %q", words)
	}
	return assigns, words[1:], nil
}

// dockerfileBuild finds the one RUN instruction of the Dockerfile that runs
// go build and returns its environment and arguments, unexpanded. Its
// --mount flags are BuildKit's and not part of the command.
func dockerfileBuild(dockerfile []byte) (dockerBuild, error) {
	nodes, err := parseDockerfile(dockerfile)
	if err != nil {
		return dockerBuild{}, err
	}
	var runs []*parser.Node
	for _, n := range nodes {
		if isInstruction(n, "RUN") && strings.Contains(n.Original, "go build") {
			runs = append(runs, n)
		}
	}
	if len(runs) != 1 {
		return dockerBuild{}, fmt.Errorf("Dockerfile: %d RUN instructions contain \"go build\", want 1", len(runs))
	}
	run := runs[0]
	args := instructionArgs(run)
	if run.Attributes["json"] || len(run.Heredocs) > 0 || len(args) != 1 {
		return dockerBuild{}, fmt.Errorf("Dockerfile: the go build RUN line must be in the shell form, one line: %q", run.Original)
	}
	call, err := simpleCommand(args[0])
	if err != nil {
		return dockerBuild{}, fmt.Errorf("Dockerfile: the go build RUN line must be one command: %w", err)
	}
	b := dockerBuild{call: call}
	if b.env, b.args, err = b.expanded(buildArgEnv(true)); err != nil {
		return dockerBuild{}, err
	}
	return b, nil
}

// TestDockerfileBuildsStaticBinary runs the Dockerfile's go build line and
// checks the result: statically linked (no interpreter, no dynamic
// section, no shared libraries), stripped, no build paths, runs version.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	b, err := dockerfileBuild(readFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(b.env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile go build environment %q lacks CGO_ENABLED=0", b.env)
	}
	if !slices.Contains(b.args, "-trimpath") {
		t.Errorf("Dockerfile go build %q lacks -trimpath", b.args)
	}
	i := slices.Index(b.args, "-ldflags")
	if i < 0 || i+1 >= len(b.args) {
		t.Fatalf("Dockerfile go build %q lacks -ldflags", b.args)
	}
	ld := strings.Fields(b.args[i+1])
	if !slices.Contains(ld, "-s") || !slices.Contains(ld, "-w") || !strings.Contains(b.args[i+1], "-X main.version=${VERSION}") {
		t.Errorf("-ldflags %q: want -s -w -X main.version=${VERSION}", b.args[i+1])
	}
	o := slices.Index(b.args, "-o")
	if o < 0 || o+1 >= len(b.args) {
		t.Fatalf("Dockerfile go build %q lacks -o", b.args)
	}
	if b.args[len(b.args)-1] != "./cmd/rds-iam-proxy" {
		t.Errorf("Dockerfile builds %q, want ./cmd/rds-iam-proxy", b.args[len(b.args)-1])
	}
	if !slices.ContainsFunc(dockerfile(t), func(n *parser.Node) bool {
		return isInstruction(n, "COPY") && slices.Equal(n.Flags, []string{"--from=build"}) &&
			slices.Equal(instructionArgs(n), []string{b.args[o+1], "/rds-iam-proxy"})
	}) {
		t.Errorf("Dockerfile does not copy the built binary: no %q", "COPY --from=build "+b.args[o+1]+" /rds-iam-proxy")
	}

	bin := binary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: not static", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("binary has a .dynamic section: not static")
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary imports libraries %q (%v)", libs, err)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -ldflags -s did not apply")
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(abs+string(filepath.Separator))) {
		t.Errorf("binary contains the build directory %s: -trimpath did not apply", abs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	// The Dockerfile stamps the version only; the commit and date come
	// from the build info when .git is there, else say unknown.
	if err != nil || !strings.HasPrefix(string(out), "rds-iam-proxy "+testVersion+" (commit ") {
		t.Errorf("version: %q, %v; want it to start %q", out, err, "rds-iam-proxy "+testVersion+" (commit ")
	}
}

// TestDockerfileImage checks the final stage: distroless static, non-root,
// exec-form entrypoint, a default command the binary knows.
func TestDockerfileImage(t *testing.T) {
	nodes := dockerfile(t)
	var froms []*parser.Node
	var user, entrypoint, cmd *parser.Node
	for _, n := range nodes {
		switch {
		case isInstruction(n, "FROM"):
			froms = append(froms, n)
			user, entrypoint, cmd = nil, nil, nil
		case isInstruction(n, "USER"):
			user = n
		case isInstruction(n, "ENTRYPOINT"):
			entrypoint = n
		case isInstruction(n, "CMD"):
			cmd = n
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a final stage", len(froms))
	}
	if b, args := froms[0], instructionArgs(froms[0]); !slices.Equal(b.Flags, []string{"--platform=$BUILDPLATFORM"}) ||
		len(args) != 3 || args[0] != "golang:${GO_VERSION}" || !strings.EqualFold(args[1], "AS") {
		t.Errorf("builder stage %q: want a named stage of golang:${GO_VERSION} on the build platform", b.Original)
	}
	if !slices.ContainsFunc(nodes, func(n *parser.Node) bool {
		return isInstruction(n, "ARG") && slices.Equal(instructionArgs(n), []string{"GO_VERSION=1.26"})
	}) {
		t.Error("Dockerfile: want ARG GO_VERSION=1.26, the go.mod's Go")
	}
	if last := froms[len(froms)-1]; len(last.Flags) > 0 || !slices.Equal(instructionArgs(last), []string{"gcr.io/distroless/static-debian12:nonroot"}) {
		t.Errorf("final stage %q, want FROM gcr.io/distroless/static-debian12:nonroot", last.Original)
	}
	if user == nil || !slices.Equal(instructionArgs(user), []string{"65532:65532"}) {
		t.Errorf("final stage USER %v, want 65532:65532 (distroless nonroot, numeric so runAsNonRoot can check it)", original(user))
	}
	if entrypoint == nil || !entrypoint.Attributes["json"] || !slices.Equal(instructionArgs(entrypoint), []string{"/rds-iam-proxy"}) {
		t.Errorf("%v, want the exec form ENTRYPOINT [\"/rds-iam-proxy\"]", original(entrypoint))
	}
	if cmd == nil || !cmd.Attributes["json"] || len(instructionArgs(cmd)) == 0 {
		t.Fatalf("%v: want an exec-form CMD list", original(cmd))
	}
	cmdArgs := instructionArgs(cmd)
	if out, err := exec.Command(binary(t), cmdArgs...).CombinedOutput(); err != nil {
		t.Errorf("the image's default command %q fails: %v\n%s", cmdArgs, err, out)
	}
}

// original is an instruction as written, for messages; "none" when absent.
func original(n *parser.Node) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprintf("%q", n.Original)
}
