package emulator

import (
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
)

const (
	testHost     = "mydb.c0ffee123456.us-east-1.rds.amazonaws.com"
	testEndpoint = testHost + ":5432"
	testResource = "db-EMULATEDINSTANCE1"
	testUserARN  = "arn:aws:rds-db:us-east-1:123456789012:dbuser:" + testResource + "/app_user"
)

func testTarget() TokenTarget {
	return TokenTarget{Host: testHost, Port: 5432, Region: "us-east-1", DBUser: "app_user", ResourceID: testResource}
}

func allowConnect(resources ...string) Policy {
	return Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: resources}}}
}

// buildToken makes a token with the SDK's own feature/rds/auth, which emits
// the "host:port?Action=..." form.
func buildToken(t *testing.T, endpoint, region, user string, c aws.Credentials) string {
	t.Helper()
	tok, err := auth.BuildAuthToken(t.Context(), endpoint, region, user, static(c.AccessKeyID, c.SecretAccessKey, c.SessionToken))
	if err != nil {
		t.Fatalf("BuildAuthToken: %v", err)
	}
	return tok
}

// slashForm turns "host:port?..." into "host:port/?...", the form botocore
// and the AWS CLI emit.
func slashForm(tok string) string { return strings.Replace(tok, "?", "/?", 1) }

// presign signs an arbitrary token-shaped request, for the cases the SDK
// refuses to build (other action, other service, longer expiry).
func presign(t *testing.T, endpoint, region, service string, q url.Values, c aws.Credentials, at time.Time) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+endpoint+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := v4.NewSigner().PresignHTTP(t.Context(), c, req, emptyPayloadHash, service, region, at)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u, "https://")
}

func userCreds(a *AWS, name string, p Policy) aws.Credentials {
	id, secret := a.AddUser(name, p)
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
}

func TestVerifyRDSTokenAccepts(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	alice := userCreds(w.aws, "alice", allowConnect(testUserARN))
	roleARN := w.aws.AddRole("app", allowConnect("arn:aws:rds-db:us-east-1:123456789012:dbuser:db-*/app_*"))
	session := w.assumeRole(t, static(alice.AccessKeyID, alice.SecretAccessKey, ""), roleARN, "worker-1", 900)

	tok := buildToken(t, testEndpoint, "us-east-1", "app_user", alice)
	if !strings.HasPrefix(tok, testEndpoint+"?Action=connect") {
		t.Fatalf("SDK token form changed: %.60q", tok)
	}
	for name, tc := range map[string]struct {
		token   string
		wantARN string
		akid    string
	}{
		"user key, ? form":      {tok, "arn:aws:iam::123456789012:user/alice", alice.AccessKeyID},
		"user key, /? form":     {slashForm(tok), "arn:aws:iam::123456789012:user/alice", alice.AccessKeyID},
		"upper-case host":       {strings.Replace(buildToken(t, strings.ToUpper(testHost)+":5432", "us-east-1", "app_user", alice), "?", "/?", 1), "arn:aws:iam::123456789012:user/alice", alice.AccessKeyID},
		"session, ? form":       {buildToken(t, testEndpoint, "us-east-1", "app_user", session), "arn:aws:sts::123456789012:assumed-role/app/worker-1", session.AccessKeyID},
		"session, /? form":      {slashForm(buildToken(t, testEndpoint, "us-east-1", "app_user", session)), "arn:aws:sts::123456789012:assumed-role/app/worker-1", session.AccessKeyID},
		"shorter X-Amz-Expires": {presign(t, testEndpoint, "us-east-1", "rds-db", url.Values{"Action": {"connect"}, "DBUser": {"app_user"}, "X-Amz-Expires": {"60"}}, alice, time.Now()), "arn:aws:iam::123456789012:user/alice", alice.AccessKeyID},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := w.aws.VerifyRDSToken(tc.token, testTarget())
			if err != nil {
				t.Fatalf("VerifyRDSToken: %v", err)
			}
			if c.ARN != tc.wantARN || c.AccountID != "123456789012" || c.AccessKeyID != tc.akid {
				t.Errorf("caller %+v, want %s with %s", c, tc.wantARN, tc.akid)
			}
		})
	}
	if !strings.Contains(w.logs.String(), "rds iam token accepted") {
		t.Error("acceptance not logged")
	}
}

// The AWS CLI (botocore) is an independent implementation; its tokens use the
// "/?" form.
func TestVerifyRDSTokenFromAWSCLI(t *testing.T) {
	shortskip.Skip(t, "runs the AWS CLI")
	awsCLI, err := exec.LookPath("aws")
	if err != nil {
		// scripts/test installs it; a missing CLI must not pass silently.
		t.Fatal("the AWS CLI (aws) is needed for this cross-check: apt-get install -y awscli")
	}
	w := newWorld(t)
	alice := userCreds(w.aws, "alice", allowConnect(testUserARN))
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), awsCLI, "rds", "generate-db-auth-token",
		"--hostname", testHost, "--port", "5432", "--region", "us-east-1", "--username", "app_user")
	cmd.Env = []string{
		"PATH=/usr/bin:/bin:" + filepath.Dir(awsCLI),
		"HOME=" + dir,
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_ACCESS_KEY_ID=" + alice.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + alice.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws rds generate-db-auth-token failed: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if !strings.HasPrefix(tok, testEndpoint+"/?") {
		t.Errorf("CLI token form: %.60q", tok)
	}
	if _, err := w.aws.VerifyRDSToken(tok, testTarget()); err != nil {
		t.Errorf("token from the AWS CLI rejected: %v", err)
	}
}

func TestVerifyRDSTokenRejects(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	a := w.aws
	alice := userCreds(a, "alice", allowConnect(testUserARN))
	asUser := func(p Policy) func(t *testing.T) string {
		return func(t *testing.T) string {
			return buildToken(t, testEndpoint, "us-east-1", "app_user", userCreds(a, "u"+randomText(6), p))
		}
	}
	roleARN := a.AddRole("app", allowConnect(testUserARN))
	a.AddRole("revoked", allowConnect(testUserARN))
	aliceP := static(alice.AccessKeyID, alice.SecretAccessKey, "")
	session := w.assumeRole(t, aliceP, roleARN, "s1", 900)
	revoked := w.assumeRole(t, aliceP, "arn:aws:iam::123456789012:role/revoked", "s2", 900)
	if err := a.SetRolePolicy("revoked", Policy{}); err != nil {
		t.Fatal(err)
	}
	// A session that will have expired while its token has not: issued with
	// the clock 10 minutes behind for 15 minutes; the case moves the clock 6
	// minutes ahead.
	a.SetClockOffset(-10 * time.Minute)
	expiring := w.assumeRole(t, aliceP, roleARN, "s3", 900)
	a.SetClockOffset(0)

	tok := func(endpoint, region, user string, c aws.Credentials) func(t *testing.T) string {
		return func(t *testing.T) string { return buildToken(t, endpoint, region, user, c) }
	}
	good := tok(testEndpoint, "us-east-1", "app_user", alice)
	withCreds := func(c aws.Credentials) func(t *testing.T) string {
		return tok(testEndpoint, "us-east-1", "app_user", c)
	}
	signed := func(service string, q url.Values) func(t *testing.T) string {
		return func(t *testing.T) string {
			return presign(t, testEndpoint, "us-east-1", service, q, alice, time.Now())
		}
	}
	mod := func(c aws.Credentials, f func(*aws.Credentials)) aws.Credentials { f(&c); return c }

	tests := []struct {
		name   string
		token  func(t *testing.T) string
		target func(*TokenTarget)
		offset time.Duration
		reason string
	}{
		{name: "not a token", token: func(*testing.T) string { return "hunter2" }, reason: "malformed token: no '?'"},
		{name: "no port", token: func(t *testing.T) string { return strings.Replace(good(t), ":5432", "", 1) }, reason: "the port is required"},
		{name: "repeated parameter", token: func(t *testing.T) string { return good(t) + "&DBUser=admin" }, reason: "parameter DBUser appears 2 times"},
		{name: "unexpected parameter", token: func(t *testing.T) string { return good(t) + "&Foo=bar" }, reason: `unexpected parameter "Foo"`},
		{name: "expired", token: good, offset: 16 * time.Minute, reason: "token expired at"},
		{name: "future-dated", token: good, offset: -6 * time.Minute, reason: "after the emulator clock"},
		{name: "wrong host", token: tok("otherdb.c0ffee123456.us-east-1.rds.amazonaws.com:5432", "us-east-1", "app_user", alice), reason: `token is for host "otherdb.`},
		{name: "IP instead of endpoint", token: tok("127.0.0.1:5432", "us-east-1", "app_user", alice), reason: `token is for host "127.0.0.1"`},
		{name: "wrong port", token: tok(testHost+":5433", "us-east-1", "app_user", alice), reason: "token is for port 5433, this endpoint listens on 5432"},
		{name: "wrong region", token: tok(testEndpoint, "us-west-2", "app_user", alice), reason: "region us-west-2 in credential scope, DB is in us-east-1"},
		{name: "wrong DBUser case", token: tok(testEndpoint, "us-east-1", "App_User", alice), reason: `DBUser "App_User" does not match login user "app_user"`},
		{name: "other DBUser than login", token: good, target: func(tt *TokenTarget) { tt.DBUser = "admin" }, reason: `DBUser "app_user" does not match login user "admin"`},
		{name: "wrong action", token: signed("rds-db", url.Values{"Action": {"login"}, "DBUser": {"app_user"}, "X-Amz-Expires": {"900"}}), reason: `Action is "login"`},
		{name: "wrong service", token: signed("rds", url.Values{"Action": {"connect"}, "DBUser": {"app_user"}, "X-Amz-Expires": {"900"}}), reason: `service "rds" in credential scope`},
		{name: "expires too long", token: signed("rds-db", url.Values{"Action": {"connect"}, "DBUser": {"app_user"}, "X-Amz-Expires": {"3600"}}), reason: "X-Amz-Expires=3600 exceeds the 900 seconds"},
		{name: "tampered signature", token: func(t *testing.T) string {
			s := good(t)
			last := s[len(s)-1]
			return s[:len(s)-1] + map[bool]string{true: "0", false: "1"}[last != '0']
		}, reason: "signature mismatch"},
		{name: "tampered DBUser", token: func(t *testing.T) string {
			return strings.Replace(tok(testEndpoint, "us-east-1", "app_user2", alice)(t), "DBUser=app_user2", "DBUser=app_user", 1)
		}, reason: "signature mismatch"},
		{name: "wrong secret", token: withCreds(mod(alice, func(c *aws.Credentials) { c.SecretAccessKey = strings.Repeat("x", 40) })), reason: "signature mismatch"},
		{name: "unknown key", token: withCreds(mod(alice, func(c *aws.Credentials) { c.AccessKeyID = "AKIA" + randomText(16) })), reason: "unknown access key id AKIA"},
		{name: "expired session creds", token: withCreds(expiring), offset: 6 * time.Minute, reason: "session credentials " + expiring.AccessKeyID + " expired at"},
		{name: "wrong session token", token: withCreds(mod(session, func(c *aws.Credentials) { c.SessionToken = strings.Replace(c.SessionToken, "A", "B", 1) + "x" })), reason: "X-Amz-Security-Token is not the session token issued"},
		{name: "missing session token", token: withCreds(mod(session, func(c *aws.Credentials) { c.SessionToken = "" })), reason: "used without its X-Amz-Security-Token"},
		{name: "long-term key with session token", token: withCreds(mod(alice, func(c *aws.Credentials) { c.SessionToken = "IQoJforged" })), reason: "long-term key " + alice.AccessKeyID + " carries an X-Amz-Security-Token"},
		{name: "policy explicit Deny", token: asUser(Policy{Statements: []Statement{
			{Effect: "Allow", Action: []string{"rds-db:*"}, Resource: []string{"*"}},
			{Effect: "Deny", Action: []string{"rds-db:connect"}, Resource: []string{"arn:aws:rds-db:*:*:dbuser:*/app_user"}},
		}}), reason: "policy: explicit Deny in statement 2 rds-db:connect on " + testUserARN},
		{name: "policy no Allow", token: asUser(allowConnect("arn:aws:rds-db:us-east-1:123456789012:dbuser:" + testResource + "/other")), reason: "policy: no statement allows rds-db:connect on " + testUserARN},
		{name: "policy other resource id", token: good, target: func(tt *TokenTarget) { tt.ResourceID = "db-OTHER" }, reason: "policy: no statement allows rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:db-OTHER/app_user"},
		{name: "policy Allow only with aws:SourceIp", token: asUser(Policy{Statements: []Statement{{
			Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{testUserARN},
			Condition: map[string]map[string][]string{"IpAddress": {"aws:SourceIp": {"127.0.0.0/8"}}},
		}}}), reason: "policy: no statement allows"},
		{name: "role policy changed after session", token: withCreds(revoked), reason: "policy: no statement allows rds-db:connect on " + testUserARN + " for arn:aws:sts::123456789012:assumed-role/revoked/s2"},
		{name: "target without resource id", token: good, target: func(tt *TokenTarget) { tt.ResourceID = "" }, reason: "emulator misconfigured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			target := testTarget()
			if tt.target != nil {
				tt.target(&target)
			}
			a.SetClockOffset(tt.offset)
			defer a.SetClockOffset(0)
			c, err := a.VerifyRDSToken(token, target)
			if err == nil {
				t.Fatalf("accepted, caller %+v", c)
			}
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v, want *TokenError", err, err)
			}
			if !strings.Contains(te.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", te.Reason, tt.reason)
			}
			if logs := w.logs.String(); !strings.Contains(logs, te.Reason) && !strings.Contains(logs, strconv.Quote(te.Reason)) {
				t.Errorf("reason not logged")
			}
			if strings.Contains(te.Reason, token) {
				t.Errorf("reason contains the token")
			}
			for _, s := range a.SeenSecrets() {
				if strings.Contains(te.Reason, s) || strings.Contains(err.Error(), s) {
					t.Errorf("reason contains a secret")
				}
			}
		})
	}
}

// Tokens are checked while other goroutines change policies and the clock;
// run with -race.
func TestVerifyRDSTokenConcurrent(t *testing.T) {
	a := NewAWS(Options{})
	alice := userCreds(a, "alice", Policy{})
	a.AddRole("app", allowConnect(testUserARN))
	a.AddUser("alice", allowConnect(testUserARN))
	tok := buildToken(t, testEndpoint, "us-east-1", "app_user", alice)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := a.VerifyRDSToken(tok, testTarget()); err != nil {
					t.Errorf("VerifyRDSToken: %v", err)
					return
				}
				if i == 0 {
					_ = a.SetRolePolicy("app", allowConnect("*"))
					a.SetClockOffset(time.Second)
				}
			}
		})
	}
	wg.Wait()
}
