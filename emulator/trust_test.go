package emulator

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func (w *world) tryAssume(t *testing.T, as aws.CredentialsProvider, roleARN, externalID string) (aws.Credentials, error) {
	t.Helper()
	in := &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("test")}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	out, err := w.stsClient(t, as).AssumeRole(t.Context(), in)
	if err != nil {
		return aws.Credentials{}, err
	}
	c := out.Credentials
	return aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken: aws.ToString(c.SessionToken), CanExpire: true, Expires: aws.ToTime(c.Expiration)}, nil
}

// TestTrustCrossAccount: a user of account 111111111111 reaches a role of
// the DB's account only with the trust policy, its own sts:AssumeRole
// permission and the external ID all right; the session is then in the
// DB's account.
func TestTrustCrossAccount(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	const other = "111111111111"
	roleARN := w.aws.AddRole("db-access", Policy{})
	mayAssume := Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: []string{roleARN}}}}
	akid, secret := w.aws.AddUserInAccount(other, "dev", mayAssume)
	noPermKey, noPermSecret := w.aws.AddUserInAccount(other, "intern", Policy{})
	strangerKey, strangerSecret := w.aws.AddUserInAccount("222222222222", "stranger", Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"sts:*"}, Resource: []string{"*"}}}})
	if err := w.aws.SetRoleTrust(roleARN, &Trust{AWS: []string{"arn:aws:iam::" + other + ":root"}, ExternalID: "ext-123"}); err != nil {
		t.Fatal(err)
	}
	dev := static(akid, secret, "")

	cases := []struct {
		name   string
		as     aws.CredentialsProvider
		ext    string
		reason string
	}{
		{"no external ID", dev, "", "requires an external ID and none was sent"},
		{"wrong external ID", dev, "ext-999", "external ID sent is not the one"},
		{"no sts:AssumeRole permission", static(noPermKey, noPermSecret, ""), "ext-123", "not trusted"},
		{"account not trusted", static(strangerKey, strangerSecret, ""), "ext-123", "principal arn:aws:iam::222222222222:user/stranger is not trusted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := w.tryAssume(t, c.as, roleARN, c.ext)
			if code := apiErrorCode(err); code != "AccessDenied" {
				t.Fatalf("error %v, want AccessDenied", err)
			}
			if !strings.Contains(err.Error(), "is not authorized to perform: sts:AssumeRole on resource: "+roleARN) {
				t.Errorf("message %q does not name the role as STS does", err)
			}
			if !strings.Contains(w.logs.String(), c.reason) {
				t.Errorf("log lacks reason %q", c.reason)
			}
		})
	}

	// The user's own account is its own in GetCallerIdentity.
	out, err := w.stsClient(t, dev).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Account) != other {
		t.Fatalf("GetCallerIdentity = %v, %v; want account %s", out, err, other)
	}
	sess, err := w.tryAssume(t, dev, roleARN, "ext-123")
	if err != nil {
		t.Fatalf("AssumeRole with everything right: %v", err)
	}
	out, err = w.stsClient(t, static(sess.AccessKeyID, sess.SecretAccessKey, sess.SessionToken)).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Account) != "123456789012" || !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:sts::123456789012:assumed-role/db-access/") {
		t.Fatalf("session identity = %v, %v", out, err)
	}
}

// TestRDSTokenOtherAccountRejected: credentials of another account cannot
// connect, even with a policy that allows rds-db:connect everywhere.
func TestRDSTokenOtherAccountRejected(t *testing.T) {
	a := NewAWS(Options{})
	c := userCreds2(a, "111111111111", "dev", allowConnect("*"))
	tok := slashForm(buildToken(t, "mydb.c0ffee123456.us-east-1.rds.amazonaws.com:5432", "us-east-1", "app_user", c))
	_, err := a.VerifyRDSToken(tok, testTarget())
	if err == nil || !strings.Contains(err.Error(), "is in account 111111111111 but the DB is in account 123456789012") {
		t.Fatalf("VerifyRDSToken = %v; want the account mismatch", err)
	}
}

func userCreds2(a *AWS, account, name string, p Policy) aws.Credentials {
	id, secret := a.AddUserInAccount(account, name, p)
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
}

// TestTrustWebIdentityClaims: a role trusting one OIDC provider checks the
// verified token's issuer, audience and subject.
func TestTrustWebIdentityClaims(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	roleARN := w.aws.AddRole("irsa", Policy{})
	const iss = "oidc.eks.us-east-1.amazonaws.com/id/CLUSTER1"
	if err := w.aws.SetRoleTrust(roleARN, &Trust{WebIdentity: []WebIdentityTrust{{Issuer: "https://" + iss, Audience: "sts.amazonaws.com", Subject: "system:serviceaccount:prod:*"}}}); err != nil {
		t.Fatal(err)
	}
	// Both issuers are registered providers of the account, and "other"
	// is a client ID of the trusted one: the trust policy decides.
	cluster, err := w.aws.AddOIDCProvider("https://"+iss, "sts.amazonaws.com", "other")
	if err != nil {
		t.Fatal(err)
	}
	otherCluster, err := w.aws.AddOIDCProvider("https://oidc.eks.us-east-1.amazonaws.com/id/OTHER")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, token, reason string
	}{
		{"ok", cluster.Mint(WebIdentityClaims{Subject: "system:serviceaccount:prod:app"}), ""},
		{"wrong issuer", otherCluster.Mint(WebIdentityClaims{Subject: "system:serviceaccount:prod:app"}), "is not a trusted web identity provider"},
		{"wrong audience", cluster.Mint(WebIdentityClaims{Subject: "system:serviceaccount:prod:app", Audience: "other"}), "is not the trusted \\\"sts.amazonaws.com\\\""},
		{"wrong subject", cluster.Mint(WebIdentityClaims{Subject: "system:serviceaccount:dev:app"}), "does not match the trusted \\\"system:serviceaccount:prod:*\\\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
				RoleArn: aws.String(roleARN), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(c.token),
			})
			if c.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if apiErrorCode(err) != "AccessDenied" || !strings.Contains(w.logs.String(), c.reason) {
				t.Fatalf("error %v; want AccessDenied and %q in the log", err, c.reason)
			}
		})
	}
}

// TestContainerCredentials: the endpoint hands out the role's session to
// the SDK's own provider when the Authorization token is right, and
// refuses otherwise.
func TestContainerCredentials(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	roleARN := w.aws.AddRole("task", Policy{})
	if err := w.aws.SetContainerCredentials("task", "pod-identity-token-value"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ token, code string }{{"pod-identity-token-value", ""}, {"wrong", "AccessDeniedException"}, {"", "AccessDeniedException"}} {
		p := endpointcreds.New(ContainerCredentialsURL(w.srv.URL), func(o *endpointcreds.Options) { o.AuthorizationToken = tc.token })
		c, err := p.Retrieve(t.Context())
		if tc.code != "" {
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Errorf("token %q: %v, want %s", tc.token, err, tc.code)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := w.stsClient(t, static(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		if err != nil || !strings.Contains(aws.ToString(out.Arn), ":assumed-role/task/") {
			t.Fatalf("identity %v %v, want a session of %s", out, err, roleARN)
		}
	}
	// A trust policy without the service principal refuses.
	if err := w.aws.SetRoleTrust(roleARN, &Trust{Services: []string{"ecs-tasks.amazonaws.com"}}); err != nil {
		t.Fatal(err)
	}
	p := endpointcreds.New(ContainerCredentialsURL(w.srv.URL), func(o *endpointcreds.Options) { o.AuthorizationToken = "pod-identity-token-value" })
	if _, err := p.Retrieve(t.Context()); err == nil || !strings.Contains(w.logs.String(), "pods.eks.amazonaws.com is not trusted") {
		t.Fatalf("pod identity without trust: %v", err)
	}
	// ...and ECS's path is the ECS service principal.
	if _, err := endpointcreds.New(w.srv.URL+ContainerRelativeURI, func(o *endpointcreds.Options) { o.AuthorizationToken = "pod-identity-token-value" }).Retrieve(t.Context()); err != nil {
		t.Fatalf("ECS path with ecs-tasks trusted: %v", err)
	}
}

// TestFaults: injected throttling, 5xx and delays reach the SDK per
// endpoint, Times limits them, and clearing restores service.
func TestFaults(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, secret := w.aws.AddUser("alice", Policy{})
	roleARN := w.aws.AddRole("r", Policy{})
	alice := static(akid, secret, "")
	gci := func() error {
		_, err := w.stsClient(t, alice).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		return err
	}

	w.aws.InjectFault("sts:AssumeRole", Throttling())
	if _, err := w.tryAssume(t, alice, roleARN, ""); apiErrorCode(err) != "Throttling" {
		t.Fatalf("AssumeRole under throttling: %v", err)
	}
	if err := gci(); err != nil {
		t.Fatalf("a fault on AssumeRole hit GetCallerIdentity: %v", err)
	}
	w.aws.ClearFault("sts:AssumeRole")
	if _, err := w.tryAssume(t, alice, roleARN, ""); err != nil {
		t.Fatalf("after clearing: %v", err)
	}

	w.aws.InjectFault(FaultSTS, Fault{Status: http.StatusServiceUnavailable, Times: 2})
	for i := range 2 {
		if err := gci(); apiErrorCode(err) != "ServiceUnavailable" {
			t.Fatalf("call %d: %v, want ServiceUnavailable", i, err)
		}
	}
	if err := gci(); err != nil {
		t.Fatalf("the fault outlived Times: %v", err)
	}

	w.aws.InjectFault(FaultSTS, Slow(time.Minute))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	client := w.stsClient(t, alice)
	if _, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
		t.Fatal("a slow STS answered within the deadline")
	}
	w.aws.ClearFault()

	w.aws.InjectFault(FaultIMDS, Unavailable())
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, w.srv.URL+"/latest/api/token", nil)
	req.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || w.aws.FaultHits(FaultIMDS) != 1 {
		t.Fatalf("IMDS under fault: status %d, hits %d", resp.StatusCode, w.aws.FaultHits(FaultIMDS))
	}
}

// TestSSOGetRoleCredentials: the portal answers only a known access token,
// for the role it was granted.
func TestSSOGetRoleCredentials(t *testing.T) {
	w := newWorld(t)
	w.aws.AddRole("dev", Policy{})
	if err := w.aws.AddSSOAccess("sso-token-value", "123456789012", "dev"); err != nil {
		t.Fatal(err)
	}
	if err := w.aws.AddSSOAccess("x", "123456789012", "missing"); err == nil {
		t.Fatal("access to a missing role granted")
	}
	get := func(token, role string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, w.srv.URL+"/federation/credentials?account_id=123456789012&role_name="+role, nil)
		req.Header.Set("X-Amz-Sso_bearer_token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		token, role string
		want        int
	}{{"sso-token-value", "dev", 200}, {"wrong", "dev", 401}, {"", "dev", 401}, {"sso-token-value", "admin", 403}} {
		if got := get(c.token, c.role); got != c.want {
			t.Errorf("token %q role %s: status %d, want %d", c.token, c.role, got, c.want)
		}
	}
}
