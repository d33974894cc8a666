package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dockerBuild is the Dockerfile's `go build` RUN line, split.
type dockerBuild struct {
	env  []string // NAME=value before the command
	args []string // after "go"
}

// dockerfileBuild finds the one RUN instruction of the Dockerfile that
// runs go build and returns its environment and arguments, unexpanded.
func dockerfileBuild(dockerfile string) (dockerBuild, error) {
	var runs []string
	for _, ins := range dockerInstructions(dockerfile) {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			runs = append(runs, ins)
		}
	}
	if len(runs) != 1 {
		return dockerBuild{}, fmt.Errorf("Dockerfile: %d RUN instructions contain \"go build\", want 1", len(runs))
	}
	words, err := shellWords(strings.TrimPrefix(runs[0], "RUN "))
	if err != nil {
		return dockerBuild{}, err
	}
	var b dockerBuild
	i := 0
	for ; i < len(words) && strings.HasPrefix(words[i], "--mount="); i++ {
	}
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		b.env = append(b.env, words[i])
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		return dockerBuild{}, fmt.Errorf("Dockerfile: the go build RUN line must be [--mount=...] [NAME=value...] go build ...: %q", runs[0])
	}
	b.args = words[i+1:]
	if slices.ContainsFunc(b.args, func(w string) bool { return strings.ContainsAny(w, "&|;") }) {
		return dockerBuild{}, fmt.Errorf("Dockerfile: the go build RUN line must be one command: %q", runs[0])
	}
	return b, nil
}

// dockerInstructions joins continuation lines and drops comments.
func dockerInstructions(dockerfile string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(dockerfile, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// expandBuildArgs expands ${NAME} and $NAME with the values docker would
// give them when building for this machine.
func expandBuildArgs(s string) string {
	return os.Expand(s, func(name string) string {
		switch name {
		case "TARGETOS":
			return runtime.GOOS
		case "TARGETARCH":
			return runtime.GOARCH
		case "VERSION":
			return testVersion
		}
		return "${" + name + "}" // left so the build fails visibly
	})
}

// TestDockerfileBuildsStaticBinary runs the Dockerfile's go build line and
// checks the result: statically linked (no interpreter, no dynamic
// section, no shared libraries), stripped, no build paths, runs version.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	b, err := dockerfileBuild(string(readFile(t, "Dockerfile")))
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
	ins := dockerInstructions(string(readFile(t, "Dockerfile")))
	if want := "COPY --from=build " + b.args[o+1] + " /rds-iam-proxy"; !slices.Contains(ins, want) {
		t.Errorf("Dockerfile does not copy the built binary: no %q", want)
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
	if err != nil || string(out) != "rds-iam-proxy "+testVersion+"\n" {
		t.Errorf("version: %q, %v; want %q", out, err, "rds-iam-proxy "+testVersion+"\n")
	}
}

// TestDockerfileImage checks the final stage: distroless static, non-root,
// exec-form entrypoint, a default command the binary knows.
func TestDockerfileImage(t *testing.T) {
	ins := dockerInstructions(string(readFile(t, "Dockerfile")))
	var froms []string
	var user, entrypoint, cmd string
	for _, in := range ins {
		word, rest, _ := strings.Cut(in, " ")
		switch word {
		case "FROM":
			froms = append(froms, rest)
			user, entrypoint, cmd = "", "", ""
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "CMD":
			cmd = rest
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a final stage", len(froms))
	}
	if !strings.HasPrefix(froms[0], "--platform=$BUILDPLATFORM golang:${GO_VERSION} ") {
		t.Errorf("builder stage %q: want golang:${GO_VERSION} on the build platform", froms[0])
	}
	if !regexp.MustCompile(`(?m)^ARG GO_VERSION=1\.26$`).Match(readFile(t, "Dockerfile")) {
		t.Error("Dockerfile: want ARG GO_VERSION=1.26, the go.mod's Go")
	}
	if last := froms[len(froms)-1]; last != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %q, want gcr.io/distroless/static-debian12:nonroot", last)
	}
	if user != "65532:65532" {
		t.Errorf("final stage USER %q, want 65532:65532 (distroless nonroot, numeric so runAsNonRoot can check it)", user)
	}
	if entrypoint != `["/rds-iam-proxy"]` {
		t.Errorf("ENTRYPOINT %s, want the exec form [\"/rds-iam-proxy\"]", entrypoint)
	}
	var cmdArgs []string
	if err := yaml.Unmarshal([]byte(cmd), &cmdArgs); err != nil || len(cmdArgs) == 0 {
		t.Fatalf("CMD %q: want an exec-form list (%v)", cmd, err)
	}
	if out, err := exec.Command(binary(t), cmdArgs...).CombinedOutput(); err != nil {
		t.Errorf("the image's default command %q fails: %v\n%s", cmdArgs, err, out)
	}
}
