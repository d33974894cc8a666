package integration

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// failureEngine is how the failure table meets one engine: its proxy, its
// command-line client, its driver's error code, and what the client
// prints for the proxy's error.
type failureEngine struct {
	name  string // "postgres", "mysql": the subtest's name
	start func(t *testing.T, mods ...func(*launch.Config)) string
	// cli runs the engine's command-line client (psql, mariadb) as user
	// with one statement.
	cli func(t *testing.T, port, user, sql string) (stdout, stderr string, err error)
	// proxyError is what the client prints for an error of the proxy's.
	proxyError string
	// code logs in with the engine's Go driver (pgconn, go-sql-driver)
	// and returns the error's code as text ("" if it connected).
	code func(t *testing.T, port, user string) string
	// whoami is the statement that names the session's user, and what
	// it prints for iamUser.
	whoami, iam string
}

var failureEngines = []failureEngine{
	{
		name: "postgres", start: startProxy,
		cli: func(t *testing.T, port, user, sql string) (string, string, error) {
			return psql(t, dsn(port, user), "-c", sql)
		},
		proxyError: "FATAL:  rds-iam-proxy: ",
		code:       connectCode,
		whoami:     "SELECT current_user", iam: iamUser,
	},
	{
		name: "mysql", start: startMySQLProxy,
		cli: func(t *testing.T, port, user, sql string) (string, string, error) {
			return mysqlCLI(t, port, user, "-e", sql)
		},
		proxyError: "rds-iam-proxy: ",
		code: func(t *testing.T, port, user string) string {
			if n := mysqlConnectCode(t, port, user); n != 0 {
				return strconv.Itoa(int(n))
			}
			return ""
		},
		whoami: "SELECT CURRENT_USER()", iam: iamUser + "@%",
	},
}

// failureWant is what one engine's client must show for a failure: the
// code (a SQLSTATE, a MySQL error number) and texts of the cause and fix.
type failureWant struct {
	code string
	want []string
}

// TestFailuresReachTheClient breaks the IAM path one way at a time and,
// against each engine with its own client, checks that the client prints
// the proxy's explanation (cause and fix: psql shows the fix as the HINT,
// mysql in the ERR text), that the code fits, and that the proxy keeps
// serving. A row names what each engine's client must show; an engine
// without an entry does not run the row.
func TestFailuresReachTheClient(t *testing.T) {
	w.enter(t)
	otherCAFile := otherCAFile(t)
	closedPort := closedAddr(t)

	cases := []struct {
		name string
		// setup runs before the proxy starts and returns an undo, run
		// before the proxy is shown to still work.
		setup func(t *testing.T) (undo func())
		mod   func(*launch.Config)
		user  string
		pg    *failureWant
		my    *failureWant
		// recovers: after undo, app_user logs in through the same proxy.
		// Otherwise a second try must fail the same way (still serving).
		recovers bool
	}{
		{
			name: "expired token",
			setup: func(t *testing.T) func() {
				return w.setClockOffset(t, 20*time.Minute)
			},
			user: iamUser, recovers: true,
			pg: &failureWant{"28P01", []string{`rds-iam-proxy: upstream rejected the IAM token for user "app_user" (PAM authentication failed)`, "clock"}},
			my: &failureWant{"1045", []string{`rds-iam-proxy: upstream rejected the IAM token for user "app_user" (Access denied for user 'app_user'`, "clock"}},
		},
		{
			name: "wrong region",
			mod:  func(c *launch.Config) { c.Region = "us-west-2" },
			user: iamUser,
			pg:   &failureWant{"28P01", []string{"PAM authentication failed", "us-west-2 is the DB's region"}},
		},
		{
			name: "unknown user",
			user: "nobody_here", recovers: true,
			my: &failureWant{"1045", []string{`user "nobody_here"`, "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"}},
		},
		{
			name: "not an IAM user",
			user: plainUser, recovers: true,
			pg: &failureWant{"28P01", []string{`user "plain_user"`, "not set up for IAM authentication", "GRANT rds_iam TO plain_user"}},
			my: &failureWant{"1045", []string{`user "plain_user"`, "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"}},
		},
		{
			// Also without AWS_REGION: the region then comes from the
			// endpoint name, and the message must still name the caller.
			name: "policy denies",
			setup: func(t *testing.T) func() {
				unsetEnv(t, "AWS_REGION")
				return func() {}
			},
			user: unlistedUser, recovers: true,
			pg: &failureWant{"28P01", []string{"PAM authentication failed", "member of rds_iam", "arn:aws:sts::123456789012:assumed-role/app/",
				"may rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:*/unlisted_user"}},
			my: &failureWant{"1045", []string{"arn:aws:sts::123456789012:assumed-role/app/",
				"may rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:*/unlisted_user"}},
		},
		{
			name: "TLS name mismatch",
			mod: func(c *launch.Config) {
				_, port, _ := net.SplitHostPort(c.Endpoint)
				c.Endpoint = "other-db.c0ffee123456.us-east-1.rds.amazonaws.com:" + port
			},
			user: iamUser,
			pg:   &failureWant{"08001", []string{"TLS verification failed", "not valid for other-db.c0ffee123456.us-east-1.rds.amazonaws.com", "--dial-address"}},
			my:   &failureWant{"1429", []string{"TLS verification failed", "not valid for other-db.c0ffee123456.us-east-1.rds.amazonaws.com", "--dial-address"}},
		},
		{
			name: "wrong CA",
			mod:  func(c *launch.Config) { c.CABundle = otherCAFile },
			user: iamUser,
			pg:   &failureWant{"08001", []string{"certificate signed by unknown authority: the server's CA 'rds-iam-proxy emulator root CA' is not in the bundle " + otherCAFile + " (1 CA, ", "RDS CA bundle"}},
			my:   &failureWant{"1429", []string{"certificate signed by unknown authority", "Fix: use the RDS CA bundle"}},
		},
		{
			name: "upstream down",
			mod:  func(c *launch.Config) { c.DialAddress = closedPort },
			user: iamUser,
			pg:   &failureWant{"08001", []string{"cannot reach the upstream", closedPort, "connection refused", "security groups"}},
			my:   &failureWant{"1429", []string{"cannot reach the upstream", closedPort, "connection refused", "security groups"}},
		},
		{
			// credential_process output that the SDK cannot parse is quoted
			// in its error; the secret in it must not reach psql or a log.
			name: "credential_process prints garbage",
			setup: func(t *testing.T) func() {
				dir := t.TempDir()
				script := filepath.Join(dir, "creds.sh")
				os.WriteFile(script, []byte("#!/bin/sh\necho 'SecretAccessKey:MARKERSECRET987,SessionToken:MARKERSESSION654'\n"), 0o755)
				config := filepath.Join(dir, "config")
				os.WriteFile(config, []byte("[default]\ncredential_process = "+script+"\n"), 0o644)
				t.Setenv("AWS_CONFIG_FILE", config)
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
				return func() {}
			},
			user: iamUser,
			pg:   &failureWant{"28000", []string{"credential_process printed something that is not the expected credentials JSON", "run the command by hand"}},
		},
		{
			name: "no AWS credentials",
			setup: func(t *testing.T) func() {
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
				return func() {}
			},
			user: iamUser,
			pg:   &failureWant{"28000", []string{`cannot sign an IAM token for user "app_user"`, "no usable AWS credentials", "AWS_PROFILE"}},
			my:   &failureWant{"1045", []string{`cannot sign an IAM token for user "app_user"`, "no usable AWS credentials", "AWS_PROFILE"}},
		},
	}
	for _, tc := range cases {
		for _, e := range failureEngines {
			want := map[string]*failureWant{"postgres": tc.pg, "mysql": tc.my}[e.name]
			if want == nil {
				continue
			}
			t.Run(tc.name+"/"+e.name, func(t *testing.T) {
				undo := func() {}
				if tc.setup != nil {
					undo = tc.setup(t)
				}
				// Undone even when the test fails half-way: the world is shared.
				t.Cleanup(undo)
				var mods []func(*launch.Config)
				if tc.mod != nil {
					mods = append(mods, tc.mod)
				}
				port := e.start(t, mods...)

				_, stderr, err := e.cli(t, port, tc.user, "SELECT 1")
				if err == nil {
					t.Fatalf("%s's client connected; want a failure", e.name)
				}
				if !strings.Contains(stderr, e.proxyError) {
					t.Fatalf("the client did not print the proxy's error (%q):\n%s", e.proxyError, stderr)
				}
				for _, w := range want.want {
					if fix, ok := strings.CutPrefix(w, "Fix: "); ok && e.name == "postgres" {
						w = "HINT:  " + fix // psql prints the fix as the HINT
					}
					if !strings.Contains(stderr, w) {
						t.Errorf("the client's output lacks %q:\n%s", w, stderr)
					}
				}
				if leaked := secretIn(stderr); leaked != "" {
					t.Errorf("the client's output holds %s:\n%s", leaked, stderr)
				}
				if code := e.code(t, port, tc.user); code != want.code {
					t.Errorf("error code %s, want %s", code, want.code)
				}

				undo()
				if tc.recovers {
					out, stderr, err := e.cli(t, port, iamUser, e.whoami)
					if err != nil || !strings.Contains(out, e.iam) {
						t.Fatalf("the proxy did not go on serving: %v %q\n%s", err, out, stderr)
					}
				} else if code := e.code(t, port, tc.user); code != want.code {
					t.Fatalf("second try: error code %s, want %s (proxy still serving)", code, want.code)
				}
			})
		}
	}
}

// shown is a Postgres error as psql shows it: the message, and the
// proxy's fix on a line of its own ("HINT:  ..."), which pgconn keeps in
// PgError.Hint.
func shown(e *pgconn.PgError) string {
	if e.Hint == "" {
		return e.Message
	}
	return e.Message + "\nHINT:  " + e.Hint
}

// connectCode tries a pgconn login through the proxy and returns the
// SQLSTATE of the error ("" if it connected).
func connectCode(t *testing.T, port, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, user))
	if err == nil {
		conn.Close(ctx)
		return ""
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("connect failed without a server error: %v", err)
	}
	if pgErr.Severity != "FATAL" || !strings.HasPrefix(pgErr.Message, "rds-iam-proxy: ") {
		t.Fatalf("error %q (severity %s) is not the proxy's FATAL", pgErr.Message, pgErr.Severity)
	}
	return pgErr.Code
}

// mysqlConnectCode logs in with go-sql-driver/mysql through the proxy and
// returns the ERR packet's number (0 if it connected). The message must be
// the proxy's.
func mysqlConnectCode(t *testing.T, port, user string) uint16 {
	t.Helper()
	db := mysqlDB(t, port, user)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := db.PingContext(ctx)
	if err == nil {
		return 0
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		t.Fatalf("connect failed without an ERR packet: %v", err)
	}
	if !strings.HasPrefix(me.Message, "rds-iam-proxy: ") {
		t.Fatalf("error %q is not the proxy's", me.Message)
	}
	return me.Number
}
