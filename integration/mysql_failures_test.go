package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// TestMySQLFailuresReachTheClient breaks the IAM path one way at a time and
// checks that the mysql client prints the proxy's explanation as an ERR
// packet (cause and fix), that the error number fits, and that the proxy
// keeps serving.
func TestMySQLFailuresReachTheClient(t *testing.T) {
	w.enter(t)
	otherCAFile := otherCAFile(t)
	closedPort := closedAddr(t)

	cases := []struct {
		name     string
		setup    func(t *testing.T) (undo func())
		mod      func(*launch.Config)
		user     string
		code     uint16
		want     []string
		recovers bool
	}{
		{
			name: "expired token",
			setup: func(t *testing.T) func() {
				return w.setClockOffset(t, 20*time.Minute)
			},
			user: iamUser, code: 1045, recovers: true,
			want: []string{`rds-iam-proxy: upstream rejected the IAM token for user "app_user" (Access denied for user 'app_user'`, "clock"},
		},
		{
			name: "unknown user",
			user: "nobody_here", code: 1045, recovers: true,
			want: []string{`user "nobody_here"`, "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"},
		},
		{
			name: "not an IAM user",
			user: plainUser, code: 1045, recovers: true,
			want: []string{`user "plain_user"`, "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"},
		},
		{
			name: "policy denies",
			user: unlistedUser, code: 1045, recovers: true,
			want: []string{"arn:aws:sts::123456789012:assumed-role/app/",
				"may rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:*/unlisted_user"},
		},
		{
			name: "TLS name mismatch",
			mod:  func(c *launch.Config) { c.Endpoint = "other-db.c0ffee123456.us-east-1.rds.amazonaws.com:3306" },
			user: iamUser, code: 1429,
			want: []string{"TLS verification failed", "not valid for other-db.c0ffee123456.us-east-1.rds.amazonaws.com", "--dial-address"},
		},
		{
			name: "wrong CA",
			mod:  func(c *launch.Config) { c.CABundle = otherCAFile },
			user: iamUser, code: 1429,
			want: []string{"certificate signed by unknown authority", "Fix: use the RDS CA bundle"},
		},
		{
			name: "upstream down",
			mod:  func(c *launch.Config) { c.DialAddress = closedPort },
			user: iamUser, code: 1429,
			want: []string{"cannot reach the upstream", closedPort, "connection refused", "security groups"},
		},
		{
			name: "no AWS credentials",
			setup: func(t *testing.T) func() {
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
				return func() {}
			},
			user: iamUser, code: 1045,
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
			port := startMySQLProxy(t, mods...)

			_, stderr, err := mysqlCLI(t, port, tc.user, "-e", "SELECT 1")
			if err == nil {
				t.Fatal("mysql connected; want a failure")
			}
			if !strings.Contains(stderr, "rds-iam-proxy: ") {
				t.Fatalf("mysql did not print the proxy's error:\n%s", stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("mysql output lacks %q:\n%s", want, stderr)
				}
			}
			if leaked := secretIn(stderr); leaked != "" {
				t.Errorf("mysql output holds %s:\n%s", leaked, stderr)
			}
			if code := mysqlConnectCode(t, port, tc.user); code != tc.code {
				t.Errorf("error %d, want %d", code, tc.code)
			}

			undo()
			if tc.recovers {
				out, stderr, err := mysqlCLI(t, port, iamUser, "-e", "SELECT CURRENT_USER()")
				if err != nil || strings.TrimSpace(out) != iamUser+"@%" {
					t.Fatalf("the proxy did not go on serving: %v %q\n%s", err, out, stderr)
				}
			} else if code := mysqlConnectCode(t, port, tc.user); code != tc.code {
				t.Fatalf("second try: error %d, want %d (proxy still serving)", code, tc.code)
			}
		})
	}
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
