package integration

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// psql runs the real psql against conninfo and returns its stdout and
// stderr. -X ignores ~/.psqlrc; ON_ERROR_STOP makes SQL errors an exit code.
func psql(t *testing.T, conninfo string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo}, args...)
	cmd := exec.CommandContext(ctx, w.pg.BinPath("psql"), full...)
	cmd.Env = append(cmd.Environ(), "PGAPPNAME=psql-it", "PGSSLMODE=prefer")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func TestPsqlQueriesThroughProxy(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	out, errOut, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user, session_user, current_database()")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, errOut)
	}
	if got := strings.TrimSpace(out); got != "app_user|app_user|appdb" {
		t.Fatalf("current_user|session_user|db = %q, want app_user|app_user|appdb", got)
	}

	// A script: a transaction, a server-side error relayed with its
	// SQLSTATE, and the session still usable afterwards.
	script := `
BEGIN;
INSERT INTO items (name) VALUES ('from-psql');
SELECT count(*) FROM items WHERE name = 'from-psql';
ROLLBACK;
SELECT count(*) FROM items WHERE name = 'from-psql';
`
	out, errOut, err = psql(t, dsn(port, iamUser), "-c", script)
	if err != nil {
		t.Fatalf("psql script: %v\n%s", err, errOut)
	}
	if got := strings.Fields(out); len(got) != 2 || got[0] != "1" || got[1] != "0" {
		t.Fatalf("transaction script printed %q, want 1 then 0", out)
	}

	_, errOut, err = psql(t, dsn(port, iamUser), "-v", "VERBOSITY=verbose", "-c", "SELECT 1/0")
	if err == nil {
		t.Fatal("SELECT 1/0 succeeded")
	}
	if !strings.Contains(errOut, "22012") || !strings.Contains(errOut, "division by zero") {
		t.Fatalf("server error not relayed as is: %q", errOut)
	}
}

func TestPsqlCopyOutAndIn(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	t.Cleanup(func() { w.pg.ExecIn(context.Background(), appDB, "DROP TABLE IF EXISTS psql_copy, psql_copy2") })
	// 200,000 rows out through \copy, then back in, through psql.
	_, errOut, err := psql(t, dsn(port, iamUser), "-c",
		"CREATE TABLE psql_copy AS SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 200000) g")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	file := t.TempDir() + "/rows.csv"
	if _, errOut, err = psql(t, dsn(port, iamUser), "-c", `\copy psql_copy TO '`+file+`' WITH (FORMAT csv)`); err != nil {
		t.Fatalf("copy out: %v\n%s", err, errOut)
	}
	if _, errOut, err = psql(t, dsn(port, iamUser), "-c", "CREATE TABLE psql_copy2 (n int, h text)", "-c", `\copy psql_copy2 FROM '`+file+`' WITH (FORMAT csv)`); err != nil {
		t.Fatalf("copy in: %v\n%s", err, errOut)
	}
	out, errOut, err := psql(t, dsn(port, iamUser), "-c", "SELECT count(*), sum(n) FROM psql_copy2 JOIN psql_copy USING (n, h)")
	if err != nil {
		t.Fatalf("check: %v\n%s", err, errOut)
	}
	if got := strings.TrimSpace(out); got != "200000|20000100000" {
		t.Fatalf("copied rows: %q, want 200000|20000100000", got)
	}
}
