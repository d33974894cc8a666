package emulator

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// resign replaces a token's claims with claims, keeping its header and
// signature: a forged token.
func resign(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// TestWebIdentityTokensVerified: AssumeRoleWithWebIdentity accepts only
// tokens signed (RS256) by a registered OIDC provider's key, unexpired and
// for one of its client IDs, and answers everything else with STS's codes
// (InvalidIdentityToken, ExpiredTokenException) and the real reason in the
// log, even for a role without a trust policy.
func TestWebIdentityTokensVerified(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	roleARN := w.aws.AddRole("open", Policy{}) // no trust policy: only the token's validity decides
	const issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/CLUSTER1"
	p, err := w.aws.AddOIDCProvider(issuer)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := w.aws.AddOIDCProvider(issuer + "/"); err != nil || again != p {
		t.Fatalf("registering the issuer again: %v, %v; want the same provider", again, err)
	}
	// The same issuer in another account's emulator: another key.
	impostor, err := NewAWS(Options{}).AddOIDCProvider(issuer)
	if err != nil {
		t.Fatal(err)
	}
	unregistered, err := NewAWS(Options{}).AddOIDCProvider("https://token.actions.githubusercontent.com")
	if err != nil {
		t.Fatal(err)
	}
	const sub = "system:serviceaccount:prod:app"
	good := p.Mint(WebIdentityClaims{Subject: sub})
	now := w.aws.Now()
	header := func(alg string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
	}
	claims := map[string]any{"iss": issuer, "sub": sub, "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}
	payload, _ := json.Marshal(claims)
	unsigned := header("none") + "." + base64.RawURLEncoding.EncodeToString(payload) + "."

	cases := []struct {
		name, token, code, message, reason string
	}{
		{"unsigned (alg none)", unsigned, "InvalidIdentityToken", "could not be validated", `alg is \"none\"`},
		{"forged claims", resign(good, map[string]any{"iss": issuer, "sub": "system:serviceaccount:kube-system:admin", "aud": "sts.amazonaws.com", "exp": now.Add(time.Hour).Unix()}),
			"InvalidIdentityToken", "could not be validated", "signature does not verify"},
		{"signed by another key", impostor.Mint(WebIdentityClaims{Subject: sub}), "InvalidIdentityToken", "verification key", "is not a key of " + issuer},
		{"signed by another key, no kid", strings.Replace(impostor.Mint(WebIdentityClaims{Subject: sub}), strings.Split(impostor.Mint(WebIdentityClaims{}), ".")[0], header("RS256"), 1),
			"InvalidIdentityToken", "could not be validated", "signature does not verify"},
		{"unregistered issuer", unregistered.Mint(WebIdentityClaims{Subject: sub}), "InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://token.actions.githubusercontent.com", "not a registered OIDC provider"},
		{"expired", p.Mint(WebIdentityClaims{Subject: sub, IssuedAt: now.Add(-2 * time.Hour), Expires: now.Add(-time.Minute)}),
			"ExpiredTokenException", "Token expired: current date/time", "the web identity token expired at"},
		{"wrong audience", p.Mint(WebIdentityClaims{Subject: sub, Audience: "vault"}), "InvalidIdentityToken", "Incorrect token audience", "is not a client ID of the provider"},
		{"not a JWT", "opaque-token-value", "InvalidIdentityToken", "could not be validated", "not a JWT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mark := len(w.logs.String())
			_, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
				RoleArn: aws.String(roleARN), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(c.token),
			})
			if apiErrorCode(err) != c.code || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("error %v; want %s with %q", err, c.code, c.message)
			}
			if log := w.logs.String()[mark:]; !strings.Contains(log, c.reason) {
				t.Errorf("log lacks %q:\n%s", c.reason, log)
			}
		})
	}

	// The genuine token works, and moving the emulator's clock past its
	// exp makes it expire.
	res, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(good),
	})
	if err != nil || aws.ToString(res.SubjectFromWebIdentityToken) != sub || aws.ToString(res.Audience) != "sts.amazonaws.com" {
		t.Fatalf("genuine token: %v, %v", res, err)
	}
	w.aws.SetClockOffset(2 * time.Hour)
	defer w.aws.SetClockOffset(0)
	if _, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(good),
	}); apiErrorCode(err) != "ExpiredTokenException" {
		t.Fatalf("token two hours later: %v, want ExpiredTokenException", err)
	}
}

// TestWebIdentityTokenLength: STS's bound on the token (20,000
// characters) holds before anything is parsed.
func TestWebIdentityTokenLength(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	roleARN := w.aws.AddRole("open", Policy{})
	_, err := w.stsClient(t, nil).AssumeRoleWithWebIdentity(t.Context(), &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(strings.Repeat("a", maxWebIdentityToken+1)),
	})
	if apiErrorCode(err) != "ValidationError" || !strings.Contains(err.Error(), "less than or equal to 20000") {
		t.Fatalf("oversized token: %v", err)
	}
}
