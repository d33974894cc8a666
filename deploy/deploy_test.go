package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// testVersion is what the Dockerfile's VERSION build argument is set to
// when the test builds the binary.
const testVersion = "v0.0.0-deploytest"

// manifestFlags lists, per file and subcommand, every flag the packaging
// passes to the binary (arguments, RDS_IAM_PROXY_* variables). The test
// fails when a file uses a flag missing here, or when an entry here is not
// used, so a new flag in a manifest has to be looked at.
var manifestFlags = map[string]map[string][]string{
	"docker-compose.yml": {
		"emulate": {"advertise-host", "backend", "ca-out", "db-users", "engine", "env-out",
			"listen-aws", "listen-mysql", "listen-postgres", "mysql-backend", "mysql-backend-password"},
		"run": {"admin-address", "allow-non-loopback", "log-format", "upstream"},
	},
	"deploy/kubernetes/deployment.yaml":    {"run": {"admin-address", "admin-allow-non-loopback", "config"}},
	"deploy/kubernetes/job.yaml":           {"run": {"admin-address", "admin-allow-non-loopback", "config"}},
	"deploy/systemd/rds-iam-proxy.service": {"run": {"ca-cache-dir", "config"}},
	"deploy/systemd/rds-iam-proxy.env":     {"run": {"log-format", "max-shutdown-delay", "socket-mode"}},
}

// notYetFlags are flags of the fixed CLI design that the manifests use but
// the binary does not have yet. Once the binary has one, the test checks it
// like any other and logs that the entry can go.
var notYetFlags = map[string][]string{}

// upstreamKeys are the keys of an --upstream value.
var upstreamKeys = []string{"name", "engine", "endpoint", "listen", "dial_address", "db_user", "region",
	"role_arn", "tls_mode", "ca_bundle", "max_connections"}

// Config is the --config file format, exactly: decoding with unknown keys
// refused makes a key missing here an error.
type Config struct {
	LogLevel         string     `yaml:"log_level"`
	LogFormat        string     `yaml:"log_format"`
	AdminAddress     string     `yaml:"admin_address"`
	ShutdownAddress  string     `yaml:"shutdown_address"`
	AllowNonLoopback bool       `yaml:"allow_non_loopback"`
	MaxConnections   int        `yaml:"max_connections"`
	HandshakeTimeout string     `yaml:"handshake_timeout"`
	MaxHandshakes    int        `yaml:"max_handshakes"`
	FirstPacket      string     `yaml:"first_packet_timeout"`
	MaxUnanswered    int        `yaml:"max_unanswered_greetings"`
	ConnectTimeout   string     `yaml:"connect_timeout"`
	IdleTimeout      string     `yaml:"idle_timeout"`
	UpstreamTCP      string     `yaml:"upstream_tcp_timeout"`
	MinShutdownDelay string     `yaml:"min_shutdown_delay"`
	MaxShutdownDelay string     `yaml:"max_shutdown_delay"`
	Region           string     `yaml:"region"`
	Profile          string     `yaml:"profile"`
	RoleARN          string     `yaml:"role_arn"`
	TLSMode          string     `yaml:"tls_mode"`
	CABundle         string     `yaml:"ca_bundle"`
	Upstreams        []Upstream `yaml:"upstreams"`
}

// Upstream is one entry of the config file's upstreams.
type Upstream struct {
	Name           string `yaml:"name"`
	Engine         string `yaml:"engine"`
	Endpoint       string `yaml:"endpoint"`
	Listen         string `yaml:"listen"`
	DialAddress    string `yaml:"dial_address"`
	DBUser         string `yaml:"db_user"`
	Region         string `yaml:"region"`
	RoleARN        string `yaml:"role_arn"`
	TLSMode        string `yaml:"tls_mode"`
	TLSServerName  string `yaml:"tls_server_name"`
	CABundle       string `yaml:"ca_bundle"`
	MaxConnections int    `yaml:"max_connections"`
	SocketMode     string `yaml:"socket_mode"`
	LocalInfile    bool   `yaml:"allow_local_infile"`
}

// parseConfig decodes a config file strictly and checks its values.
func parseConfig(t *testing.T, name string, data []byte) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for key, d := range map[string]string{"handshake_timeout": c.HandshakeTimeout, "connect_timeout": c.ConnectTimeout, "first_packet_timeout": c.FirstPacket,
		"idle_timeout": c.IdleTimeout, "min_shutdown_delay": c.MinShutdownDelay, "max_shutdown_delay": c.MaxShutdownDelay,
		"upstream_tcp_timeout": c.UpstreamTCP} {
		if d != "" {
			if _, err := time.ParseDuration(d); err != nil {
				t.Errorf("%s: %s: %v", name, key, err)
			}
		}
	}
	if len(c.Upstreams) == 0 {
		t.Errorf("%s: no upstreams", name)
	}
	names := map[string]bool{}
	for i, u := range c.Upstreams {
		if u.Name == "" || names[u.Name] {
			t.Errorf("%s: upstream %d: name %q empty or repeated", name, i, u.Name)
		}
		names[u.Name] = true
		if u.Engine != "postgres" && u.Engine != "mysql" {
			t.Errorf("%s: upstream %q: engine %q", name, u.Name, u.Engine)
		}
		if _, _, err := net.SplitHostPort(u.Endpoint); err != nil {
			t.Errorf("%s: upstream %q: endpoint: %v", name, u.Name, err)
		}
		if u.SocketMode != "" {
			if _, err := strconv.ParseUint(u.SocketMode, 8, 32); err != nil {
				t.Errorf("%s: upstream %q: socket_mode %q is not octal", name, u.Name, u.SocketMode)
			}
		}
		if !isLocalListen(u.Listen) && !c.AllowNonLoopback {
			t.Errorf("%s: upstream %q listens on %q, not loopback or unix, without allow_non_loopback", name, u.Name, u.Listen)
		}
	}
	return c
}

// isLocalListen reports whether a listen value is a unix socket or a
// loopback address.
func isLocalListen(l string) bool {
	if strings.HasPrefix(l, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(l)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file into maps.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

// decodeInto decodes a YAML file (one document) into v strictly. The
// Kubernetes and compose schemas are not vendored here: the structs below
// name the subset of their fields these files use, so a misspelt or
// misplaced key fails.
func decodeInto(t *testing.T, rel string, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// The binary, built once with the Dockerfile's command.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
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

// shellWords splits a command line as a POSIX shell would, for the simple
// quoting these files use: blanks, '...', "..." and backslash escapes.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				w.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			i = j
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
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

// binary builds the proxy as the Dockerfile does, once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rds-iam-proxy-deploy-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "rds-iam-proxy")
		var df []byte
		if df, buildErr = os.ReadFile(filepath.Join(repoRoot, "Dockerfile")); buildErr != nil {
			return
		}
		var b dockerBuild
		if b, buildErr = dockerfileBuild(string(df)); buildErr != nil {
			return
		}
		args := make([]string, len(b.args))
		for i, a := range b.args {
			args[i] = expandBuildArgs(a)
			if i > 0 && b.args[i-1] == "-o" {
				args[i] = binPath
			}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		cmd.Env = os.Environ()
		for _, kv := range b.env {
			cmd.Env = append(cmd.Env, expandBuildArgs(kv))
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
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

// TestDockerignoreKeepsSources checks that the build context keeps every
// file the build needs and leaves out .git.
func TestDockerignoreKeepsSources(t *testing.T) {
	var patterns []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ".dockerignore")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf(".dockerignore: exceptions (%q) are not understood by this test", l)
			}
			patterns = append(patterns, strings.TrimPrefix(path.Clean(l), "/"))
		}
	}
	ignored := func(p string) bool {
		for _, pat := range patterns {
			for q := p; q != "." && q != "/"; q = path.Dir(q) {
				if ok, _ := path.Match(pat, q); ok {
					return true
				}
				if rest, ok := strings.CutPrefix(pat, "**/"); ok {
					parts := strings.Split(q, "/")
					for i := range parts {
						if ok, _ := path.Match(rest, strings.Join(parts[i:], "/")); ok {
							return true
						}
					}
				}
			}
		}
		return false
	}
	if !ignored(".git") {
		t.Error(".dockerignore does not leave out .git")
	}
	n := 0
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "go.mod" || rel == "go.sum" || strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") {
			n++
			if ignored(rel) {
				t.Errorf(".dockerignore leaves out %s, which the build needs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d Go files under %s", n, repoRoot)
	}
}

// Flags.

var helpFlagRE = regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][-A-Za-z0-9]*)`)

var (
	helpMu    sync.Mutex
	helpCache = map[string][]string{}
)

// binaryFlags returns the flags of a subcommand, from its --help.
func binaryFlags(t *testing.T, cmd string) []string {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if f, ok := helpCache[cmd]; ok {
		return f
	}
	c := exec.Command(binary(t), cmd, "--help")
	c.Env = []string{"PATH=" + os.Getenv("PATH")} // no RDS_IAM_PROXY_* from the test's environment
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", cmd, err, out)
	}
	var flags []string
	for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("%s --help lists no flags:\n%s", cmd, out)
	}
	helpCache[cmd] = flags
	return flags
}

// argFlags returns the subcommand (default run) and the flag names of an
// argument list as the binary would see it.
func argFlags(args []string) (cmd string, flags []string) {
	cmd = "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			flags = append(flags, name)
		}
	}
	return cmd, flags
}

// envFlag turns RDS_IAM_PROXY_MAX_SHUTDOWN_DELAY into max-shutdown-delay.
func envFlag(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "RDS_IAM_PROXY_")
	return strings.ToLower(strings.ReplaceAll(rest, "_", "-")), ok
}

// Compose, partially.
type compose struct {
	Name     string `yaml:"name"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   []string          `yaml:"depends_on"`
		Restart     string            `yaml:"restart"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

const ourImage = "rds-iam-proxy:local"

// Kubernetes, partially.
type k8sContainer struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	Command       []string `yaml:"command"`
	Args          []string `yaml:"args"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Env           []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		RunAsGroup               *int  `yaml:"runAsGroup"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	FailureThreshold int `yaml:"failureThreshold"`
	PeriodSeconds    int `yaml:"periodSeconds"`
}

type k8sPodSpec struct {
	ServiceAccountName            string         `yaml:"serviceAccountName"`
	RestartPolicy                 string         `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
	InitContainers                []k8sContainer `yaml:"initContainers"`
	Containers                    []k8sContainer `yaml:"containers"`
	SecurityContext               struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		FSGroup        *int  `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type k8sWorkload struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas                *int `yaml:"replicas"`
		BackoffLimit            *int `yaml:"backoffLimit"`
		TTLSecondsAfterFinished *int `yaml:"ttlSecondsAfterFinished"`
		Selector                struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func isOurs(image string) bool {
	return image == ourImage || strings.Contains(image, "/rds-iam-proxy:") || strings.HasPrefix(image, "rds-iam-proxy:")
}

// usedFlags collects, per file and subcommand, the flags the packaging
// passes to the binary.
func usedFlags(t *testing.T) map[string]map[string][]string {
	used := map[string]map[string][]string{}
	add := func(file, cmd string, flags ...string) {
		if used[file] == nil {
			used[file] = map[string][]string{}
		}
		for _, f := range flags {
			if !slices.Contains(used[file][cmd], f) {
				used[file][cmd] = append(used[file][cmd], f)
			}
		}
	}
	var c compose
	decodeInto(t, "docker-compose.yml", &c)
	for _, s := range c.Services {
		if isOurs(s.Image) {
			cmd, flags := argFlags(s.Command)
			add("docker-compose.yml", cmd, flags...)
			for k := range s.Environment {
				if f, ok := envFlag(k); ok {
					add("docker-compose.yml", cmd, f)
				}
			}
		}
	}
	for _, file := range []string{"deploy/kubernetes/deployment.yaml", "deploy/kubernetes/job.yaml"} {
		var w k8sWorkload
		decodeInto(t, file, &w)
		for _, ctr := range slices.Concat(w.Spec.Template.Spec.InitContainers, w.Spec.Template.Spec.Containers) {
			if !isOurs(ctr.Image) {
				continue
			}
			cmd, flags := argFlags(slices.Concat(ctr.Command, ctr.Args))
			add(file, cmd, flags...)
			for _, e := range ctr.Env {
				if f, ok := envFlag(e.Name); ok {
					add(file, cmd, f)
				}
			}
		}
	}
	unit := systemdUnit(t)
	execStart, err := shellWords(unit["Service"]["ExecStart"][0])
	if err != nil {
		t.Fatal(err)
	}
	cmd, flags := argFlags(execStart[1:])
	add("deploy/systemd/rds-iam-proxy.service", cmd, flags...)
	for k := range envFile(t, "deploy/systemd/rds-iam-proxy.env") {
		if f, ok := envFlag(k); ok {
			add("deploy/systemd/rds-iam-proxy.env", cmd, f)
		}
	}
	for _, m := range used {
		for _, fl := range m {
			slices.Sort(fl)
		}
	}
	return used
}

// TestManifestFlagsExist checks that the flags the packaging uses are the
// ones listed in manifestFlags, and that each exists in the binary's --help
// for its subcommand or is listed in notYetFlags.
func TestManifestFlagsExist(t *testing.T) {
	used := usedFlags(t)
	for file, cmds := range used {
		for cmd, flags := range cmds {
			want := slices.Sorted(slices.Values(manifestFlags[file][cmd]))
			if !slices.Equal(flags, want) {
				t.Errorf("%s passes %s the flags %q; manifestFlags lists %q", file, cmd, flags, want)
			}
		}
	}
	for file, cmds := range manifestFlags {
		for cmd := range cmds {
			if used[file][cmd] == nil {
				t.Errorf("manifestFlags lists %s %s, which passes no flags", file, cmd)
			}
		}
	}
	pending := map[string]bool{}
	for file, cmds := range used {
		for cmd, flags := range cmds {
			have := binaryFlags(t, cmd)
			for _, f := range flags {
				switch {
				case slices.Contains(have, f):
					if slices.Contains(notYetFlags[cmd], f) && !pending[cmd+" --"+f] {
						t.Logf("%s --%s exists now: remove it from notYetFlags", cmd, f)
					}
				case slices.Contains(notYetFlags[cmd], f):
					pending[cmd+" --"+f] = true
				default:
					t.Errorf("%s uses %s --%s, which the binary does not have (rds-iam-proxy %s --help) and notYetFlags does not list", file, cmd, f, cmd)
				}
			}
		}
	}
	for cmd, flags := range notYetFlags {
		for _, f := range flags {
			used := false
			for _, cmds := range manifestFlags {
				used = used || slices.Contains(cmds[cmd], f)
			}
			if !used {
				t.Errorf("notYetFlags lists %s --%s, which no manifest uses", cmd, f)
			}
		}
	}
	t.Logf("flags the manifests use that the binary does not have yet: %v", slices.Sorted(func(yield func(string) bool) {
		for k := range pending {
			if !yield(k) {
				return
			}
		}
	}))
}

// TestExampleConfig parses deploy/rds-iam-proxy.example.yaml strictly:
// every key must be one of the config format's. It has a Postgres upstream
// on a unix socket directory and a MySQL one on loopback TCP.
func TestExampleConfig(t *testing.T) {
	c := parseConfig(t, "deploy/rds-iam-proxy.example.yaml", readFile(t, "deploy/rds-iam-proxy.example.yaml"))
	if len(c.Upstreams) != 2 {
		t.Fatalf("%d upstreams, want 2", len(c.Upstreams))
	}
	pg, my := c.Upstreams[0], c.Upstreams[1]
	if pg.Engine != "postgres" || !strings.HasPrefix(pg.Listen, "unix:/") || strings.HasSuffix(pg.Listen, ".sock") {
		t.Errorf("first upstream %+v: want postgres on a unix socket directory", pg)
	}
	if my.Engine != "mysql" || strings.HasPrefix(my.Listen, "unix:") || !isLocalListen(my.Listen) {
		t.Errorf("second upstream %+v: want mysql on loopback TCP", my)
	}
	// Strictness: an unknown key at either level fails.
	for _, bad := range []string{"bogus_key: 1\n", "upstreams:\n  - name: a\n    engine: postgres\n    endpoint: h:5432\n    listen: 127.0.0.1:1\n    bogus: 1\n"} {
		var v Config
		dec := yaml.NewDecoder(strings.NewReader(bad))
		dec.KnownFields(true)
		if err := dec.Decode(&v); err == nil {
			t.Errorf("strict decode accepted an unknown key in %q", bad)
		}
	}
}

// TestKubernetesManifests checks the Deployment and the Job: the proxy is a
// native sidecar with probes on its admin port, everything runs non-root
// with a read-only root and no capabilities, IRSA through the service
// account, the config from the ConfigMap, sockets in a shared emptyDir.
func TestKubernetesManifests(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(repoRoot, "deploy/kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			t.Errorf("deploy/kubernetes/%s: not a .yaml file", e.Name())
			continue
		}
		for _, d := range yamlDocs(t, "deploy/kubernetes/"+e.Name()) {
			md, _ := d["metadata"].(map[string]any)
			if d["apiVersion"] == nil || d["kind"] == nil || md == nil || md["name"] == nil {
				t.Errorf("deploy/kubernetes/%s: a document without apiVersion, kind or metadata.name", e.Name())
				continue
			}
			kinds[e.Name()] = fmt.Sprint(d["kind"])
		}
	}
	wantKinds := map[string]string{"configmap.yaml": "ConfigMap", "deployment.yaml": "Deployment", "job.yaml": "Job",
		"networkpolicy.yaml": "NetworkPolicy", "serviceaccount.yaml": "ServiceAccount"}
	for f, k := range wantKinds {
		if kinds[f] != k {
			t.Errorf("deploy/kubernetes/%s: kind %q, want %q", f, kinds[f], k)
		}
	}

	var sa struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
	}
	decodeInto(t, "deploy/kubernetes/serviceaccount.yaml", &sa)
	if !regexp.MustCompile(`^arn:aws:iam::\d{12}:role/.+`).MatchString(sa.Metadata.Annotations["eks.amazonaws.com/role-arn"]) {
		t.Errorf("serviceaccount.yaml: eks.amazonaws.com/role-arn %q is not a role ARN", sa.Metadata.Annotations["eks.amazonaws.com/role-arn"])
	}
	var cm struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	decodeInto(t, "deploy/kubernetes/configmap.yaml", &cm)
	if len(cm.Data) != 1 {
		t.Fatalf("configmap.yaml: %d data keys, want the one config file", len(cm.Data))
	}
	var cfgKey string
	var cfg Config
	for k, v := range cm.Data {
		cfgKey, cfg = k, parseConfig(t, "configmap.yaml "+k, []byte(v))
	}
	if cfg.RoleARN != "" || cfg.Profile != "" {
		t.Errorf("configmap.yaml: role_arn/profile set; the identity is the IRSA role")
	}

	var deploy k8sWorkload
	decodeInto(t, "deploy/kubernetes/deployment.yaml", &deploy)
	var job k8sWorkload
	decodeInto(t, "deploy/kubernetes/job.yaml", &job)
	if deploy.Kind != "Deployment" || job.Kind != "Job" {
		t.Fatalf("kinds %q, %q", deploy.Kind, job.Kind)
	}
	for _, w := range []k8sWorkload{deploy, job} {
		t.Run(w.Kind, func(t *testing.T) {
			checkPod(t, w.Kind, w.Spec.Template.Spec, sa.Metadata.Name, cm.Metadata.Name, cfgKey, cfg)
		})
	}
	if !mapContains(deploy.Spec.Template.Metadata.Labels, deploy.Spec.Selector.MatchLabels) || len(deploy.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("deployment.yaml: the selector %v does not match the pod labels %v", deploy.Spec.Selector.MatchLabels, deploy.Spec.Template.Metadata.Labels)
	}
	if p := job.Spec.Template.Spec.RestartPolicy; p != "Never" && p != "OnFailure" {
		t.Errorf("job.yaml: pod restartPolicy %q, want Never or OnFailure", p)
	}

	type netpol struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				From  []any `yaml:"from"`
				Ports []struct {
					Port     any    `yaml:"port"`
					Protocol string `yaml:"protocol"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	// Every pod that runs the sidecar is selected by a policy that keeps
	// other pods off its admin port.
	covered := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "deploy/kubernetes/networkpolicy.yaml")))
	dec.KnownFields(true)
	for {
		var np netpol
		if err := dec.Decode(&np); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("networkpolicy.yaml: %v", err)
		}
		if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
			t.Errorf("networkpolicy.yaml %s: no Ingress policy type", np.Metadata.Name)
		}
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 0 {
				t.Errorf("networkpolicy.yaml %s: an ingress rule admits every port, the admin port too", np.Metadata.Name)
			}
			for _, p := range r.Ports {
				if s := fmt.Sprint(p.Port); s == "admin" || s == "9801" {
					t.Errorf("networkpolicy.yaml %s admits other pods to the admin port (/metrics)", np.Metadata.Name)
				}
			}
		}
		for _, w := range []k8sWorkload{deploy, job} {
			if len(np.Spec.PodSelector.MatchLabels) > 0 && mapContains(w.Spec.Template.Metadata.Labels, np.Spec.PodSelector.MatchLabels) {
				covered[w.Kind] = true
			}
		}
	}
	for _, w := range []k8sWorkload{deploy, job} {
		if !covered[w.Kind] {
			t.Errorf("networkpolicy.yaml selects no %s pods (labels %v): their admin port is open to other pods", w.Kind, w.Spec.Template.Metadata.Labels)
		}
	}
}

func mapContains(m, sub map[string]string) bool {
	for k, v := range sub {
		if m[k] != v {
			return false
		}
	}
	return true
}

// checkPod checks one pod template that runs the proxy as a native sidecar.
func checkPod(t *testing.T, kind string, spec k8sPodSpec, saName, cmName, cfgKey string, cfg Config) {
	if spec.ServiceAccountName != saName {
		t.Errorf("serviceAccountName %q, want %q (IRSA)", spec.ServiceAccountName, saName)
	}
	if spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if spec.SecurityContext.FSGroup == nil {
		t.Error("pod securityContext.fsGroup unset: the sockets' group and the IRSA token's readability depend on it")
	}
	for _, c := range spec.Containers {
		if isOurs(c.Image) {
			t.Errorf("container %q runs the proxy as a plain container: it must be a native sidecar (initContainers, restartPolicy: Always)", c.Name)
		}
	}
	var sidecar *k8sContainer
	for i, c := range spec.InitContainers {
		if isOurs(c.Image) {
			sidecar = &spec.InitContainers[i]
		}
	}
	if sidecar == nil {
		t.Fatal("no rds-iam-proxy init container")
	}
	if sidecar.RestartPolicy != "Always" {
		t.Errorf("sidecar restartPolicy %q, want Always (a native sidecar, Kubernetes 1.29+)", sidecar.RestartPolicy)
	}
	args := slices.Concat(sidecar.Command, sidecar.Args)
	admin := flagValue(args, "admin-address")
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		t.Fatalf("--admin-address %q: %v", admin, err)
	}
	if ip := net.ParseIP(host); (host == "" || ip != nil && ip.IsUnspecified()) && !slices.Contains(args, "--admin-allow-non-loopback") {
		t.Errorf("--admin-address %s without --admin-allow-non-loopback", admin)
	}
	if slices.Contains(args, "--allow-non-loopback") {
		t.Errorf("the sidecar passes --allow-non-loopback: its database listeners must stay on loopback (use --admin-allow-non-loopback for the probes)")
	}
	adminPort, _ := strconv.Atoi(port)
	probes := map[string]*k8sProbe{"/startup": sidecar.StartupProbe, "/liveness": sidecar.LivenessProbe}
	if kind == "Deployment" {
		probes["/readiness"] = sidecar.ReadinessProbe
	}
	for path, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no httpGet probe for %s", path)
			continue
		}
		if p.HTTPGet.Path != path {
			t.Errorf("probe for %s has path %q", path, p.HTTPGet.Path)
		}
		if got := probePort(*sidecar, p.HTTPGet.Port); got != adminPort {
			t.Errorf("probe %s on port %v (%d), the admin address is %s", path, p.HTTPGet.Port, got, admin)
		}
	}
	if sidecar.StartupProbe != nil && sidecar.StartupProbe.PeriodSeconds*max(sidecar.StartupProbe.FailureThreshold, 1) < 10 {
		t.Error("startupProbe gives the proxy under 10s to start")
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("container %q: securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL", c.Name, sc)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("container %q: no numeric non-root runAsUser", c.Name)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %q: resources %+v: want cpu and memory requests and a memory limit", c.Name, c.Resources)
		}
	}
	// The config file comes from the ConfigMap.
	cfgPath := flagValue(args, "config")
	vols := map[string]string{} // volume -> configMap name or "emptyDir"
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			vols[v.Name] = "configMap:" + v.ConfigMap.Name
		case v.EmptyDir != nil:
			vols[v.Name] = "emptyDir"
		}
	}
	mounted := func(c k8sContainer, p string) string {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/") {
				return vols[m.Name]
			}
		}
		return ""
	}
	if mounted(*sidecar, cfgPath) != "configMap:"+cmName || path.Base(cfgPath) != cfgKey {
		t.Errorf("--config %s is not the ConfigMap %s's key %s", cfgPath, cmName, cfgKey)
	}
	// Unix sockets: in an emptyDir the app's containers mount too.
	for _, u := range cfg.Upstreams {
		dir, ok := strings.CutPrefix(u.Listen, "unix:")
		if !ok {
			continue
		}
		if u.Engine == "mysql" {
			dir = path.Dir(dir)
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			if c.RestartPolicy == "" && mounted(c, dir) != "emptyDir" {
				t.Errorf("container %q does not mount %s (upstream %s's socket) from an emptyDir", c.Name, dir, u.Name)
			}
		}
		if mounted(*sidecar, dir) != "emptyDir" {
			t.Errorf("the sidecar does not mount %s from an emptyDir", dir)
		}
	}
}

// flagValue returns the value of --name in args (--name=v or --name v).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// probePort resolves a probe's port (a number or a port name).
func probePort(c k8sContainer, port any) int {
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return -1
}

// parseUpstream splits an --upstream value into its keys.
func parseUpstream(t *testing.T, v string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || !slices.Contains(upstreamKeys, k) {
			t.Errorf("--upstream %q: %q is not one of the keys %q", v, kv, upstreamKeys)
		}
		m[k] = val
	}
	return m
}

// TestCompose checks docker-compose.yml: the services, who publishes what,
// that the proxy's upstreams point at the emulator's fronts and trust its CA,
// and that the users and passwords agree with the init scripts.
func TestCompose(t *testing.T) {
	var c compose
	decodeInto(t, "docker-compose.yml", &c)
	for _, name := range []string{"postgres", "mysql", "emulator", "proxy"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml: no service %q", name)
		}
	}
	if c.Services["postgres"].Image != "postgres:16" || c.Services["mysql"].Image != "mariadb:11" {
		t.Errorf("database images %q, %q", c.Services["postgres"].Image, c.Services["mysql"].Image)
	}
	em, px := c.Services["emulator"], c.Services["proxy"]
	if em.Image != ourImage || px.Image != ourImage || em.Build == nil {
		t.Errorf("the emulator (build: ., image %q) and the proxy (image %q) must run the image built here, %s", em.Image, px.Image, ourImage)
	}
	for name, s := range c.Services {
		if name != "proxy" && len(s.Ports) > 0 {
			t.Errorf("service %s publishes ports %q: only the proxy should", name, s.Ports)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s mounts the volume %q, not declared at the top level", name, src)
			}
		}
	}
	// The proxy: every published port on the host's loopback, every
	// container port one of its listeners or the admin port.
	listenPorts := map[string]bool{}
	_, adminPort, _ := net.SplitHostPort(flagValue(px.Command, "admin-address"))
	listenPorts[adminPort] = true
	var upstreams []map[string]string
	for i, a := range px.Command {
		v, ok := strings.CutPrefix(a, "--upstream=")
		if !ok && a == "--upstream" && i+1 < len(px.Command) {
			v, ok = px.Command[i+1], true
		}
		if ok {
			u := parseUpstream(t, v)
			upstreams = append(upstreams, u)
			_, p, err := net.SplitHostPort(u["listen"])
			if err != nil {
				t.Errorf("upstream %s listen %q: %v", u["name"], u["listen"], err)
			}
			listenPorts[p] = true
		}
	}
	if !slices.Contains(px.Command, "--allow-non-loopback") {
		t.Error("the proxy listens on 0.0.0.0 without --allow-non-loopback")
	}
	for _, p := range px.Ports {
		parts := strings.Split(p, ":")
		if len(parts) != 3 || parts[0] != "127.0.0.1" || !listenPorts[parts[2]] {
			t.Errorf("proxy publishes %q: want 127.0.0.1:HOSTPORT:PORT of one of its listeners", p)
		}
	}
	// The emulator's fronts and AWS, as the proxy must reach them.
	emListen := func(flag string) string {
		_, p, err := net.SplitHostPort(flagValue(em.Command, flag))
		if err != nil {
			t.Fatalf("emulator --%s: %v", flag, err)
		}
		return p
	}
	host := flagValue(em.Command, "advertise-host")
	if _, ok := c.Services[host]; !ok {
		t.Errorf("emulator --advertise-host %q is not a service name", host)
	}
	engines := map[string]bool{}
	shared := strings.TrimSuffix(strings.SplitN(px.Volumes[0], ":", 3)[1], "/")
	for _, u := range upstreams {
		engines[u["engine"]] = true
		want := net.JoinHostPort(host, emListen("listen-"+u["engine"]))
		if u["dial_address"] != want {
			t.Errorf("upstream %s dial_address %q, want the emulator's %s front %s", u["name"], u["dial_address"], u["engine"], want)
		}
		if u["ca_bundle"] != flagValue(em.Command, "ca-out") || !strings.HasPrefix(u["ca_bundle"], shared+"/") {
			t.Errorf("upstream %s ca_bundle %q: want the emulator's --ca-out %q in the shared volume %s", u["name"], u["ca_bundle"], flagValue(em.Command, "ca-out"), shared)
		}
	}
	if !engines["postgres"] || !engines["mysql"] || len(upstreams) != 2 {
		t.Errorf("proxy upstreams %v: want one postgres and one mysql", upstreams)
	}
	if !strings.HasSuffix(px.Volumes[0], ":ro") || !slices.ContainsFunc(em.Volumes, func(v string) bool {
		return strings.HasPrefix(v, strings.SplitN(px.Volumes[0], ":", 2)[0]+":"+shared)
	}) {
		t.Errorf("the proxy's volume %q: want the emulator's volume, read-only, at the same path", px.Volumes[0])
	}
	for _, k := range []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_ENDPOINT_URL_STS"} {
		u, err := url.Parse(px.Environment[k])
		if err != nil || u.Hostname() != host || u.Port() != emListen("listen-aws") {
			t.Errorf("proxy %s=%q: want http://%s:%s", k, px.Environment[k], host, emListen("listen-aws"))
		}
	}
	for k := range px.Environment {
		if k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY" || k == "AWS_PROFILE" {
			t.Errorf("proxy sets %s: the credentials must come from the emulated IMDS", k)
		}
	}
	// The backends: the users the emulator may connect as exist, and the
	// MySQL password is the one the emulator logs in with.
	pgInit := string(readFile(t, "deploy/compose/postgres-init.sql"))
	myInit := string(readFile(t, "deploy/compose/mysql-init.sql"))
	for _, u := range strings.Split(flagValue(em.Command, "db-users"), ",") {
		if !regexp.MustCompile(`CREATE ROLE ` + regexp.QuoteMeta(u) + ` LOGIN IN ROLE rds_iam;`).MatchString(pgInit) {
			t.Errorf("postgres-init.sql does not create %s as a member of rds_iam", u)
		}
		if !strings.Contains(myInit, "CREATE USER '"+u+"'@'%' IDENTIFIED BY '"+flagValue(em.Command, "mysql-backend-password")+"'") {
			t.Errorf("mysql-init.sql does not create %s with the emulator's --mysql-backend-password", u)
		}
	}
	if flagValue(em.Command, "backend") != "postgres:5432" || flagValue(em.Command, "mysql-backend") != "mysql:3306" {
		t.Errorf("emulator backends %q, %q: want the postgres and mysql services", flagValue(em.Command, "backend"), flagValue(em.Command, "mysql-backend"))
	}
}

// TestComposeEmulatorRuns runs the compose emulator command (on random
// ports, files in a temp dir) and checks that it listens on 0.0.0.0, that
// the URLs it prints and writes to --env-out use the advertised host, that
// they are the proxy's AWS environment in compose, and that the endpoints
// it serves are the proxy's upstreams'. It ends with exit 0 on SIGTERM.
func TestComposeEmulatorRuns(t *testing.T) {
	var c compose
	decodeInto(t, "docker-compose.yml", &c)
	em, px := c.Services["emulator"], c.Services["proxy"]
	dir := t.TempDir()
	envOut, caOut := filepath.Join(dir, "aws.env"), filepath.Join(dir, "ca.pem")
	composePorts := map[string]string{}
	var args []string
	for _, a := range em.Command {
		name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "listen-aws", "listen-postgres", "listen-mysql":
			host, port, err := net.SplitHostPort(v)
			if err != nil || host != "0.0.0.0" {
				t.Fatalf("emulator %s: want 0.0.0.0:PORT", a)
			}
			composePorts[name] = port
			a = "--" + name + "=0.0.0.0:0"
		case "env-out":
			a = "--env-out=" + envOut
		case "ca-out":
			a = "--ca-out=" + caOut
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var envData []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("emulate ended early: %v\n%s", err, stderr.String())
		default:
		}
		if b, err := os.ReadFile(envOut); err == nil && len(b) > 0 {
			envData = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulate wrote no %s:\n%s", envOut, stderr.String())
		}
	}
	// The command lines come last: wait for both.
	for deadline := time.Now().Add(5 * time.Second); strings.Count(stdout.String(), "\nrds-iam-proxy ") < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("emulate printed:\n%s", stdout.String())
		}
	}
	printed := stdout.String()

	host := flagValue(em.Command, "advertise-host")
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(envData)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, " '\"$") {
			t.Fatalf("env file line %q: want KEY=value without quoting", line)
		}
		env[k] = v
		if !strings.Contains(printed, "export "+k+"="+v+"\n") {
			t.Errorf("%s=%s is in the env file but not printed:\n%s", k, v, printed)
		}
	}
	awsURL, err := url.Parse(env["AWS_ENDPOINT_URL_STS"])
	if err != nil || awsURL.Hostname() != host {
		t.Fatalf("AWS_ENDPOINT_URL_STS=%q: want the advertised host %s", env["AWS_ENDPOINT_URL_STS"], host)
	}
	// The file, with compose's fixed AWS port, is the proxy's environment.
	fixed := map[string]string{}
	for k, v := range env {
		fixed[k] = strings.ReplaceAll(v, net.JoinHostPort(host, awsURL.Port()), net.JoinHostPort(host, composePorts["listen-aws"]))
	}
	if fmt.Sprint(fixed) != fmt.Sprint(px.Environment) {
		t.Errorf("emulate's env file (compose ports) %v\n differs from the proxy's compose environment %v", fixed, px.Environment)
	}
	dialed := 0
	checkDial := func(hostPort string) {
		h, p, err := net.SplitHostPort(hostPort)
		if err != nil || h != host {
			t.Errorf("printed address %q: want the advertised host %s", hostPort, host)
			return
		}
		// Listening on 0.0.0.0: reachable on loopback too.
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", p), 2*time.Second)
		if err != nil {
			t.Errorf("%s: %v", hostPort, err)
			return
		}
		conn.Close()
		dialed++
	}
	checkDial(awsURL.Host)
	endpoints := map[string]string{}
	for _, a := range px.Command {
		if v, ok := strings.CutPrefix(a, "--upstream="); ok {
			u := parseUpstream(t, v)
			endpoints[u["engine"]] = u["endpoint"]
		}
	}
	lineRE := regexp.MustCompile(`(?m)^rds-iam-proxy --engine (\S+) --endpoint (\S+) --dial-address (\S+) --ca-bundle (\S+)$`)
	lines := lineRE.FindAllStringSubmatch(printed, -1)
	if len(lines) != 2 {
		t.Fatalf("want two proxy command lines, got:\n%s", printed)
	}
	for _, m := range lines {
		if endpoints[m[1]] != m[2] {
			t.Errorf("emulate serves %s at %s; compose's proxy upstream has endpoint %q", m[1], m[2], endpoints[m[1]])
		}
		checkDial(m[3])
		if m[4] != caOut {
			t.Errorf("printed --ca-bundle %s, want %s", m[4], caOut)
		}
	}
	if dialed != 3 {
		t.Errorf("reached %d of the emulator's 3 listeners", dialed)
	}
	pemData, err := os.ReadFile(caOut)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemData); b == nil || b.Type != "CERTIFICATE" {
		t.Errorf("--ca-out wrote no PEM certificate: %q", pemData)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("emulate after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Error("emulate did not end within 10s of SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEmulateMySQLBackendNeedsPostgres: --mysql-backend adds a front beside
// a Postgres one, and is refused with --engine mysql.
func TestEmulateMySQLBackendNeedsPostgres(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary(t), "emulate", "--engine=mysql", "--backend=127.0.0.1:1", "--backend-password=x",
		"--mysql-backend=127.0.0.1:2", "--ca-out="+filepath.Join(dir, "ca.pem"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "--mysql-backend") {
		t.Errorf("emulate --engine mysql --mysql-backend: %v\n%s", err, out)
	}
}

// systemdUnit parses the unit file into section -> key -> values.
func systemdUnit(t *testing.T) map[string]map[string][]string {
	t.Helper()
	unit := map[string]map[string][]string{}
	var section string
	var cont string
	for _, line := range strings.Split(string(readFile(t, "deploy/systemd/rds-iam-proxy.service")), "\n") {
		line = strings.TrimSpace(line)
		if c, ok := strings.CutSuffix(line, "\\"); ok {
			cont += c + " "
			continue
		}
		line, cont = cont+line, ""
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("rds-iam-proxy.service: bad line %q", line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

// envFile parses an EnvironmentFile: KEY=value lines and comments.
func envFile(t *testing.T, rel string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(string(readFile(t, rel)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Fatalf("%s: bad line %q", rel, line)
		}
		env[k] = v
	}
	return env
}

// TestSystemdUnit checks the unit: a dynamic user, hardening, restarts on
// failure, a stop timeout above the drain, the runtime directory the
// example config's unix sockets live in.
func TestSystemdUnit(t *testing.T) {
	unit := systemdUnit(t)
	svc := unit["Service"]
	one := func(k string) string {
		if len(svc[k]) != 1 {
			t.Errorf("[Service] %s: %q, want one value", k, svc[k])
			return ""
		}
		return svc[k][0]
	}
	for k, want := range map[string]string{
		"Type": "exec", "DynamicUser": "yes", "Restart": "on-failure", "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"RuntimeDirectory": "rds-iam-proxy", "CacheDirectory": "rds-iam-proxy", "KillSignal": "SIGTERM",
	} {
		if got := one(k); got != want {
			t.Errorf("[Service] %s=%q, want %q", k, got, want)
		}
	}
	if _, ok := svc["SuccessExitStatus"]; ok {
		t.Error("SuccessExitStatus set: the proxy exits 0 after a clean drain, and 1 must stay a failure")
	}
	if !slices.Contains(unit["Install"]["WantedBy"], "multi-user.target") {
		t.Error("[Install] WantedBy=multi-user.target missing")
	}
	words, err := shellWords(one("ExecStart"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(words[0]) || path.Base(words[0]) != "rds-iam-proxy" {
		t.Errorf("ExecStart runs %q", words[0])
	}
	if got := flagValue(words, "ca-cache-dir"); got != "/var/cache/"+one("CacheDirectory") {
		t.Errorf("--ca-cache-dir %q is not the CacheDirectory", got)
	}
	if ef := one("EnvironmentFile"); ef != "-/etc/rds-iam-proxy/rds-iam-proxy.env" {
		t.Errorf("EnvironmentFile=%q", ef)
	}
	// The stop timeout covers the example config's shutdown delays (or
	// the env file's, which win over the config).
	cfg := parseConfig(t, "deploy/rds-iam-proxy.example.yaml", readFile(t, "deploy/rds-iam-proxy.example.yaml"))
	env := envFile(t, "deploy/systemd/rds-iam-proxy.env")
	maxDelay, minDelay := cfg.MaxShutdownDelay, cfg.MinShutdownDelay
	if v := env["RDS_IAM_PROXY_MAX_SHUTDOWN_DELAY"]; v != "" {
		maxDelay = v
	}
	if v := env["RDS_IAM_PROXY_MIN_SHUTDOWN_DELAY"]; v != "" {
		minDelay = v
	}
	need := parseDur(t, maxDelay) + parseDur(t, minDelay)
	stop := parseDur(t, one("TimeoutStopSec"))
	if stop < need+5*time.Second {
		t.Errorf("TimeoutStopSec=%s: want at least 5s above min+max shutdown delay %s", stop, need)
	}
	// The example config's unix sockets live in the RuntimeDirectory.
	for _, u := range cfg.Upstreams {
		if dir, ok := strings.CutPrefix(u.Listen, "unix:"); ok {
			if u.Engine == "mysql" {
				dir = path.Dir(dir)
			}
			if dir != "/run/"+one("RuntimeDirectory") {
				t.Errorf("upstream %s listens in %s, not the RuntimeDirectory /run/%s", u.Name, dir, one("RuntimeDirectory"))
			}
		}
	}
	if flagValue(words, "config") != "/etc/"+one("ConfigurationDirectory")+"/rds-iam-proxy.yaml" {
		t.Errorf("--config %q is not in the ConfigurationDirectory", flagValue(words, "config"))
	}
}

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second // systemd: a bare number is seconds
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// TestShutdownEndpointStaysLocal: wherever an example sets where POST
// /quitquitquit is served, it is a unix socket or a loopback address, and
// not the admin address; in the systemd example the socket is in the
// RuntimeDirectory, the one place the service may create it.
func TestShutdownEndpointStaysLocal(t *testing.T) {
	addrs := map[string]string{}
	example := parseConfig(t, "deploy/rds-iam-proxy.example.yaml", readFile(t, "deploy/rds-iam-proxy.example.yaml"))
	addrs["deploy/rds-iam-proxy.example.yaml"] = example.ShutdownAddress
	var cm struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   map[string]string `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	decodeInto(t, "deploy/kubernetes/configmap.yaml", &cm)
	for k, v := range cm.Data {
		c := parseConfig(t, "configmap.yaml "+k, []byte(v))
		addrs["configmap.yaml "+k] = c.ShutdownAddress
	}
	flag := regexp.MustCompile(`--shutdown-address[= ]"?([^"\s]+)`)
	for _, f := range []string{"deploy/kubernetes/deployment.yaml", "deploy/kubernetes/job.yaml", "docker-compose.yml", "deploy/systemd/rds-iam-proxy.service"} {
		for i, m := range flag.FindAllStringSubmatch(string(readFile(t, f)), -1) {
			addrs[fmt.Sprintf("%s #%d", f, i)] = m[1]
		}
	}
	for where, addr := range addrs {
		if addr != "" && !isLocalListen(addr) {
			t.Errorf("%s: shutdown address %q is neither a unix socket nor loopback", where, addr)
		}
	}
	if example.ShutdownAddress == "" {
		t.Fatal("the example config does not show shutdown_address")
	}
	if example.ShutdownAddress == example.AdminAddress {
		t.Errorf("the example serves /quitquitquit on its admin address %s", example.AdminAddress)
	}
	if dir, ok := strings.CutPrefix(example.ShutdownAddress, "unix:"); ok {
		if want := "/run/" + systemdUnit(t)["Service"]["RuntimeDirectory"][0]; path.Dir(dir) != want {
			t.Errorf("the example's shutdown socket %s is not in the systemd RuntimeDirectory %s", dir, want)
		}
	}
}
