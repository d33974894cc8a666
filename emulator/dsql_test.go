package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	dsqlauth "github.com/aws/aws-sdk-go-v2/feature/dsql/auth"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

const dsqlHost = "emulateddsqlcluster0000001.dsql.us-east-1.on.aws"
const dsqlARN = "arn:aws:dsql:us-east-1:123456789012:cluster/emulateddsqlcluster0000001"

// startDSQL starts a DSQL front whose backend is never reached: every
// case here is refused before the backend login (the integration tests
// log in through it to a real PostgreSQL).
func startDSQL(t *testing.T, w *world, o DSQLOptions) (*DSQL, *CA) {
	t.Helper()
	ca, err := NewCA("dsql test CA")
	if err != nil {
		t.Fatal(err)
	}
	o.Backend = "127.0.0.1:1"
	o.Logger = w.aws.log
	d, err := w.aws.StartDSQL(ca, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, ca
}

func dsqlToken(t *testing.T, host string, admin bool, c aws.Credentials) string {
	t.Helper()
	gen := dsqlauth.GenerateDbConnectAuthToken
	if admin {
		gen = dsqlauth.GenerateDBConnectAdminAuthToken
	}
	tok, err := gen(t.Context(), host, "us-east-1", static(c.AccessKeyID, c.SecretAccessKey, c.SessionToken))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDSQLTokens(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	d, _ := startDSQL(t, w, DSQLOptions{})
	if d.Endpoint() != dsqlHost || d.ClusterARN() != dsqlARN {
		t.Fatalf("endpoint %s, ARN %s", d.Endpoint(), d.ClusterARN())
	}
	admin := userCreds(w.aws, "ops", d.ConnectPolicy(true))
	plain := userCreds(w.aws, "plain", d.ConnectPolicy(false))
	roleARN := w.aws.AddRole("app", d.ConnectPolicy(false))
	session := w.assumeRole(t, static(plain.AccessKeyID, plain.SecretAccessKey, ""), roleARN, "worker", 900)
	d.GrantIAM("app_role", roleARN)

	for _, c := range []struct {
		name, role string
		tok        string
		reason     string // "" accepted
	}{
		{"admin", "admin", dsqlToken(t, dsqlHost, true, admin), ""},
		{"admin, slash form", "admin", strings.Replace(dsqlToken(t, dsqlHost, true, admin), "?", "/?", 1), ""},
		{"mapped role's session", "app_role", dsqlToken(t, dsqlHost, false, session), ""},
		{"admin with a DbConnect token", "admin", dsqlToken(t, dsqlHost, false, admin), `Action is "DbConnect", the role "admin" logs in with DbConnectAdmin`},
		{"role with an admin token", "app_role", dsqlToken(t, dsqlHost, true, session), `Action is "DbConnectAdmin", the role "app_role" logs in with DbConnect`},
		{"admin without DbConnectAdmin", "admin", dsqlToken(t, dsqlHost, true, plain), "policy: no statement allows dsql:DbConnectAdmin on " + dsqlARN},
		{"unmapped role", "other_role", dsqlToken(t, dsqlHost, false, session), "role \"other_role\" is not mapped to " + roleARN + " (AWS IAM GRANT other_role TO '" + roleARN + "')"},
		{"the user, not its role, mapped", "app_role", dsqlToken(t, dsqlHost, false, plain), "is not mapped to arn:aws:iam::123456789012:user/plain"},
		{"other host", "admin", dsqlToken(t, "other.dsql.us-east-1.on.aws", true, admin), `token is for host "other.dsql.us-east-1.on.aws"`},
		{"with a port", "admin", dsqlToken(t, dsqlHost+":5432", true, admin), "is not a bare host name"},
		{"rds-db service", "admin", presign(t, dsqlHost, "us-east-1", "rds-db", url.Values{"Action": {"DbConnectAdmin"}, "X-Amz-Expires": {"900"}}, admin, time.Now()), `service "rds-db" in credential scope, want dsql`},
		{"over a week", "admin", presign(t, dsqlHost, "us-east-1", "dsql", url.Values{"Action": {"DbConnectAdmin"}, "X-Amz-Expires": {"604801"}}, admin, time.Now()), "exceeds the 604800 seconds DSQL allows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			caller, err := d.VerifyToken(c.tok, c.role)
			if c.reason == "" {
				if err != nil || caller == nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || !strings.Contains(te.Reason, c.reason) {
				t.Fatalf("got %v, want a refusal containing %q", err, c.reason)
			}
		})
	}
	d.RevokeIAM("app_role", roleARN)
	if _, err := d.VerifyToken(dsqlToken(t, dsqlHost, false, session), "app_role"); err == nil {
		t.Error("accepted after RevokeIAM")
	}
}

// dsqlLogin logs in to the front as role with password, over TLS with
// serverName as SNI ("" : none).
func dsqlLogin(t *testing.T, d *DSQL, ca *CA, serverName, role, password string) error {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if serverName == "" {
		conf.InsecureSkipVerify = true
	}
	cfg, err := pgwire.PinnedConfig("127.0.0.1", 5432, conf, func(ctx context.Context) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", d.Addr())
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Database, cfg.Password = role, "postgres", password
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err == nil {
		c.Close(ctx)
	}
	return err
}

func TestDSQLFrontRefusals(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	d, ca := startDSQL(t, w, DSQLOptions{Rate: 0.5, Burst: 2})
	admin := userCreds(w.aws, "ops", d.ConnectPolicy(false)) // DbConnect only
	tok := dsqlToken(t, dsqlHost, true, admin)

	wantPg := func(err error, code, msg string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != code || !strings.Contains(pgErr.Message, msg) {
			t.Errorf("got %v, want %s %q", err, code, msg)
		}
	}
	wantPg(dsqlLogin(t, d, ca, "", "admin", tok), "08004", "unable to accept connection, sni was not received")
	wantPg(dsqlLogin(t, d, ca, dsqlHost, "admin", tok), "28000", `IAM authentication failed for user "admin"`)
	wantPg(dsqlLogin(t, d, ca, dsqlHost, "admin", "not a token"), "28000", `IAM authentication failed for user "admin"`)
	// The burst of 2 is spent (the connection without SNI was refused
	// before it counted): the rate is one every 2 s.
	wantPg(dsqlLogin(t, d, ca, dsqlHost, "admin", tok), "53400", "Unable to accept connection, rate exceeded.")
	if n := d.RateRefusals(); n != 1 {
		t.Errorf("RateRefusals %d, want 1", n)
	}
	logs := w.logs.String()
	for _, want := range []string{"connection refused: no SNI", "policy: no statement allows dsql:DbConnectAdmin on " + dsqlARN, "connection refused: over the connection rate"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// botocore (the AWS CLI's library) is an independent implementation of
// the DSQL token: its tokens must pass the same check. The AWS CLI v1
// has no dsql generate-* commands (v2 has), so the token comes from
// botocore's dsql client (generate_db_connect_auth_token, botocore
// 1.35.83 and later): in the python3 on PATH, else in the venv
// scripts/test makes where Debian's botocore is older.
func TestDSQLTokenFromBotocore(t *testing.T) {
	shortskip.Skip(t, "runs python3 with botocore")
	var pythons []string
	if py, err := exec.LookPath("python3"); err == nil {
		pythons = append(pythons, py)
	}
	pythons = append(pythons, "/opt/rds-iam-proxy-botocore/bin/python3")
	w := newWorld(t)
	d, _ := startDSQL(t, w, DSQLOptions{})
	both := d.ConnectPolicy(true)
	both.Statements = append(both.Statements, d.ConnectPolicy(false).Statements...)
	ops := userCreds(w.aws, "ops", both)
	d.GrantIAM("app_role", "arn:aws:iam::123456789012:user/ops")
	dir := t.TempDir()
	// One interpreter for both tokens: importing botocore takes seconds.
	const script = `import sys, botocore.session
c = botocore.session.get_session().create_client("dsql", region_name="us-east-1")
print(c.generate_db_connect_admin_auth_token(sys.argv[1], "us-east-1"))
print(c.generate_db_connect_auth_token(sys.argv[1], "us-east-1"))`
	var out []byte
	var tried []string
	for _, py := range pythons {
		cmd := exec.CommandContext(t.Context(), py, "-c", script, dsqlHost)
		cmd.Env = []string{
			"PATH=" + filepath.Dir(py) + ":/usr/bin:/bin",
			"HOME=" + dir,
			"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
			"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
			"AWS_ACCESS_KEY_ID=" + ops.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY=" + ops.SecretAccessKey,
			"AWS_EC2_METADATA_DISABLED=true",
		}
		if root := os.Getenv("PYENV_ROOT"); root != "" {
			cmd.Env = append(cmd.Env, "PYENV_ROOT="+root)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err == nil {
			break
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", py, err, tail(stderr.String(), 300)))
	}
	if len(tried) == len(pythons) {
		t.Fatalf("no python3 with botocore 1.35.83 or later (scripts/test makes one in /opt/rds-iam-proxy-botocore):\n%s", strings.Join(tried, "\n"))
	}
	toks := strings.Fields(string(out))
	if len(toks) != 2 {
		t.Fatalf("botocore printed %d tokens, want 2", len(toks))
	}
	for i, role := range []string{"admin", "app_role"} {
		if !strings.HasPrefix(toks[i], dsqlHost+"/?Action=") {
			t.Errorf("botocore token form: %.60q", toks[i])
		}
		if _, err := d.VerifyToken(toks[i], role); err != nil {
			t.Errorf("token from botocore for %s rejected: %v", role, err)
		}
	}
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
