package integration

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	proxyconfig "github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// Every way a role gets its credentials, each proven by a real login
// through the proxy: the emulator's RDS front logs the caller it accepted,
// and each test checks that caller is the identity its source should give.

const otherAccount = "111111111111" // a second account, for cross-account access

var acceptedLine = regexp.MustCompile(`msg="rds iam token accepted".* caller=(\S+) access_key_id=(\S+)`)

// login is one accepted login at the emulated RDS.
type login struct{ caller, accessKeyID string }

// loginsSince returns the logins the RDS front accepted after log offset
// mark (see logMark).
func loginsSince(mark int) []login {
	var out []login
	for _, m := range acceptedLine.FindAllStringSubmatch(w.logs.String()[mark:], -1) {
		out = append(out, login{caller: m[1], accessKeyID: m[2]})
	}
	return out
}

func logMark() int { return len(w.logs.String()) }

// loginAs connects through the proxy as app_user and returns the AWS
// caller the emulated RDS saw.
func loginAs(t *testing.T, port string) string {
	t.Helper()
	mark := logMark()
	if got := connectAndQuery(t, port, iamUser); got != iamUser {
		t.Fatalf("current_user %q", got)
	}
	ls := loginsSince(mark)
	if len(ls) != 1 {
		t.Fatalf("%d accepted logins in the emulator log, want 1", len(ls))
	}
	return ls[0].caller
}

// onlySource leaves the SDK chain nothing but what the test sets up: no
// instance metadata, no shared files.
func onlySource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	return dir
}

// connectErr tries a login through the proxy and returns the proxy's
// FATAL error, failing the test if the login worked or the error text
// holds a secret.
func connectErr(t *testing.T, port string) *pgconn.PgError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err == nil {
		conn.Close(ctx)
		t.Fatal("login worked; want a failure")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Message, "rds-iam-proxy: ") {
		t.Fatalf("error %v is not the proxy's", err)
	}
	if leaked := secretIn(shown(pgErr)); leaked != "" {
		t.Fatalf("the client's error holds %s", leaked)
	}
	t.Logf("client sees: %s", shown(pgErr))
	return pgErr
}

func wantAll(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%q lacks %q", text, want)
		}
	}
}

// newUser makes an IAM user of the DB's account that may connect as
// app_user.
func newUser(t *testing.T, name string) (akid, secret string) {
	return w.aws.AWS.AddUser(name, appPolicy())
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSourceStaticEnvKeys(t *testing.T) {
	w.enter(t)
	onlySource(t)
	akid, secret := newUser(t, "env-user")
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	port := startProxy(t)
	if got := loginAs(t, port); got != "arn:aws:iam::123456789012:user/env-user" {
		t.Fatalf("caller %s", got)
	}
}

// TestSourceProfile: --profile picks a profile of a temp AWS_CONFIG_FILE
// whose keys are in AWS_SHARED_CREDENTIALS_FILE, over a default profile
// that would fail.
func TestSourceProfile(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	akid, secret := newUser(t, "profile-user")
	t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(dir, "config"), "[default]\ncredential_process = /bin/false\n\n[profile dev]\nregion = us-east-1\n", 0o600))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", writeFile(t, filepath.Join(dir, "credentials"),
		fmt.Sprintf("[dev]\naws_access_key_id = %s\naws_secret_access_key = %s\n", akid, secret), 0o600))
	port := startProxy(t, func(c *launch.Config) { c.Profile = "dev" })
	if got := loginAs(t, port); got != "arn:aws:iam::123456789012:user/profile-user" {
		t.Fatalf("caller %s", got)
	}
}

// TestSourceProfileRoleChain: AWS_PROFILE names a profile whose role_arn is
// assumed with a source_profile's keys, and that role's trust allows only
// that user.
func TestSourceProfileRoleChain(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	akid, secret := w.aws.AWS.AddUser("chain-base", emulator.Policy{})
	role := w.aws.AWS.AddRole("chain-db", appPolicy())
	if err := w.aws.AWS.SetRoleTrust(role, &emulator.Trust{AWS: []string{"arn:aws:iam::123456789012:user/chain-base"}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(dir, "config"), fmt.Sprintf(
		"[profile base]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[profile app]\nrole_arn = %s\nsource_profile = base\nrole_session_name = chain-test\n",
		akid, secret, role), 0o600))
	t.Setenv("AWS_PROFILE", "app")
	port := startProxy(t)
	if got := loginAs(t, port); got != "arn:aws:sts::123456789012:assumed-role/chain-db/chain-test" {
		t.Fatalf("caller %s", got)
	}

	// role_arn with credential_source = Environment: the role is assumed
	// with the keys in the environment. As with the AWS CLI, the keys
	// alone would win over AWS_PROFILE; --profile selects the profile.
	t.Run("credential_source", func(t *testing.T) {
		t.Setenv("AWS_PROFILE", "")
		t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(t.TempDir(), "config"), fmt.Sprintf(
			"[profile app]\nrole_arn = %s\ncredential_source = Environment\nrole_session_name = from-env\n", role), 0o600))
		t.Setenv("AWS_ACCESS_KEY_ID", akid)
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		port := startProxy(t, func(c *launch.Config) { c.Profile = "app" })
		if got := loginAs(t, port); got != "arn:aws:sts::123456789012:assumed-role/chain-db/from-env" {
			t.Fatalf("caller %s", got)
		}
	})
}

// TestSourceCredentialProcess: a profile's credential_process prints the
// credentials JSON.
func TestSourceCredentialProcess(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	akid, secret := newUser(t, "process-user")
	script := writeFile(t, filepath.Join(dir, "creds.sh"), fmt.Sprintf("#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": \"%s\"}'\n", akid, secret), 0o700)
	t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(dir, "config"), "[default]\ncredential_process = "+script+"\n", 0o600))
	port := startProxy(t)
	if got := loginAs(t, port); got != "arn:aws:iam::123456789012:user/process-user" {
		t.Fatalf("caller %s", got)
	}
}

// jwt mints the service account token of subject as the cluster's OIDC
// issuer (played by the emulator, registered in the account) signs it:
// RS256, audience sts.amazonaws.com, valid an hour. STS verifies the
// signature, then the role's trust checks issuer, audience and subject.
func jwt(t *testing.T, subject string) string {
	t.Helper()
	p, err := w.aws.AWS.AddOIDCProvider(eksIssuer) // once per world; later calls return it
	if err != nil {
		t.Fatal(err)
	}
	return p.Mint(emulator.WebIdentityClaims{Subject: subject, Audience: "sts.amazonaws.com"})
}

const eksIssuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

// irsaRole makes a role trusting the cluster's service account
// prod:app, like an IRSA role.
func irsaRole(t *testing.T, name string) string {
	t.Helper()
	role := w.aws.AWS.AddRole(name, appPolicy())
	if err := w.aws.AWS.SetRoleTrust(role, &emulator.Trust{WebIdentity: []emulator.WebIdentityTrust{{
		Issuer: eksIssuer, Audience: "sts.amazonaws.com", Subject: "system:serviceaccount:prod:app"}}}); err != nil {
		t.Fatal(err)
	}
	return role
}

func useIRSA(t *testing.T, dir, role, subject string) string {
	t.Helper()
	file := writeFile(t, filepath.Join(dir, "token"), jwt(t, subject), 0o600)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", file)
	t.Setenv("AWS_ROLE_ARN", role)
	return file
}

// TestSourceIRSA: web identity from AWS_WEB_IDENTITY_TOKEN_FILE and
// AWS_ROLE_ARN, checked against the role's trust (issuer, audience,
// subject); a token for another service account fails with an error that
// names the token file and the role.
func TestSourceIRSA(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	role := irsaRole(t, "irsa-db")
	useIRSA(t, dir, role, "system:serviceaccount:prod:app")
	port := startProxy(t, func(c *launch.Config) { c.RoleSessionName = "ignored-by-the-chain" })
	if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/irsa-db/") {
		t.Fatalf("caller %s", got)
	}

	t.Run("wrong service account", func(t *testing.T) {
		file := useIRSA(t, t.TempDir(), role, "system:serviceaccount:dev:app")
		port := startProxy(t)
		e := connectErr(t, port)
		wantAll(t, shown(e), "web identity (IRSA) with token file "+file, "for role "+role, "AccessDenied", "trust policy")
	})

	// STS verifies the token's signature: prod:app's claims under another
	// token's signature are refused before the trust policy is asked.
	t.Run("forged token", func(t *testing.T) {
		file := useIRSA(t, t.TempDir(), role, "system:serviceaccount:dev:app")
		claims := strings.Split(jwt(t, "system:serviceaccount:prod:app"), ".")
		signature := strings.Split(jwt(t, "system:serviceaccount:dev:app"), ".")[2]
		writeFile(t, file, claims[0]+"."+claims[1]+"."+signature, 0o600)
		port := startProxy(t)
		e := connectErr(t, port)
		wantAll(t, shown(e), "web identity (IRSA) with token file "+file, "for role "+role, "InvalidIdentityToken", "OIDC provider registered in IAM")
	})
}

// TestSourcePodIdentity: EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI
// and the token in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, which the
// endpoint checks.
func TestSourcePodIdentity(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	w.aws.AWS.AddRole("pod-db", appPolicy())
	const token = "eks-pod-identity-authorization-token-value"
	w.setContainerCredentials(t, "pod-db", token)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", emulator.ContainerCredentialsURL(w.aws.URL()))
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", writeFile(t, filepath.Join(dir, "eks-pod-identity-token"), token, 0o600))
	port := startProxy(t)
	if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/pod-db/") {
		t.Fatalf("caller %s", got)
	}

	t.Run("wrong token", func(t *testing.T) {
		t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", writeFile(t, filepath.Join(t.TempDir(), "token"), "not-the-token", 0o600))
		port := startProxy(t)
		e := connectErr(t, port)
		wantAll(t, shown(e), "container credentials from "+emulator.ContainerCredentialsURL(w.aws.URL()), "authorization token file", "AccessDeniedException", "refused the authorization token")
	})
}

// TestSourceECSRelativeURI: ECS task role credentials from
// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI. The SDK fetches them from
// http://169.254.170.2 + the relative URI, which cannot be served here, so
// the test hands the SDK's own endpoint provider (through
// config.WithEndpointCredentialOptions, the SDK's seam) an HTTP client
// that routes 169.254.170.2:80 to the emulator. Everything else is the
// SDK's: choosing the source, building the URL, the request and parsing
// the answer; the test checks the URL the SDK asked for.
func TestSourceECSRelativeURI(t *testing.T) {
	w.enter(t)
	onlySource(t)
	w.aws.AWS.AddRole("ecs-task", appPolicy())
	w.setContainerCredentials(t, "ecs-task", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", emulator.ContainerRelativeURI)

	var mu sync.Mutex
	var asked []string
	emu := strings.TrimPrefix(w.aws.URL(), "http://")
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "169.254.170.2:80" {
				return nil, fmt.Errorf("unexpected dial to %s", addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, emu)
		},
	}}
	recording := endpointcreds.HTTPClient(recordingClient{client, func(u string) { mu.Lock(); asked = append(asked, u); mu.Unlock() }})
	port := startProxy(t, func(c *launch.Config) {
		c.AWSLoadOptions = append(c.AWSLoadOptions, config.WithEndpointCredentialOptions(func(o *endpointcreds.Options) { o.HTTPClient = recording }))
	})
	if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/ecs-task/") {
		t.Fatalf("caller %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || asked[0] != "http://169.254.170.2"+emulator.ContainerRelativeURI {
		t.Fatalf("the SDK asked %v, want http://169.254.170.2%s", asked, emulator.ContainerRelativeURI)
	}
}

type recordingClient struct {
	c      *http.Client
	record func(string)
}

func (r recordingClient) Do(req *http.Request) (*http.Response, error) {
	r.record(req.URL.String())
	return r.c.Do(req)
}

// TestSourceIMDSv2: the instance profile over IMDSv2 with IMDSv1 disabled
// in the SDK; the emulator refuses any request without a session token,
// and none came.
func TestSourceIMDSv2(t *testing.T) {
	w.enter(t)
	if os.Getenv("AWS_EC2_METADATA_V1_DISABLED") != "true" {
		t.Fatal("the world should run with AWS_EC2_METADATA_V1_DISABLED=true")
	}
	mark := logMark()
	port := startProxy(t)
	if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/app/i-") {
		t.Fatalf("caller %s", got)
	}
	if strings.Contains(w.logs.String()[mark:], "IMDSv1 is disabled on this instance") {
		t.Fatal("the SDK made an IMDSv1 request")
	}
}

// crossAccount sets up the seed's cross-account shape: a user in account
// 111111111111 that may sts:AssumeRole a role of the DB's account, whose
// trust allows that account with an external ID.
func crossAccount(t *testing.T, user string) (role string) {
	t.Helper()
	role = w.aws.AWS.AddRole("cross-db", appPolicy())
	if err := w.aws.AWS.SetRoleTrust(role, &emulator.Trust{AWS: []string{"arn:aws:iam::" + otherAccount + ":root"}, ExternalID: "ext-7f3a"}); err != nil {
		t.Fatal(err)
	}
	may := emulator.Policy{Statements: []emulator.Statement{{Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: []string{role}}}}
	akid, secret := w.aws.AWS.AddUserInAccount(otherAccount, user, may)
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	return role
}

// TestCrossAccountAssumeRole: --role-arn with --external-id from another
// account's user; without the role the user cannot connect (wrong
// account), with the wrong external ID the client is told the role, the
// caller and the fix.
func TestCrossAccountAssumeRole(t *testing.T) {
	w.enter(t)
	onlySource(t)
	role := crossAccount(t, "dev")
	t.Run("accepted", func(t *testing.T) {
		port := startProxy(t, func(c *launch.Config) {
			c.RoleARN, c.ExternalID, c.RoleSessionName = role, "ext-7f3a", "alice-laptop"
		})
		if got := loginAs(t, port); got != "arn:aws:sts::123456789012:assumed-role/cross-db/alice-laptop" {
			t.Fatalf("caller %s", got)
		}
	})
	t.Run("default session name", func(t *testing.T) {
		port := startProxy(t, func(c *launch.Config) { c.RoleARN, c.ExternalID = role, "ext-7f3a" })
		if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/cross-db/rds-iam-proxy@") {
			t.Fatalf("caller %s", got)
		}
	})
	t.Run("wrong external ID", func(t *testing.T) {
		port := startProxy(t, func(c *launch.Config) { c.RoleARN, c.ExternalID = role, "ext-0000" })
		e := connectErr(t, port)
		wantAll(t, shown(e), "cannot assume role "+role, "as arn:aws:iam::"+otherAccount+":user/dev", "AccessDenied",
			"trust policy of "+role, "--external-id", "sts:AssumeRole")
		if e.Code != "28000" {
			t.Errorf("SQLSTATE %s, want 28000", e.Code)
		}
	})
	t.Run("no role", func(t *testing.T) {
		port := startProxy(t)
		e := connectErr(t, port)
		wantAll(t, shown(e), "PAM authentication failed")
		if !strings.Contains(w.logs.String(), "is in account "+otherAccount+" but the DB is in account 123456789012") {
			t.Error("the emulator did not refuse the other account's caller")
		}
	})
}

// TestRoleChain: --role-arn a,b: a hop role in the user's account, then the
// DB account's role, which trusts only the hop role.
func TestRoleChain(t *testing.T) {
	w.enter(t)
	onlySource(t)
	dbRole := w.aws.AWS.AddRole("chain-target", appPolicy())
	hop := w.aws.AWS.AddRoleInAccount(otherAccount, "hop", emulator.Policy{Statements: []emulator.Statement{
		{Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: []string{dbRole}}}})
	if err := w.aws.AWS.SetRoleTrust(dbRole, &emulator.Trust{AWS: []string{hop}}); err != nil {
		t.Fatal(err)
	}
	if err := w.aws.AWS.SetRoleTrust(hop, &emulator.Trust{AWS: []string{"arn:aws:iam::" + otherAccount + ":user/chainer"}}); err != nil {
		t.Fatal(err)
	}
	akid, secret := w.aws.AWS.AddUserInAccount(otherAccount, "chainer", emulator.Policy{})
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)

	port := startProxy(t, func(c *launch.Config) { c.RoleARN, c.RoleSessionName = hop+","+dbRole, "two-hops" })
	if got := loginAs(t, port); got != "arn:aws:sts::123456789012:assumed-role/chain-target/two-hops" {
		t.Fatalf("caller %s", got)
	}
	t.Run("second role alone", func(t *testing.T) {
		port := startProxy(t, func(c *launch.Config) { c.RoleARN = dbRole })
		e := connectErr(t, port)
		wantAll(t, shown(e), "cannot assume role "+dbRole, "arn:aws:iam::"+otherAccount+":user/chainer")
	})
	t.Run("role duration over the chaining limit", func(t *testing.T) {
		port := startProxy(t, func(c *launch.Config) { c.RoleARN, c.RoleDuration = hop+","+dbRole, proxyconfig.Duration(2*time.Hour) })
		e := connectErr(t, port)
		wantAll(t, shown(e), "cannot assume role "+dbRole, "1 hour session limit", "--role-duration")
	})
}

// TestWhoami: the whoami command shows the identity, its source and expiry,
// for a role chain too.
func TestWhoami(t *testing.T) {
	w.enter(t)
	onlySource(t)
	role := crossAccount(t, "whoami-dev")
	bin := proxyBinary(t)
	run := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"whoami"}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	endpoint := fmt.Sprintf("--endpoint=%s:%d", w.front.Endpoint(), w.front.Port())
	out, stderr, err := run(endpoint)
	if err != nil {
		t.Fatalf("whoami: %v\n%s", err, stderr)
	}
	wantAll(t, out, "Account:      "+otherAccount, "ARN:          arn:aws:iam::"+otherAccount+":user/whoami-dev", "Credentials:  EnvConfigCredentials", "Expires:      never")

	out, stderr, err = run(endpoint, "--role-arn="+role, "--external-id=ext-7f3a", "--role-session-name=who")
	if err != nil {
		t.Fatalf("whoami with a role: %v\n%s", err, stderr)
	}
	wantAll(t, out, "Account:      123456789012", "ARN:          arn:aws:sts::123456789012:assumed-role/cross-db/who",
		"Credentials:  AssumeRoleProvider (assumed "+role+" on top of the AWS chain)", "Expires:      20", "Region:       us-east-1")

	_, stderr, err = run(endpoint, "--role-arn="+role)
	if err == nil {
		t.Fatal("whoami without the external ID worked")
	}
	wantAll(t, stderr, "cannot assume role "+role, "--external-id")
	if leaked := secretIn(out + stderr); leaked != "" {
		t.Fatalf("whoami printed %s", leaked)
	}
}

// startProxyRunning is startProxy returning the running proxy, for its
// counters.
func startProxyRunning(t *testing.T, mods ...func(*launch.Config)) *launch.Running {
	t.Helper()
	cfg := proxyConfig()
	for _, m := range mods {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "proxy", "test", t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := launch.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}

// TestSTSEndpointAndRegion: with AWS_ENDPOINT_URL_STS pointing nowhere and
// no AWS_REGION, --sts-endpoint carries the chain's web identity call and
// the proxy's own AssumeRole to the emulator, signed for the region in the
// endpoint name.
func TestSTSEndpointAndRegion(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", dead)
	unsetEnv(t, "AWS_REGION")

	web := irsaRole(t, "endpoint-web")
	useIRSA(t, dir, web, "system:serviceaccount:prod:app")
	dbRole := w.aws.AWS.AddRole("endpoint-db", appPolicy())
	if err := w.aws.AWS.SetRoleTrust(dbRole, &emulator.Trust{AWS: []string{web}}); err != nil {
		t.Fatal(err)
	}
	mod := func(c *launch.Config) { c.RoleARN = dbRole }

	t.Run("without --sts-endpoint", func(t *testing.T) {
		port := startProxy(t, mod, func(c *launch.Config) { c.CredentialRefresh.Timeout = 4 * time.Second })
		e := connectErr(t, port)
		wantAll(t, shown(e), "web identity (IRSA)", "connection refused")
	})
	t.Run("with --sts-endpoint", func(t *testing.T) {
		port := startProxy(t, mod, func(c *launch.Config) { c.STSEndpoint = w.aws.URL() })
		if got := loginAs(t, port); !strings.HasPrefix(got, "arn:aws:sts::123456789012:assumed-role/endpoint-db/") {
			t.Fatalf("caller %s", got)
		}
	})
}

// TestSourceSSO: a profile with sso_start_url and sso_role_name, with the
// access token `aws sso login` caches in ~/.aws/sso/cache; the SDK trades
// it for role credentials at the portal (AWS_ENDPOINT_URL_SSO).
func TestSourceSSO(t *testing.T) {
	w.enter(t)
	dir := onlySource(t)
	w.aws.AWS.AddRole("sso-db", appPolicy())
	const startURL = "https://emulated.awsapps.com/start"
	const token = "sso-access-token-from-aws-sso-login"
	if err := w.aws.AWS.AddSSOAccess(token, "123456789012", "sso-db"); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	cache := filepath.Join(home, ".aws", "sso", "cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("AWS_ENDPOINT_URL_SSO", w.aws.URL())
	sum := sha1.Sum([]byte(startURL))
	writeFile(t, filepath.Join(cache, hex.EncodeToString(sum[:])+".json"),
		fmt.Sprintf(`{"accessToken":"%s","expiresAt":"%s","region":"us-east-1","startUrl":"%s"}`, token, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), startURL), 0o600)
	t.Setenv("AWS_CONFIG_FILE", writeFile(t, filepath.Join(dir, "config"),
		"[profile sso]\nsso_start_url = "+startURL+"\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = sso-db\n", 0o600))
	port := startProxy(t, func(c *launch.Config) { c.Profile = "sso" })
	if got := loginAs(t, port); got != "arn:aws:sts::123456789012:assumed-role/sso-db/sso-user" {
		t.Fatalf("caller %s", got)
	}
}
