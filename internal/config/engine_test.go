package config

import (
	"strings"
	"testing"
)

func TestEngine(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   Engine
		port   int
		listen string
	}{
		{"", Postgres, 5432, "127.0.0.1:6432"},
		{"postgres", Postgres, 5432, "127.0.0.1:6432"},
		{"mysql", MySQL, 3306, "127.0.0.1:3307"},
		{"dsql", DSQL, 5432, "127.0.0.1:6432"},
	} {
		e, err := ParseEngine(c.in)
		if err != nil || e != c.want || e.DefaultPort() != c.port || e.DefaultListen() != c.listen {
			t.Errorf("ParseEngine(%q) = %q (%v), port %d, listen %s", c.in, e, err, e.DefaultPort(), e.DefaultListen())
		}
	}
	for _, bad := range []string{"oracle", "Postgres", "MYSQL", "postgresql"} {
		if _, err := ParseEngine(bad); err == nil || !strings.Contains(err.Error(), "use postgres, mysql or dsql") {
			t.Errorf("ParseEngine(%q): %v, want a refusal naming the engines", bad, err)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, c := range []struct {
		in     string
		engine Engine
		want   Endpoint
	}{
		{"db.abc.us-east-1.rds.amazonaws.com:5433", Postgres, Endpoint{Host: "db.abc.us-east-1.rds.amazonaws.com", Port: 5433, PortGiven: true}},
		{"db.abc.us-east-1.rds.amazonaws.com", Postgres, Endpoint{Host: "db.abc.us-east-1.rds.amazonaws.com", Port: 5432}},
		{"db.abc.us-east-1.rds.amazonaws.com", MySQL, Endpoint{Host: "db.abc.us-east-1.rds.amazonaws.com", Port: 3306}},
		{"[::1]:15432", Postgres, Endpoint{Host: "::1", Port: 15432, PortGiven: true}},
	} {
		got, err := ParseEndpoint(c.in, c.engine)
		if err != nil || got != c.want {
			t.Errorf("ParseEndpoint(%q, %s) = %+v (%v), want %+v", c.in, c.engine, got, err, c.want)
		}
	}
	if got := (Endpoint{Host: "::1", Port: 5432}).String(); got != "[::1]:5432" {
		t.Errorf("String: %s", got)
	}
	for in, want := range map[string]string{
		"":             "no endpoint: pass --endpoint HOST:PORT",
		"db:5432:1":    "want HOST or HOST:PORT",
		"db/appdb":     "want HOST or HOST:PORT",
		"db:0":         "invalid port",
		"db:65536":     "invalid port",
		"db:postgres":  "invalid port",
		"db.example:-": "invalid port",
	} {
		if _, err := ParseEndpoint(in, Postgres); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEndpoint(%q): %v, want %q", in, err, want)
		}
	}
}
