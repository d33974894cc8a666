package emulator

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// TestTOTPVectors: the SHA-1 test vectors of RFC 6238 (appendix B), cut to
// the six digits AWS devices show.
func TestTOTPVectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, c := range []struct {
		unix int64
		want string
	}{
		{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"},
		{1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
	} {
		if got := TOTP(secret, time.Unix(c.unix, 0)); got != c.want {
			t.Errorf("TOTP at %d = %s, want %s", c.unix, got, c.want)
		}
	}
}

// mfaWorld is a user with an MFA device and a role whose trust policy
// requires MFA, as companies set up database roles.
type mfaWorld struct {
	*world
	user           aws.CredentialsProvider
	serial         string
	secret         []byte
	roleARN        string
	requireMFATrst *Trust
}

func newMFAWorld(t *testing.T) *mfaWorld {
	t.Helper()
	isolateAWSEnv(t)
	w := newWorld(t)
	akid, sk := w.aws.AddUser("alice", Policy{})
	serial, secret := w.aws.AddMFADevice("alice")
	roleARN := w.aws.AddRole("db-mfa", Policy{})
	trust := &Trust{AWS: []string{w.aws.iamARN("user", "alice")},
		Condition: map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}}}
	if err := w.aws.SetRoleTrust(roleARN, trust); err != nil {
		t.Fatal(err)
	}
	return &mfaWorld{world: w, user: static(akid, sk, ""), serial: serial, secret: secret, roleARN: roleARN, requireMFATrst: trust}
}

func (w *mfaWorld) assumeMFA(t *testing.T, as aws.CredentialsProvider, serial, code string) (*sts.AssumeRoleOutput, error) {
	t.Helper()
	in := &sts.AssumeRoleInput{RoleArn: aws.String(w.roleARN), RoleSessionName: aws.String("dev")}
	if serial != "" {
		in.SerialNumber, in.TokenCode = aws.String(serial), aws.String(code)
	}
	return w.stsClient(t, as).AssumeRole(t.Context(), in)
}

func wantMFAFailure(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil || apiErrorCode(err) != "AccessDenied" || !strings.Contains(err.Error(), msgMFAInvalid) {
		t.Fatalf("%s: got %v, want AccessDenied %q", what, err, msgMFAInvalid)
	}
}

// TestMFAAssumeRole: a trust policy requiring MFA refuses AssumeRole
// without a code; a wrong code and a reused code get STS's words; the
// right code gives a session that carries MFA into a chained role.
func TestMFAAssumeRole(t *testing.T) {
	w := newMFAWorld(t)
	if _, err := w.assumeMFA(t, w.user, "", ""); apiErrorCode(err) != "AccessDenied" {
		t.Fatalf("without MFA: got %v, want AccessDenied", err)
	}
	if !strings.Contains(w.logs.String(), "MultiFactorAuthPresent") {
		t.Errorf("the emulator log does not name the trust condition that failed:\n%s", w.logs.String())
	}
	code := TOTP(w.secret, w.aws.Now())
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	_, err := w.assumeMFA(t, w.user, w.serial, wrong)
	wantMFAFailure(t, err, "wrong code")
	if _, err := w.assumeMFA(t, w.user, w.aws.iamARN("mfa", "mallory"), code); apiErrorCode(err) != "AccessDenied" ||
		!strings.Contains(err.Error(), "unable to validate MFA code") {
		t.Fatalf("another's device: got %v", err)
	}
	out, err := w.assumeMFA(t, w.user, w.serial, code)
	if err != nil {
		t.Fatalf("right code: %v", err)
	}
	_, err = w.assumeMFA(t, w.user, w.serial, code)
	wantMFAFailure(t, err, "reused code")
	if got := w.aws.STSCalls("AssumeRoleMFA"); got != 1 {
		t.Errorf("AssumeRoleMFA calls = %d, want 1", got)
	}

	// The MFA session's principal carries the keys into a chained role
	// whose trust requires MFA no older than an hour.
	c := out.Credentials
	sess := static(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	chained := w.aws.AddRole("chained", Policy{})
	if err := w.aws.SetRoleTrust(chained, &Trust{AWS: []string{w.roleARN}, Condition: map[string]map[string][]string{
		"NumericLessThan": {"aws:MultiFactorAuthAge": {"3600"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.tryAssume(t, sess, chained, ""); err != nil {
		t.Fatalf("chained role from an MFA session: %v", err)
	}
	w.aws.SetClockOffset(10 * time.Minute) // within the signature's skew
	if err := w.aws.SetRoleTrust(chained, &Trust{AWS: []string{w.roleARN}, Condition: map[string]map[string][]string{
		"NumericLessThan": {"aws:MultiFactorAuthAge": {"300"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.tryAssume(t, sess, chained, ""); apiErrorCode(err) != "AccessDenied" {
		t.Fatalf("chained role with MFA older than the trust allows: got %v, want AccessDenied", err)
	}
}

// TestGetSessionToken: long-term keys only, STS's duration limits, a code
// checked once; its session assumes an MFA-requiring role without another
// code, and GetCallerIdentity names the user.
func TestGetSessionToken(t *testing.T) {
	w := newMFAWorld(t)
	client := w.stsClient(t, w.user)
	for _, d := range []int32{899, 129601} {
		if _, err := client.GetSessionToken(t.Context(), &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(d)}); apiErrorCode(err) != "ValidationError" {
			t.Errorf("duration %d: got %v, want ValidationError", d, err)
		}
	}
	if err := w.aws.SetFixedMFACode(w.serial, "123456"); err != nil {
		t.Fatal(err)
	}
	out, err := client.GetSessionToken(t.Context(), &sts.GetSessionTokenInput{
		SerialNumber: aws.String(w.serial), TokenCode: aws.String("123456")})
	if err != nil {
		t.Fatalf("GetSessionToken with MFA: %v", err)
	}
	if left := time.Until(aws.ToTime(out.Credentials.Expiration)); left < 11*time.Hour || left > 13*time.Hour {
		t.Errorf("default duration: %v left, want 12 h", left)
	}
	_, err = client.GetSessionToken(t.Context(), &sts.GetSessionTokenInput{
		SerialNumber: aws.String(w.serial), TokenCode: aws.String("123456")})
	wantMFAFailure(t, err, "reused fixed code")

	c := out.Credentials
	sess := static(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	if _, err := w.stsClient(t, sess).GetSessionToken(t.Context(), &sts.GetSessionTokenInput{}); apiErrorCode(err) != "AccessDenied" ||
		!strings.Contains(err.Error(), "Cannot call GetSessionToken with session credentials") {
		t.Errorf("GetSessionToken with session credentials: got %v", err)
	}
	id, err := w.stsClient(t, sess).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(id.Arn) != w.aws.iamARN("user", "alice") {
		t.Fatalf("GetCallerIdentity of the session: %v %v", id, err)
	}
	if _, err := w.assumeMFA(t, sess, "", ""); err != nil {
		t.Fatalf("MFA-requiring role from the MFA session token, no new code: %v", err)
	}
	if got := w.aws.STSCalls("GetSessionTokenMFA"); got != 1 {
		t.Errorf("GetSessionTokenMFA calls = %d, want 1", got)
	}

	// Without MFA the session token does not satisfy the trust.
	plain, err := client.GetSessionToken(t.Context(), &sts.GetSessionTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	pc := plain.Credentials
	if _, err := w.assumeMFA(t, static(aws.ToString(pc.AccessKeyId), aws.ToString(pc.SecretAccessKey), aws.ToString(pc.SessionToken)), "", ""); apiErrorCode(err) != "AccessDenied" {
		t.Errorf("role requiring MFA from a session token without MFA: got %v, want AccessDenied", err)
	}
}

// TestGetAccessKeyInfo names the account of a key, even another
// account's.
func TestGetAccessKeyInfo(t *testing.T) {
	w := newMFAWorld(t)
	other, _ := w.aws.AddUserInAccount("111111111111", "bob", Policy{})
	out, err := w.stsClient(t, w.user).GetAccessKeyInfo(t.Context(), &sts.GetAccessKeyInfoInput{AccessKeyId: aws.String(other)})
	if err != nil || aws.ToString(out.Account) != "111111111111" {
		t.Fatalf("GetAccessKeyInfo: %v %v", out, err)
	}
}

// TestConditionOperators: the operators MFA policies use, with and without
// the key, and IfExists.
func TestConditionOperators(t *testing.T) {
	for _, c := range []struct {
		op, v   string
		present bool
		values  []string
		want    bool
	}{
		{"Bool", "true", true, []string{"true"}, true},
		{"Bool", "false", true, []string{"true"}, false},
		{"Bool", "", false, []string{"true"}, false},
		{"BoolIfExists", "", false, []string{"true"}, true},
		{"BoolIfExists", "false", true, []string{"true"}, false},
		{"BoolIfExists", "false", true, []string{"false"}, true},
		{"Null", "", false, []string{"true"}, true},
		{"Null", "x", true, []string{"true"}, false},
		{"Null", "x", true, []string{"false"}, true},
		{"NumericLessThan", "100", true, []string{"3600"}, true},
		{"NumericLessThan", "3600", true, []string{"3600"}, false},
		{"NumericLessThanEquals", "3600", true, []string{"3600"}, true},
		{"NumericGreaterThan", "3601", true, []string{"3600"}, true},
		{"NumericGreaterThanEquals", "3599", true, []string{"3600"}, false},
		{"NumericEquals", "7", true, []string{"7"}, true},
		{"NumericNotEquals", "7", true, []string{"7"}, false},
		{"NumericLessThan", "", false, []string{"3600"}, false},
		{"NumericLessThanIfExists", "", false, []string{"3600"}, true},
		{"NumericLessThan", "abc", true, []string{"3600"}, false},
		{"StringEqualsIfExists", "", false, []string{"a"}, true},
		{"Frobnicate", "a", true, []string{"a"}, false},
	} {
		if got := conditionHolds(c.op, c.v, c.present, c.values); got != c.want {
			t.Errorf("%s(%q present=%v, %v) = %v, want %v", c.op, c.v, c.present, c.values, got, c.want)
		}
	}
	// A policy requiring MFA for rds-db:connect, the way AWS documents it.
	p := Policy{Statements: []Statement{
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{"*"}},
		{Effect: "Deny", Action: []string{"*"}, Resource: []string{"*"},
			Condition: map[string]map[string][]string{"BoolIfExists": {"aws:MultiFactorAuthPresent": {"false"}}}},
	}}
	now := time.Now()
	for _, c := range []struct {
		name string
		who  principal
		want bool
	}{
		// IfExists: long-term keys carry no MFA key, so the Deny applies.
		{"long-term keys", principal{}, false},
		{"session without MFA", principal{session: true}, false},
		{"session with MFA", principal{session: true, mfa: true, mfaAt: now}, true},
	} {
		if got, why := p.Allows("rds-db:connect", "arn:x", mfaKeys(nil, c.who, now)); got != c.want {
			t.Errorf("%s: allowed %v (%s), want %v", c.name, got, why, c.want)
		}
	}
}

// TestSimulateWithMFAContext: SimulatePrincipalPolicy honours
// ContextEntries, so a caller (doctor) can flip aws:MultiFactorAuthPresent
// and see whether the decision depends on MFA; GetSessionToken credentials
// reach IAM only with MFA.
func TestSimulateWithMFAContext(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	p := Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{"*"},
		Condition: map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}}}}}
	w.aws.AddUser("needs-mfa", p)
	akid, secret := w.aws.AddUser("admin", Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"iam:SimulatePrincipalPolicy"}, Resource: []string{"*"}}}})
	_, ic := w.apiClients(t, static(akid, secret, ""))
	decide := func(present string) (string, []string) {
		in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(w.aws.iamARN("user", "needs-mfa")), ActionNames: []string{"rds-db:connect"}}
		if present != "" {
			in.ContextEntries = []iamtypes.ContextEntry{{ContextKeyName: aws.String("aws:MultiFactorAuthPresent"),
				ContextKeyType: iamtypes.ContextKeyTypeEnumBoolean, ContextKeyValues: []string{present}}}
		}
		out, err := ic.SimulatePrincipalPolicy(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		r := out.EvaluationResults[0]
		return string(r.EvalDecision), r.MissingContextValues
	}
	if d, missing := decide(""); d != "implicitDeny" || len(missing) != 1 || missing[0] != "aws:MultiFactorAuthPresent" {
		t.Errorf("no context: %s, missing %v", d, missing)
	}
	if d, _ := decide("true"); d != "allowed" {
		t.Errorf("MFA present: %s, want allowed", d)
	}
	if d, _ := decide("false"); d != "implicitDeny" {
		t.Errorf("MFA absent: %s, want implicitDeny", d)
	}

	out, err := w.stsClient(t, static(akid, secret, "")).GetSessionToken(t.Context(), &sts.GetSessionTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	_, sic := w.apiClients(t, static(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	if _, err := sic.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(w.aws.iamARN("user", "needs-mfa")), ActionNames: []string{"rds-db:connect"}}); apiErrorCode(err) != "InvalidClientTokenId" {
		t.Errorf("IAM with GetSessionToken credentials without MFA: %v, want InvalidClientTokenId", err)
	}
}
