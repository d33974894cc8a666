package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDSQLAction(t *testing.T) {
	for _, c := range []struct {
		in    string
		user  string
		admin bool
	}{
		{"", "admin", true}, {"", "app", false}, {"auto", "Admin", false},
		{"connect", "admin", false}, {"admin", "app", true},
	} {
		a, err := ParseDSQLAction(c.in)
		if err != nil || a.Admin(c.user) != c.admin {
			t.Errorf("ParseDSQLAction(%q) = %q (%v); Admin(%q) = %v, want %v", c.in, a, err, c.user, a.Admin(c.user), c.admin)
		}
	}
	if _, err := ParseDSQLAction("DbConnect"); err == nil || !strings.Contains(err.Error(), "use auto") {
		t.Errorf("ParseDSQLAction(DbConnect): %v", err)
	}
}

func TestDSQLSettingsChecked(t *testing.T) {
	for _, c := range []struct {
		u    Upstream
		want string
	}{
		{Upstream{Engine: Postgres, DSQLAction: "admin"}, "dsql_action: is for dsql upstreams"},
		{Upstream{Engine: MySQL, DSQLSessionLimit: Duration(time.Second)}, "dsql_session_limit: is for dsql upstreams"},
		{Upstream{Engine: DSQL, DSQLAction: "root"}, `dsql_action: "root": use auto`},
		{Upstream{Engine: DSQL, DSQLSessionLimit: -1}, "dsql_session_limit: -1ns"},
	} {
		var got []string
		c.u.checkDSQL(func(key, format string, args ...any) {
			got = append(got, key+": "+fmt.Sprintf(format, args...))
		})
		if len(got) != 1 || !strings.HasPrefix(got[0], c.want) {
			t.Errorf("%+v: %q, want %q", c.u, got, c.want)
		}
	}
	if d := (Upstream{}).SessionLimit(); d != time.Hour {
		t.Errorf("default session limit %s", d)
	}
}

// TestDSQLFlags: --engine dsql with its flags loads, the flags reach the
// one upstream, and a bad action is refused with the key.
func TestDSQLFlags(t *testing.T) {
	s, err := load(t, "", nil, "--endpoint", "abc123.dsql.us-east-1.on.aws", "--engine", "dsql", "--dsql-action", "connect", "--dsql-session-limit", "2s")
	if err != nil {
		t.Fatal(err)
	}
	u := s.Upstreams[0]
	if u.Engine != DSQL || u.DSQLAction != "connect" || u.SessionLimit() != 2*time.Second || u.Name != "abc123" {
		t.Errorf("upstream %+v", u)
	}
	if _, err := load(t, "", nil, "--upstream", "engine=dsql,endpoint=abc123.dsql.us-east-1.on.aws,dsql_action=root"); err == nil || !strings.Contains(err.Error(), "dsql_action") {
		t.Errorf("bad action: %v", err)
	}
}
