package dsql

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// signer says who signs; it builds no tokens.
type signer struct{ arn, account string }

func (s signer) DSQLToken(context.Context, string, string, bool) (string, error) {
	return "", errors.New("not here")
}
func (s signer) Identity(context.Context, string) (authtoken.Identity, error) {
	return authtoken.Identity{ARN: s.arn, Account: s.account}, nil
}

func TestExplain(t *testing.T) {
	const arn = "arn:aws:dsql:us-east-1:123456789012:cluster/abc123"
	s := signer{arn: "arn:aws:sts::123456789012:assumed-role/app/worker", account: "123456789012"}
	auto := func(u string) bool { return u == "admin" }
	c := cluster{host: "abc123.dsql.us-east-1.on.aws", region: "us-east-1", admin: auto, signer: &tokens{signer: s, admin: auto}}
	authFailed := func(user string) error {
		return &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `IAM authentication failed for user "` + user + `"`}
	}
	for _, tc := range []struct {
		name, user string
		err        error
		reason     failure.Reason
		code       string
		want       []string // in the cause or the fix
	}{
		{"rate", "app", &pgconn.PgError{Code: "53400", Message: "Unable to accept connection, rate exceeded."}, failure.Limit, "53400",
			[]string{"100 a second per cluster", "rate exceeded", "connect again in a moment"}},
		{"too many", "app", &pgconn.PgError{Code: "53300", Message: "Unable to accept connection, too many open connections."}, failure.Limit, "53300",
			[]string{"10,000", "cap your pools"}},
		{"admin refused", "admin", authFailed("admin"), failure.UpstreamAuth, "28000",
			[]string{"dsql:DbConnectAdmin on " + arn, s.arn, `role "admin"`}},
		{"role refused", "app_role", authFailed("app_role"), failure.UpstreamAuth, "28000",
			[]string{"dsql:DbConnect on " + arn, "AWS IAM GRANT app_role TO 'arn:aws:iam::123456789012:role/app'", "sys.iam_pg_role_mappings"}},
		{"no SNI", "app", &pgconn.PgError{Code: "08004", Message: "unable to accept connection, sni was not received"}, failure.UpstreamTLS, "",
			[]string{"SNI", "ID.dsql.REGION.on.aws"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := c.explain(t.Context(), tc.user, tc.err)
			if f == nil || f.Reason != tc.reason || f.Code.SQLState != tc.code {
				t.Fatalf("got %+v", f)
			}
			for _, w := range tc.want {
				if !strings.Contains(f.Cause+" | "+f.Fix, w) {
					t.Errorf("%q lacks %q", f.Cause+" | "+f.Fix, w)
				}
			}
		})
	}
	if f := c.explain(t.Context(), "app", &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}); f != nil {
		t.Errorf("a server error DSQL adds nothing to: %+v", f)
	}
	if f := c.explain(t.Context(), "app", errors.New("dial: refused")); f != nil {
		t.Errorf("not a server error: %+v", f)
	}
	forced := cluster{host: c.host, region: c.region, admin: func(string) bool { return true }, signer: c.signer}
	if f := forced.explain(t.Context(), "app", authFailed("app")); f == nil || !strings.Contains(f.Fix, "only the role admin") {
		t.Errorf("admin action for another role: %+v", f)
	}
}

func TestMappedPrincipal(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:sts::123456789012:assumed-role/app/worker-1": "arn:aws:iam::123456789012:role/app",
		"arn:aws-cn:sts::123456789012:assumed-role/app/s":     "arn:aws-cn:iam::123456789012:role/app",
		"arn:aws:iam::123456789012:user/ops":                  "arn:aws:iam::123456789012:user/ops",
		"":                                                    "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME",
	} {
		if got := MappedPrincipal(in); got != want {
			t.Errorf("MappedPrincipal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionLimitFailure(t *testing.T) {
	f := SessionLimitFailure(time.Hour)
	if f.Code.SQLState != "57P01" || !strings.Contains(f.Cause, "1h0m0s") || !strings.Contains(f.Fix, "pgxpool MaxConnLifetime, HikariCP maxLifetime, SQLAlchemy pool_recycle") {
		t.Errorf("%+v", f)
	}
}

// TestRetry: a 53400 is tried once more after a wait under a second; other
// errors are not.
func TestRetry(t *testing.T) {
	rate := &pgconn.PgError{Code: "53400"}
	tk := &tokens{}
	start := time.Now()
	if !tk.retry(t.Context(), rate) || time.Since(start) > retryWait+500*time.Millisecond {
		t.Errorf("53400 not retried within %s", retryWait)
	}
	if tk.retry(t.Context(), &pgconn.PgError{Code: "28000"}) {
		t.Error("an auth failure retried")
	}
}
