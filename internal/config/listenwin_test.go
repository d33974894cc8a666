package config

import (
	"strings"
	"testing"
)

// TestUnixListenRefusedOnWindows: a unix: listen value is refused on
// Windows with the fix, on every system's test run (the goos parameter),
// and still taken elsewhere.
func TestUnixListenRefusedOnWindows(t *testing.T) {
	for _, v := range []string{"unix:/run/rds-iam-proxy", `unix:C:\run\proxy.sock`} {
		_, err := parseListen(v, Postgres, 5432, "windows")
		if err == nil || !strings.Contains(err.Error(), "not supported on Windows") || !strings.Contains(err.Error(), "127.0.0.1:PORT") {
			t.Errorf("windows, %q: %v; want the refusal naming 127.0.0.1:PORT", v, err)
		}
	}
	if _, err := parseListen("127.0.0.1:6432", Postgres, 5432, "windows"); err != nil {
		t.Errorf("windows, TCP: %v", err)
	}
	spec, err := parseListen("unix:/run/rds-iam-proxy", Postgres, 5432, "linux")
	if err != nil || spec.Address != "/run/rds-iam-proxy/.s.PGSQL.5432" {
		t.Errorf("linux, unix: %+v, %v", spec, err)
	}
}
