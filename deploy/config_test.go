package deploy

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

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
