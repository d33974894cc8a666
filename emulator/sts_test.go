package emulator

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func TestGetCallerIdentityWithUserKeysFromEnv(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, secret := w.aws.AddUser("alice", Policy{})

	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", w.srv.URL)
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if got := aws.ToString(out.Arn); got != "arn:aws:iam::123456789012:user/alice" {
		t.Errorf("Arn = %q", got)
	}
	if got := aws.ToString(out.Account); got != "123456789012" {
		t.Errorf("Account = %q", got)
	}
	if !regexp.MustCompile(`^AIDA[A-Z2-7]{17}$`).MatchString(aws.ToString(out.UserId)) {
		t.Errorf("UserId = %q, want AIDA + 17 chars", aws.ToString(out.UserId))
	}
}

func TestGetCallerIdentityRejections(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, secret := w.aws.AddUser("alice", Policy{})
	roleARN := w.aws.AddRole("app", Policy{})

	// A session that expires: issued with the emulator clock 10 minutes
	// behind, for 15 minutes, then the clock moves 6 minutes ahead.
	w.aws.SetClockOffset(-10 * time.Minute)
	expiring := w.assumeRole(t, static(akid, secret, ""), roleARN, "short", 900)
	w.aws.SetClockOffset(0)
	live := w.assumeRole(t, static(akid, secret, ""), roleARN, "live", 900)

	tests := []struct {
		name   string
		creds  aws.CredentialsProvider
		offset time.Duration
		code   string
		reason string
	}{
		{"wrong secret", static(akid, otherSecret(secret), ""), 0, "SignatureDoesNotMatch", "signature mismatch"},
		{"unknown key", static("AKIA"+randomText(16), secret, ""), 0, "InvalidClientTokenId", "unknown access key id"},
		{"long-term key with session token", static(akid, secret, "bogus"), 0, "InvalidClientTokenId", "sent with an X-Amz-Security-Token"},
		{"session key without token", static(live.AccessKeyID, live.SecretAccessKey, ""), 0, "InvalidClientTokenId", "without its X-Amz-Security-Token"},
		{"session key with wrong token", static(live.AccessKeyID, live.SecretAccessKey, live.SessionToken+"x"), 0, "InvalidClientTokenId", "is not the token issued"},
		{"expired session", static(expiring.AccessKeyID, expiring.SecretAccessKey, expiring.SessionToken), 6 * time.Minute, "ExpiredToken", "expired at"},
		{"clock skew", static(akid, secret, ""), 16 * time.Minute, "SignatureDoesNotMatch", "Signature expired"},
		{"anonymous", nil, 0, "MissingAuthenticationToken", "no Authorization header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.aws.SetClockOffset(tt.offset)
			defer w.aws.SetClockOffset(0)
			_, err := w.stsClient(t, tt.creds).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
			if got := apiErrorCode(err); got != tt.code {
				t.Fatalf("error code %q (%v), want %s", got, err, tt.code)
			}
			if !strings.Contains(w.logs.String(), tt.reason) {
				t.Errorf("log does not give the reason %q:\n%s", tt.reason, w.logs.String())
			}
		})
	}
}

func TestAssumeRoleThenGetCallerIdentity(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, secret := w.aws.AddUser("alice", Policy{})
	roleARN := w.aws.AddRole("app", Policy{})

	// Through the SDK's own AssumeRole credentials provider.
	base := w.stsClient(t, static(akid, secret, ""))
	prov := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(base, roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "deploy-42"
		o.ExternalID = aws.String("ext-123")
	}))
	creds, err := prov.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("assume role: %v", err)
	}
	if !regexp.MustCompile(`^ASIA[A-Z2-7]{16}$`).MatchString(creds.AccessKeyID) {
		t.Errorf("session key id %q, want ASIA + 16 chars", creds.AccessKeyID)
	}
	if !creds.CanExpire || creds.Expires.Before(time.Now().Add(14*time.Minute)) || creds.Expires.After(time.Now().Add(16*time.Minute)) {
		t.Errorf("session expires %v, want about 15 minutes from now (the provider asks for 900s)", creds.Expires)
	}
	out, err := w.stsClient(t, prov).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity with session: %v", err)
	}
	if got, want := aws.ToString(out.Arn), "arn:aws:sts::123456789012:assumed-role/app/deploy-42"; got != want {
		t.Errorf("Arn = %q, want %q", got, want)
	}
	if got := aws.ToString(out.UserId); !regexp.MustCompile(`^AROA[A-Z2-7]{17}:deploy-42$`).MatchString(got) {
		t.Errorf("UserId = %q", got)
	}
	if !strings.Contains(w.logs.String(), "external_id=ext-123") {
		t.Errorf("external id not recorded in log")
	}

	// Role chaining: a session may assume a role for at most an hour.
	_, err = w.stsClient(t, prov).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("chain"), DurationSeconds: aws.Int32(7200),
	})
	if apiErrorCode(err) != "ValidationError" || !strings.Contains(err.Error(), "role chaining") {
		t.Errorf("chained AssumeRole for 2h: %v, want ValidationError about role chaining", err)
	}
}

func TestAssumeRoleRejections(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, secret := w.aws.AddUser("alice", Policy{})
	roleARN := w.aws.AddRole("app", Policy{})
	c := w.stsClient(t, static(akid, secret, ""))

	tests := []struct {
		name string
		in   sts.AssumeRoleInput
		code string
		msg  string
	}{
		{"unknown role", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/nope"), RoleSessionName: aws.String("s1")},
			"AccessDenied", "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/nope"},
		{"other account", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::999999999999:role/app"), RoleSessionName: aws.String("s1")},
			"AccessDenied", "not authorized"},
		{"session name too short", sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s")},
			"ValidationError", "greater than or equal to 2"},
		{"session name bad chars", sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("a b")},
			"ValidationError", "regular expression"},
		{"session name too long", sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String(strings.Repeat("a", 65))},
			"ValidationError", "less than or equal to 64"},
		{"duration too short", sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(899)},
			"ValidationError", "greater than or equal to 900"},
		{"duration too long", sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(43201)},
			"ValidationError", "less than or equal to 43200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.AssumeRole(t.Context(), &tt.in)
			if apiErrorCode(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("AssumeRole: %v; want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}

	// Without DurationSeconds the session lasts SessionDuration.
	w.aws.SetSessionDuration(2 * time.Hour)
	out, err := c.AssumeRole(t.Context(), &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(aws.ToTime(out.Credentials.Expiration)); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("default session lasts %v, want 2h", d)
	}
}

func TestAssumeRoleWithWebIdentityFromEnv(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	roleARN := w.aws.AddRole("ci", Policy{})

	tokenFile := filepath.Join(t.TempDir(), "token")
	gha, err := w.aws.AddOIDCProvider("https://token.actions.githubusercontent.com")
	if err != nil {
		t.Fatal(err)
	}
	token := gha.Mint(WebIdentityClaims{Subject: "repo:acme/app:ref:refs/heads/main"})
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", w.srv.URL)
	t.Setenv("AWS_ROLE_ARN", roleARN)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ROLE_SESSION_NAME", "gha-run-7")

	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("web identity credentials: %v", err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" {
		t.Errorf("got %s with token %v, want session credentials", creds.AccessKeyID, creds.SessionToken != "")
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if got, want := aws.ToString(out.Arn), "arn:aws:sts::123456789012:assumed-role/ci/gha-run-7"; got != want {
		t.Errorf("Arn = %q, want %q", got, want)
	}

	// The answer echoes the token's subject, audience and provider.
	res, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("direct"), WebIdentityToken: aws.String(token),
	})
	if err != nil {
		t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
	}
	if got := aws.ToString(res.SubjectFromWebIdentityToken); got != "repo:acme/app:ref:refs/heads/main" {
		t.Errorf("SubjectFromWebIdentityToken = %q", got)
	}
	if got := aws.ToString(res.Audience); got != "sts.amazonaws.com" {
		t.Errorf("Audience = %q", got)
	}
	if got := aws.ToString(res.Provider); got != "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" {
		t.Errorf("Provider = %q", got)
	}
	if got := aws.ToString(res.AssumedRoleUser.Arn); got != "arn:aws:sts::123456789012:assumed-role/ci/direct" {
		t.Errorf("AssumedRoleUser.Arn = %q", got)
	}

	_, err = w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String("arn:aws:iam::123456789012:role/nope"), RoleSessionName: aws.String("x1"), WebIdentityToken: aws.String(token),
	})
	if apiErrorCode(err) != "AccessDenied" {
		t.Errorf("unknown role: %v, want AccessDenied", err)
	}
}

// The wire format, checked without the SDK: errors as real STS sends them.
func TestSTSWireErrors(t *testing.T) {
	w := newWorld(t)
	post := func(form url.Values) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.PostForm(w.srv.URL, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	var e struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Error   struct{ Type, Code, Message string }
		ID      string `xml:"RequestId"`
	}

	resp, body := post(url.Values{"Action": {"Frobnicate"}, "Version": {"2011-06-15"}})
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if resp.StatusCode != 400 || e.Error.Type != "Sender" || e.Error.Code != "InvalidAction" || e.ID == "" ||
		resp.Header.Get("x-amzn-RequestId") != e.ID || resp.Header.Get("Content-Type") != "text/xml" {
		t.Errorf("unknown action: %d %q %+v", resp.StatusCode, body, e)
	}

	resp, body = post(url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}})
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 || e.Error.Code != "MissingAuthenticationToken" {
		t.Errorf("unsigned GetCallerIdentity: %d %q", resp.StatusCode, body)
	}

	resp, body = post(url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {"arn:aws:iam::123456789012:role/x"}, "RoleSessionName": {"ab"}})
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || e.Error.Code != "ValidationError" || !strings.Contains(e.Error.Message, "webIdentityToken") {
		t.Errorf("web identity without token: %d %q", resp.StatusCode, body)
	}
}

// otherSecret changes the last character of secret (always: a fixed
// replacement would leave the 1 in 64 secrets ending in it unchanged).
func otherSecret(secret string) string {
	last := "x"
	if strings.HasSuffix(secret, "x") {
		last = "y"
	}
	return secret[:len(secret)-1] + last
}
