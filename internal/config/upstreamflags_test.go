package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// parseUpstream registers keys on a fresh flag set, applies env and args
// as a command does, and returns the upstream.
func parseUpstream(t *testing.T, keys []string, env map[string]string, args ...string) (Upstream, error) {
	t.Helper()
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterUpstream(fs, keys...)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := ParseArgs(fs, args, lookup); err != nil {
		return Upstream{}, err
	}
	return f.Upstream()
}

// TestRegisterUpstreamIsRunsTable: a one-upstream command's flags are
// run's flags, same names and same help, and no more than its keys.
func TestRegisterUpstreamIsRunsTable(t *testing.T) {
	run := flag.NewFlagSet("run", flag.ContinueOnError)
	Register(run)
	one := flag.NewFlagSet("doctor", flag.ContinueOnError)
	RegisterUpstream(one, LoginKeys...)
	n := 0
	one.VisitAll(func(f *flag.Flag) {
		n++
		rf := run.Lookup(f.Name)
		if rf == nil {
			t.Errorf("--%s is not one of run's flags", f.Name)
			return
		}
		if rf.Usage != f.Usage {
			t.Errorf("--%s: run says %q, the command %q", f.Name, rf.Usage, f.Usage)
		}
	})
	if want := len(LoginKeys) + 1; n != want { // + --ca-cache-dir
		t.Errorf("%d flags, want %d", n, want)
	}
	for _, k := range SigningKeys {
		if one.Lookup(strings.ReplaceAll(k, "_", "-")) == nil {
			t.Errorf("LoginKeys lacks the signing key %s", k)
		}
	}
}

func TestUpstreamFlags(t *testing.T) {
	u, err := parseUpstream(t, LoginKeys, map[string]string{"RDS_IAM_PROXY_REGION": "eu-west-1", "RDS_IAM_PROXY_DB_USER": "from_env"},
		"--endpoint", "orders.abc.eu-west-1.rds.amazonaws.com", "--engine", "mysql", "--db-user", "app",
		"--role-arn", "arn:aws:iam::1:role/a,arn:aws:iam::2:role/b", "--ca-cache-dir", "/var/cache/x")
	if err != nil {
		t.Fatal(err)
	}
	roles, _ := u.Roles()
	if u.Engine != MySQL || u.Region != "eu-west-1" || u.DBUser != "app" || len(roles) != 2 || u.CacheDir != "/var/cache/x" || u.Name != "orders" {
		t.Errorf("upstream: %+v", u)
	}

	// No endpoint: fine here (whoami needs none), and no name made up.
	u, err = parseUpstream(t, SigningKeys, nil, "--profile", "dev")
	if err != nil || u.Endpoint != "" || u.Name != "" || u.Engine != Postgres || u.Profile != "dev" {
		t.Errorf("without an endpoint: %+v, %v", u, err)
	}

	// Every problem at once, each naming its flag.
	_, err = parseUpstream(t, LoginKeys, map[string]string{"RDS_IAM_PROXY_TLS_MODE": "sometimes"},
		"--endpoint", "db.x.y:5432", "--dial-address", "nowhere", "--role-arn", "arn:aws:iam::1:user/u", "--role-duration", "-5m")
	for _, want := range []string{"--tls-mode: ", "--dial-address: \"nowhere\": want HOST:PORT", "--role-arn: ", "--role-duration: -5m0s is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems: %v; want %q", err, want)
		}
	}
	// A key the command does not take is no flag of it.
	if _, err := parseUpstream(t, SigningKeys, nil, "--dial-address", "127.0.0.1:1"); err == nil {
		t.Error("token took --dial-address")
	}
}
