package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAndSetupFlags: bad or missing flags exit 2 with a reason,
// before anything connects; the checks themselves are in the integration
// tests.
func TestValidateAndSetupFlags(t *testing.T) {
	badFile := filepath.Join(t.TempDir(), "req.yaml")
	os.WriteFile(badFile, []byte("require: [\"public.*:SELEC\"]\n"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"validate", "--db-user", "u"}, 2, "--endpoint"},
		{[]string{"validate", "--admin-dsn", "host=x", "--format", "xml", "--db-user", "u"}, 2, "--format"},
		{[]string{"validate", "--admin-dsn", "host=x"}, 2, "--db-user is required"},
		{[]string{"validate", "--admin-dsn", "host=x", "--db-user", "u", "--require", "public.*"}, 2, "PRIVILEGE"},
		{[]string{"validate", "--admin-dsn", "host=x", "--db-user", "u", "--requirements", badFile}, 2, "SELEC is not a privilege"},
		{[]string{"validate", "--engine", "mysql", "--admin-dsn", "u@/db", "--db-user", "u", "--require-sequences", "a.*:USAGE"}, 2, "no sequences"},
		{[]string{"setup"}, 2, "setup sql"},
		{[]string{"setup", "policy"}, 2, "--db-user"},
		{[]string{"setup", "tables"}, 2, "unknown"},
		{[]string{"setup", "sql"}, 2, "--db-user is required"},
		{[]string{"setup", "sql", "--engine", "mysql", "--db-user", "u"}, 2, "--database"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := runMain(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

func TestSetupSQLCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), []string{"setup", "sql", "--engine", "mysql", "--db-user", "app_user", "--database", "appdb"}, &stdout, &stderr)
	want := "CREATE USER IF NOT EXISTS 'app_user'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;\nGRANT SELECT ON `appdb`.* TO 'app_user'@'%';\n"
	if code != 0 || !strings.HasSuffix(stdout.String(), want) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
