package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

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

var helpFlagRE = regexp.MustCompile(`(?m)^\s+--?([A-Za-z0-9][-A-Za-z0-9]*)`)

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
