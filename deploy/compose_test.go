package deploy

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// compose is the part of the compose file format that docker-compose.yml
// uses; decodeInto refuses any other key.
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

func isOurs(image string) bool {
	return image == ourImage || strings.Contains(image, "/rds-iam-proxy:") || strings.HasPrefix(image, "rds-iam-proxy:")
}

// upstreamKeys are the keys of an --upstream value.
var upstreamKeys = []string{"name", "engine", "endpoint", "listen", "dial_address", "db_user", "region",
	"role_arn", "tls_mode", "ca_bundle", "max_connections"}

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
