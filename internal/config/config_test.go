package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// load runs the whole path the run command takes: a file (when given),
// environment variables, then flags.
func load(t *testing.T, file string, env map[string]string, args ...string) (*Settings, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	if file != "" {
		path := filepath.Join(t.TempDir(), "cfg.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ParseArgs(fs, args, lookup); err != nil {
		return nil, err
	}
	return f.Load()
}

const twoUpstreams = `
log_level: warn
max_connections: 20
max_shutdown_delay: 45s
region: eu-west-1
tls_mode: verify-full
upstreams:
  - name: orders
    engine: postgres
    endpoint: orders.cluster-abc.eu-west-1.rds.amazonaws.com:5432
    listen: unix:/run/rds-iam-proxy
    socket_mode: "0660"
  - engine: mysql
    endpoint: billing.abc.us-east-1.rds.amazonaws.com
    region: us-east-1
    max_connections: 5
`

func TestFileUpstreamsAndDefaults(t *testing.T) {
	s, err := load(t, twoUpstreams, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Upstreams) != 2 {
		t.Fatalf("%d upstreams", len(s.Upstreams))
	}
	pg, my := s.Upstreams[0], s.Upstreams[1]
	if pg.Name != "orders" || pg.Region != "eu-west-1" || pg.Listen != "unix:/run/rds-iam-proxy" {
		t.Errorf("orders: %+v", pg)
	}
	if my.Name != "billing" || my.Region != "us-east-1" || my.Listen != "127.0.0.1:3307" || my.MaxConnections != 5 {
		t.Errorf("billing (name from the endpoint, own region, default listen): %+v", my)
	}
	if s.LogLevel != "warn" || s.MaxConnections != 20 || time.Duration(s.MaxShutdownDelay) != 45*time.Second || time.Duration(s.HandshakeTimeout) != 30*time.Second {
		t.Errorf("settings: %+v", s)
	}
	if mode, err := pg.SocketFileMode(); err != nil || mode != 0o660 || pg.Engine != Postgres || pg.Name != "orders" || time.Duration(s.HandshakeTimeout) != 30*time.Second {
		t.Errorf("orders as launched: mode %o (%v), %+v", mode, err, pg)
	}
}

// TestPrecedence: flags > environment > file > defaults, setting by
// setting; upstreams from the command line replace the file's.
func TestPrecedence(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want func(s *Settings) string // "" when right
	}{
		{"file alone", nil, nil, func(s *Settings) string {
			return check(s.LogLevel == "warn" && s.MaxConnections == 20, "file values")
		}},
		{"env over file", map[string]string{"RDS_IAM_PROXY_LOG_LEVEL": "debug", "RDS_IAM_PROXY_MAX_CONNECTIONS": "7"}, nil, func(s *Settings) string {
			return check(s.LogLevel == "debug" && s.MaxConnections == 7, "env wins over the file")
		}},
		{"flags over env", map[string]string{"RDS_IAM_PROXY_LOG_LEVEL": "debug"}, []string{"--log-level", "error"}, func(s *Settings) string {
			return check(s.LogLevel == "error", "the flag wins over the env")
		}},
		{"env wins over the file's upstreams too", map[string]string{"RDS_IAM_PROXY_REGION": "ap-south-1"}, nil, func(s *Settings) string {
			return check(s.Upstreams[0].Region == "ap-south-1" && s.Upstreams[1].Region == "ap-south-1", "the variable beats a file upstream's own region")
		}},
		{"file default vs file upstream", nil, nil, func(s *Settings) string {
			return check(s.Upstreams[0].Region == "eu-west-1" && s.Upstreams[1].Region == "us-east-1", "within the file the upstream's own value wins")
		}},
		{"flag default vs --upstream's own", nil, []string{"--region", "sa-east-1", "--upstream", "endpoint=a.x.y:5432,region=ca-central-1,listen=127.0.0.1:1", "--upstream", "endpoint=b.x.y:5432,listen=127.0.0.1:2"}, func(s *Settings) string {
			return check(s.Upstreams[0].Region == "ca-central-1" && s.Upstreams[1].Region == "sa-east-1", "an --upstream's own region beats the --region default")
		}},
		{"--upstream replaces RDS_IAM_PROXY_UPSTREAM", map[string]string{"RDS_IAM_PROXY_UPSTREAM": "endpoint=e.x.y:5432,listen=127.0.0.1:3"}, []string{"--upstream", "endpoint=f.x.y:5432,listen=127.0.0.1:4"}, func(s *Settings) string {
			return check(len(s.Upstreams) == 1 && s.Upstreams[0].Name == "f", "the flag replaces the variable")
		}},
		{"flag upstream replaces the file's", nil, []string{"--endpoint", "solo.abc.us-east-1.rds.amazonaws.com:5432", "--listen", "127.0.0.1:7000"}, func(s *Settings) string {
			return check(len(s.Upstreams) == 1 && s.Upstreams[0].Name == "solo" && s.Upstreams[0].Listen == "127.0.0.1:7000" && s.Upstreams[0].Region == "eu-west-1", "one upstream from flags, with the file's defaults")
		}},
		{"--upstream specs", nil, []string{"--upstream", "name=a,engine=mysql,endpoint=a.x.us-east-1.rds.amazonaws.com:3306,listen=127.0.0.1:3400",
			"--upstream", "endpoint=b.x.us-east-1.rds.amazonaws.com,listen=unix:/tmp/b,role_arn=arn:aws:iam::1:role/x,arn:aws:iam::2:role/y"}, func(s *Settings) string {
			return check(len(s.Upstreams) == 2 && s.Upstreams[0].Engine == "mysql" && s.Upstreams[1].Name == "b" &&
				s.Upstreams[1].RoleARN == "arn:aws:iam::1:role/x,arn:aws:iam::2:role/y" && roleCount(s.Upstreams[1]) == 2, "two specs, a role chain")
		}},
		{"RDS_IAM_PROXY_UPSTREAM with several", map[string]string{"RDS_IAM_PROXY_UPSTREAM": "endpoint=a.x.us-east-1.rds.amazonaws.com,listen=127.0.0.1:1; endpoint=b.x.us-east-1.rds.amazonaws.com,listen=127.0.0.1:2"}, nil, func(s *Settings) string {
			return check(len(s.Upstreams) == 2, "two upstreams from one variable")
		}},
		{"legacy --ca-cache-dir", nil, []string{"--ca-cache-dir", "/var/cache/x"}, func(s *Settings) string {
			return check(s.Upstreams[0].CacheDir == "/var/cache/x", "alias of --cache-dir")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := load(t, twoUpstreams, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(s); msg != "" {
				t.Fatalf("%s: %+v", msg, s)
			}
		})
	}
}

func roleCount(u Upstream) int {
	roles, err := u.Roles()
	if err != nil {
		return -1
	}
	return len(roles)
}

func check(ok bool, what string) string {
	if ok {
		return ""
	}
	return "wrong: " + what
}

// TestValidation: every problem is reported at once, each naming its key
// and where it was written.
func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "nothing to serve", want: []string{"upstreams: none", "--endpoint"}},
		{name: "unknown key", file: "max_conections: 3\n", want: []string{"line 1", "unknown key max_conections"}},
		{name: "unknown upstream key", file: "upstreams:\n  - endpoint: a.b.c:5432\n    listne: x\n", want: []string{"unknown key listne"}},
		{name: "bad duration in file", file: "max_shutdown_delay: soon\n", want: []string{`"soon" is not a duration`}},
		{name: "bad duration in env", env: map[string]string{"RDS_IAM_PROXY_CONNECT_TIMEOUT": "x"}, want: []string{"RDS_IAM_PROXY_CONNECT_TIMEOUT", "not a duration"}},
		{name: "bad int flag", args: []string{"--max-connections", "many"}, want: []string{"max-connections"}},
		{name: "bad engine", args: []string{"--endpoint", "a.b.c:1", "--engine", "oracle"}, want: []string{"--endpoint: engine: \"oracle\": use postgres, mysql or dsql"}},
		{name: "bad log level and format", args: []string{"--endpoint", "a.b.c:1", "--log-level", "loud", "--log-format", "xml"}, want: []string{"log_level: \"loud\"", "log_format: \"xml\""}},
		{name: "negative values", args: []string{"--endpoint", "a.b.c:1", "--max-connections", "-1", "--max-shutdown-delay", "-1s"}, want: []string{"max_connections: -1", "max_shutdown_delay: -1s is negative"}},
		{name: "two upstreams on one default listen", args: []string{"--upstream", "endpoint=a.x.y:5432", "--upstream", "endpoint=b.x.y:5432"},
			want: []string{"--upstream #2: listen: 127.0.0.1:6432 is already where --upstream #1 listens"}},
		{name: "same name", args: []string{"--upstream", "endpoint=a.x.y:5432,listen=127.0.0.1:1", "--upstream", "endpoint=a.z.y:5432,listen=127.0.0.1:2"},
			want: []string{"--upstream #2: name: \"a\" is also the name of --upstream #1"}},
		{name: "non-loopback listen", args: []string{"--endpoint", "a.b.c:1", "--listen", "0.0.0.0:6432"}, want: []string{"listen: 0.0.0.0:6432 is not a loopback address", "allow_non_loopback"}},
		{name: "non-loopback admin", args: []string{"--endpoint", "a.b.c:1", "--admin-address", "0.0.0.0:9801"}, want: []string{"admin_address: 0.0.0.0:9801 is not a loopback address", "--admin-allow-non-loopback"}},
		{name: "listen without endpoint", env: map[string]string{"RDS_IAM_PROXY_LISTEN": "127.0.0.1:7000"}, file: "upstreams:\n  - endpoint: a.b.c:1\n", want: []string{"describe the one upstream given by --endpoint"}},
		{name: "env spec error named", env: map[string]string{"RDS_IAM_PROXY_UPSTREAM": "endpoint=a.b.c:1,colour=blue"}, want: []string{"RDS_IAM_PROXY_UPSTREAM #1: unknown key"}},
		{name: "duration with its line", file: "log_level: info\nidle_timeout: 30\n", want: []string{"line 2", `"30" is not a duration`}},
		{name: "malformed endpoint", args: []string{"--endpoint", "db:5432:1"}, want: []string{"want HOST or HOST:PORT"}},
		{name: "mysql without TLS", args: []string{"--upstream", "engine=mysql,endpoint=a.b.c:1,tls_mode=disable"}, want: []string{"tls_mode: disable is not possible for mysql"}},
		{name: "socket file in another's socket dir", args: []string{"--upstream", "name=p,endpoint=a.b.c:1,listen=unix:/tmp/x", "--upstream", "name=m,engine=mysql,endpoint=a.b.c:1,listen=unix:/tmp/x"}, want: []string{"listen"}},
		{name: "relative socket", args: []string{"--endpoint", "a.b.c:1", "--listen", "unix:run/x"}, want: []string{"listen", "absolute path"}},
		{name: "socket mode", args: []string{"--upstream", "endpoint=a.b.c:1,socket_mode=rw"}, want: []string{"socket_mode: \"rw\": want an octal mode"}},
		{name: "tls mode", args: []string{"--endpoint", "a.b.c:1", "--tls-mode", "maybe"}, want: []string{"tls_mode"}},
		{name: "bundle file and url", args: []string{"--endpoint", "a.b.c:1", "--ca-bundle", "/x.pem", "--ca-bundle-url", "https://x"}, want: []string{"ca_bundle: names a file"}},
		{name: "role arn", args: []string{"--endpoint", "a.b.c:1", "--role-arn", "not-an-arn"}, want: []string{"role_arn"}},
		{name: "bad spec", args: []string{"--upstream", "endpoint=a.b.c:1,colour=blue"}, want: []string{"--upstream #1: unknown key \"colour\""}},
		{name: "admin non-loopback alone", args: []string{"--endpoint", "a.b.c:1", "--admin-address", "0.0.0.0:9801", "--admin-allow-non-loopback", "--listen", "0.0.0.0:6432"}, want: []string{"listen: 0.0.0.0:6432 is not a loopback address"}},
		{name: "spec without key", args: []string{"--upstream", "a.b.c:1"}, want: []string{"--upstream #1", "want key=value"}},
		{name: "exit code", args: []string{"--endpoint", "a.b.c:1", "--exit-code", "300"}, want: []string{"exit_code: 300"}},
		{name: "several at once", file: "upstreams:\n  - endpoint: ''\n  - endpoint: a.b.c:1\n    engine: db2\n", want: []string{"upstreams[0]: endpoint", "upstreams[1]: engine"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.file, tc.env, tc.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestExampleConfigLoads: the example shipped in deploy/ is valid for the
// real loader.
func TestExampleConfigLoads(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f := Register(fs)
	if err := ParseArgs(fs, []string{"--config", "../../deploy/rds-iam-proxy.example.yaml"}, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	s, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Upstreams) != 2 || s.Upstreams[0].Engine != "postgres" || s.Upstreams[1].Engine != "mysql" {
		t.Fatalf("example: %+v", s.Upstreams)
	}
}

// TestEveryFlagIsAKey: each flag but the handful about the command line
// itself is a file key, so the three ways never disagree.
func TestEveryFlagIsAKey(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	Register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "upstream", "ca-cache-dir", "engine", "endpoint", "listen", "dial-address", "allow-local-infile", "dsql-action", "dsql-session-limit":
			return
		}
		if _, ok := lookup(settingsFields, f.Name); !ok {
			t.Errorf("--%s is not a config key", f.Name)
		}
	})
}
