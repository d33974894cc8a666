package integration

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// Doctor and MFA: it says whether its credentials carry MFA, and when the
// rds-db:connect policy or a role's trust requires MFA it names MFA as the
// cause and the way to type a code.

// mfaDoctorUser is an IAM user of its own with an MFA device, whose
// long-term keys doctor uses (AWS_ACCESS_KEY_ID), and whose policy lets it
// ask the RDS API and the simulator but connect only under cond.
func mfaDoctorUser(t *testing.T, name string, cond map[string]map[string][]string) (serial string, secret []byte) {
	t.Helper()
	a := w.aws.AWS
	akid, sk := a.AddUser(name, emulator.Policy{Statements: []emulator.Statement{apiStatement,
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{w.front.UserARN(iamUser)}, Condition: cond}}})
	serial, secret = a.AddMFADevice(name)
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	unsetEnv(t, "AWS_SESSION_TOKEN")
	unsetEnv(t, "AWS_PROFILE")
	return serial, secret
}

// TestDoctorMFAPolicy: a policy that allows rds-db:connect only with MFA.
// Long-term keys: the policy step fails naming MFA and the way to give a
// code (not "drop the condition"); with --mfa-serial and --mfa-code every
// step passes and the credentials carry MFA.
func TestDoctorMFAPolicy(t *testing.T) {
	w.enter(t)
	serial, secret := mfaDoctorUser(t, "doctor-mfa", map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}})
	user := "arn:aws:iam::" + w.aws.AWS.AccountID() + ":user/doctor-mfa"

	rep := runDoctor(t, doctorOptions())
	expectStatus(t, rep, validate.StepCredentials, validate.OK, "MFA: no (long-term keys carry no MFA)")
	c := expectFailure(t, rep, validate.StepPolicy, "MFA required", user+" allow rds-db:connect on "+w.front.UserARN(iamUser)+" only with MFA (aws:MultiFactorAuthPresent)",
		"--mfa-serial", "--mfa-code", "mfa_serial")
	if c.Fix == "" || strings.Contains(c.Detail+c.Fix, "drop the condition") || strings.Contains(c.Detail, "MultiFactorAuthAge") {
		t.Errorf("the fix is not about MFA, or names an age limit the policy does not have: %s / %s", c.Detail, c.Fix)
	}

	o := doctorOptions()
	o.Config.MFASerial, o.Config.MFACode = serial, emulator.TOTP(secret, w.aws.AWS.Now())
	rep = runDoctor(t, o)
	if !rep.OK() {
		t.Fatal("doctor fails with MFA credentials")
	}
	expectStatus(t, rep, validate.StepCredentials, validate.OK, "GetSessionToken (MFA)", "MFA: yes (device "+serial+", from code")
	expectStatus(t, rep, validate.StepPolicy, validate.OK, "only with MFA (aws:MultiFactorAuthPresent)", "MFA of these credentials: yes (device "+serial)
	expectStatus(t, rep, validate.StepLogin, validate.OK)
}

// TestDoctorMFAAgePolicy: a policy that also limits aws:MultiFactorAuthAge
// asks for a recent code; a code typed for this run is recent.
func TestDoctorMFAAgePolicy(t *testing.T) {
	w.enter(t)
	serial, secret := mfaDoctorUser(t, "doctor-mfa-age", map[string]map[string][]string{
		"Bool":            {"aws:MultiFactorAuthPresent": {"true"}},
		"NumericLessThan": {"aws:MultiFactorAuthAge": {"300"}}})

	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepPolicy, "MFA required", "aws:MultiFactorAuthAge (a recent code)", "type a fresh MFA code", "--mfa-serial")

	o := doctorOptions()
	o.Config.MFASerial, o.Config.MFACode = serial, emulator.TOTP(secret, w.aws.AWS.Now())
	rep = runDoctor(t, o)
	if !rep.OK() {
		t.Fatal("doctor fails with a fresh MFA code")
	}
	expectStatus(t, rep, validate.StepPolicy, validate.OK, "aws:MultiFactorAuthAge", "checked moments ago")
	expectStatus(t, rep, validate.StepLogin, validate.OK)
}

// TestDoctorMFARoleTrust: --role-arn on a role whose trust requires MFA:
// without MFA the credentials step fails naming the MFA condition and
// --mfa-serial; with --mfa-serial and --mfa-code (GetSessionToken, then
// the role from its session) doctor passes and says the credentials carry
// MFA.
func TestDoctorMFARoleTrust(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "doctor-mfa-trust")
	t.Setenv("AWS_ACCESS_KEY_ID", s.akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.sk)
	unsetEnv(t, "AWS_SESSION_TOKEN")
	unsetEnv(t, "AWS_PROFILE")

	o := doctorOptions()
	o.Config.RoleARN = s.roleARN
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepCredentials, "cannot assume role "+s.roleARN, "aws:MultiFactorAuthPresent", "--mfa-serial")

	o.Config.MFASerial, o.Config.MFACode = s.serial, s.code()
	rep = runDoctor(t, o)
	if !rep.OK() {
		t.Fatal("doctor fails with MFA for a role whose trust requires it")
	}
	expectStatus(t, rep, validate.StepCredentials, validate.OK, "assumed "+s.roleARN, "MFA: yes (device "+s.serial)
	expectStatus(t, rep, validate.StepCallerID, validate.OK, ":assumed-role/doctor-mfa-trust-db/")
	expectStatus(t, rep, validate.StepLogin, validate.OK)
}

// TestDoctorMFAUnknown: session credentials from elsewhere (a role
// assumed without MFA, handed over in AWS_SESSION_TOKEN): doctor cannot
// tell whether they carry MFA, so the policy step warns that the policy
// needs it, and the refused login names MFA among its causes.
func TestDoctorMFAUnknown(t *testing.T) {
	w.enter(t)
	a := w.aws.AWS
	akid, sk := a.AddUser("doctor-mfa-unknown", emulator.Policy{})
	role := a.AddRole("doctor-mfa-unknown-db", emulator.Policy{Statements: []emulator.Statement{apiStatement,
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{w.front.UserARN(iamUser)},
			Condition: map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}}}}})
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, sk, "")))
	if err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(w.aws.URL()) }).AssumeRole(t.Context(),
		&sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("no-mfa")})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", aws.ToString(out.Credentials.AccessKeyId))
	t.Setenv("AWS_SECRET_ACCESS_KEY", aws.ToString(out.Credentials.SecretAccessKey))
	t.Setenv("AWS_SESSION_TOKEN", aws.ToString(out.Credentials.SessionToken))
	unsetEnv(t, "AWS_PROFILE")

	rep := runDoctor(t, doctorOptions())
	expectStatus(t, rep, validate.StepCredentials, validate.OK, "MFA: unknown")
	expectStatus(t, rep, validate.StepPolicy, validate.Warn, "only with MFA (aws:MultiFactorAuthPresent)", "MFA of these credentials: unknown", "--mfa-serial")
	expectFailure(t, rep, validate.StepLogin, "PAM authentication failed", "credentials that carry MFA")
}
