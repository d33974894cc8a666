package deploy

import (
	"bytes"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdunit "github.com/coreos/go-systemd/v22/unit"
)

// systemdUnit parses the unit file into section -> key -> values, with
// go-systemd's unit parser (sections, comments, continuation lines as
// systemd reads them). A key given twice keeps both values in order.
func systemdUnit(t *testing.T) map[string]map[string][]string {
	t.Helper()
	const rel = "deploy/systemd/rds-iam-proxy.service"
	opts, err := sdunit.DeserializeOptions(bytes.NewReader(readFile(t, rel)))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	units := map[string]map[string][]string{}
	for _, o := range opts {
		if units[o.Section] == nil {
			units[o.Section] = map[string][]string{}
		}
		units[o.Section][o.Name] = append(units[o.Section][o.Name], o.Value)
	}
	return units
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
