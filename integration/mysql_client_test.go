package integration

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mysqlCLI runs the real mysql client (MariaDB's) against the proxy on port
// as user, in batch mode, with args after the connection options.
func mysqlCLI(t *testing.T, port, user string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return mysqlCLIStdin(t, port, user, "", args...)
}

// mysqlCLIStdin is mysqlCLI with input on stdin.
func mysqlCLIStdin(t *testing.T, port, user, input string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := w.My.BinPath("mariadb")
	if bin == "" {
		t.Fatal("the mariadb client is not installed (apt-get install mariadb-client)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--no-defaults", "--protocol=tcp", "-h", "127.0.0.1", "-P", port, "-u", user,
		"--skip-ssl", "--batch", "--skip-column-names", "--connect-timeout=20", appDB}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Stdin = strings.NewReader(input)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func TestMySQLClientQueries(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT CURRENT_USER(), DATABASE(); SHOW STATUS LIKE 'Ssl_cipher'")
	if err != nil {
		t.Fatalf("mysql: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "app_user@%\tappdb" || !strings.HasPrefix(lines[1], "Ssl_cipher\t") || lines[1] == "Ssl_cipher\t" {
		t.Fatalf("mysql printed %q; want the IAM user, the database and a TLS cipher upstream", out)
	}

	// One COM_QUERY holding several statements (the mysql client sends
	// what lies between delimiters as one query): CLIENT_MULTI_STATEMENTS
	// and multi-results reach the server from the client.
	out, stderr, err = mysqlCLIStdin(t, port, iamUser, "DELIMITER //\nSET @x = 20; SELECT @x + 1; SELECT @x + 2//\n")
	if err != nil {
		t.Fatalf("multi-statement query: %v\n%s", err, stderr)
	}
	if got := strings.Fields(out); strings.Join(got, " ") != "21 22" {
		t.Fatalf("multi-statement query printed %q, want 21 and 22", out)
	}

	// A batch of statements on stdin: a transaction, an error that stops
	// the batch (as mysql does), with the server's number and text.
	batch := `
START TRANSACTION;
INSERT INTO items (name) VALUES ('from-mysql-cli');
SELECT COUNT(*) FROM items WHERE name = 'from-mysql-cli';
ROLLBACK;
SELECT COUNT(*) FROM items WHERE name = 'from-mysql-cli';
SELECT * FROM no_such_table;
SELECT 'not reached';
`
	cmdOut, stderr, err := mysqlCLIStdin(t, port, iamUser, batch)
	if err == nil {
		t.Fatal("the batch's error did not fail the mysql client")
	}
	if got := strings.Fields(cmdOut); strings.Join(got, " ") != "1 0" {
		t.Fatalf("batch printed %q, want counts 1 then 0", cmdOut)
	}
	if !strings.Contains(stderr, "ERROR 1146 (42S02)") || !strings.Contains(stderr, "no_such_table") {
		t.Fatalf("mysql did not print the server's error:\n%s", stderr)
	}
}
