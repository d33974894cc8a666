package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// TestFailuresReachTheClient breaks the IAM path one way at a time and
// checks that psql prints the proxy's explanation (cause and fix), that the
// SQLSTATE fits, and that the proxy keeps serving.
func TestFailuresReachTheClient(t *testing.T) {
	otherCAFile := otherCAFile(t)
	closedPort := closedAddr(t)

	cases := []struct {
		name string
		// setup runs before the proxy starts and returns an undo, run
		// before the proxy is shown to still work.
		setup func(t *testing.T) (undo func())
		mod   func(*launch.Config)
		user  string
		code  string
		want  []string
		// recovers: after undo, app_user logs in through the same proxy.
		// Otherwise a second try must fail the same way (still serving).
		recovers bool
	}{
		{
			name: "expired token",
			setup: func(t *testing.T) func() {
				w.aws.AWS.SetClockOffset(20 * time.Minute)
				return func() { w.aws.AWS.SetClockOffset(0) }
			},
			user: iamUser, code: "28P01", recovers: true,
			want: []string{`rds-iam-proxy: upstream rejected the IAM token for user "app_user" (PAM authentication failed)`, "clock"},
		},
		{
			name: "wrong region",
			mod:  func(c *launch.Config) { c.Region = "us-west-2" },
			user: iamUser, code: "28P01",
			want: []string{"PAM authentication failed", "us-west-2 is the DB's region"},
		},
		{
			name: "user not in rds_iam",
			user: plainUser, code: "28P01", recovers: true,
			want: []string{`user "plain_user"`, "not set up for IAM authentication", "GRANT rds_iam TO plain_user"},
		},
		{
			// Also without AWS_REGION: the region then comes from the
			// endpoint name, and the message must still name the caller.
			name: "policy denies",
			setup: func(t *testing.T) func() {
				t.Setenv("AWS_REGION", "")
				os.Unsetenv("AWS_REGION")
				return func() {}
			},
			user: unlistedUser, code: "28P01", recovers: true,
			want: []string{"PAM authentication failed", "member of rds_iam", "arn:aws:sts::123456789012:assumed-role/app/",
				"may rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:*/unlisted_user"},
		},
		{
			name: "TLS name mismatch",
			mod:  func(c *launch.Config) { c.Endpoint = "other-db.c0ffee123456.us-east-1.rds.amazonaws.com:5432" },
			user: iamUser, code: "08001",
			want: []string{"TLS verification failed", "not valid for other-db.c0ffee123456.us-east-1.rds.amazonaws.com", "--dial-address"},
		},
		{
			name: "wrong CA",
			mod:  func(c *launch.Config) { c.CABundle = otherCAFile },
			user: iamUser, code: "08001",
			want: []string{"certificate signed by unknown authority: the server's CA 'rds-iam-proxy emulator root CA' is not in the bundle " + otherCAFile + " (1 CA, ", "RDS CA bundle"},
		},
		{
			name: "upstream down",
			mod:  func(c *launch.Config) { c.DialAddress = closedPort },
			user: iamUser, code: "08001",
			want: []string{"cannot reach the upstream", closedPort, "connection refused", "security groups"},
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
			user: iamUser, code: "28000",
			want: []string{"credential_process printed something that is not the expected credentials JSON", "run the command by hand"},
		},
		{
			name: "no AWS credentials",
			setup: func(t *testing.T) func() {
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
				return func() {}
			},
			user: iamUser, code: "28000",
			want: []string{`cannot sign an IAM token for user "app_user"`, "no usable AWS credentials", "AWS_PROFILE"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
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
			port := startProxy(t, mods...)

			_, stderr, err := psql(t, dsn(port, tc.user), "-c", "SELECT 1")
			if err == nil {
				t.Fatal("psql connected; want a failure")
			}
			if !strings.Contains(stderr, "FATAL:  rds-iam-proxy: ") {
				t.Fatalf("psql did not print the proxy's FATAL error:\n%s", stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("psql output lacks %q:\n%s", want, stderr)
				}
			}
			if leaked := secretIn(stderr); leaked != "" {
				t.Errorf("psql output holds %s:\n%s", leaked, stderr)
			}
			if code := connectCode(t, port, tc.user); code != tc.code {
				t.Errorf("SQLSTATE %s, want %s", code, tc.code)
			}

			undo()
			if tc.recovers {
				out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user")
				if err != nil || strings.TrimSpace(out) != iamUser {
					t.Fatalf("the proxy did not go on serving: %v %q\n%s", err, out, stderr)
				}
			} else if code := connectCode(t, port, tc.user); code != tc.code {
				t.Fatalf("second try: SQLSTATE %s, want %s (proxy still serving)", code, tc.code)
			}
		})
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
