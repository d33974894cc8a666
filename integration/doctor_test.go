package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// Doctor's tests break the emulated world one way each and assert the
// first step that fails and what it says; a healthy world passes every
// step. Each test puts back what it changed.

// basePolicy is the role's policy as the world starts: connect as
// app_user on both instances.
func basePolicy() emulator.Policy {
	return emulator.Policy{Statements: append(w.front.ConnectPolicy(iamUser).Statements, w.my.ConnectPolicy(iamUser).Statements...)}
}

// apiStatement lets the role ask the RDS API and the policy simulator.
var apiStatement = emulator.Statement{Effect: "Allow",
	Action:   []string{"rds:DescribeDBInstances", "rds:DescribeDBClusters", "iam:SimulatePrincipalPolicy"},
	Resource: []string{"*"}}

// setRolePolicy gives the instance-profile role p until the test ends.
func setRolePolicy(t *testing.T, p emulator.Policy) {
	t.Helper()
	w.setRolePolicy(t, "app", p)
}

// grantAPI lets the role describe DBs and simulate its policy, on top of
// its connect permissions.
func grantAPI(t *testing.T, extra ...emulator.Statement) {
	t.Helper()
	p := basePolicy()
	p.Statements = append(append(p.Statements, apiStatement), extra...)
	setRolePolicy(t, p)
}

func doctorOptions() validate.DoctorOptions {
	return validate.DoctorOptions{Config: proxyConfig(), DBUser: iamUser, Database: appDB, StepTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), nil)).With("component", "doctor")}
}

func mysqlDoctorOptions() validate.DoctorOptions {
	o := doctorOptions()
	o.Config = mysqlConfig()
	return o
}

// runDoctor runs doctor and returns its report, logging it as text.
func runDoctor(t *testing.T, o validate.DoctorOptions) *validate.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rep := validate.Doctor(ctx, o)
	var b bytes.Buffer
	rep.WriteText(&b)
	t.Logf("doctor:\n%s", b.String())
	if s := secretIn(b.String()); s != "" {
		t.Errorf("doctor's report shows a secret: %s", s)
	}
	return rep
}

// check returns the report's check of step.
func check(t *testing.T, rep *validate.Report, step string) validate.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == step {
			return c
		}
	}
	t.Fatalf("no %q step in the report", step)
	return validate.Check{}
}

// expectFailure asserts that step is the first and only failure, that it
// is the report's last check, and that its detail and fix hold each of
// want.
func expectFailure(t *testing.T, rep *validate.Report, step string, want ...string) validate.Check {
	t.Helper()
	if rep.OK() {
		t.Fatalf("doctor passed; want %q to fail", step)
	}
	last := rep.Checks[len(rep.Checks)-1]
	for _, c := range rep.Checks[:len(rep.Checks)-1] {
		if c.Status == validate.Fail {
			t.Fatalf("step %q failed before %q: %s", c.Name, step, c.Detail)
		}
	}
	if last.Name != step || last.Status != validate.Fail {
		t.Fatalf("the first failure is %q (%s: %s), want %q", last.Name, last.Status, last.Detail, step)
	}
	text := last.Detail + "\nfix: " + last.Fix
	for _, s := range want {
		if !strings.Contains(text, s) {
			t.Errorf("%s: %q does not say %q", step, text, s)
		}
	}
	return last
}

func expectStatus(t *testing.T, rep *validate.Report, step string, st validate.Status, want ...string) {
	t.Helper()
	c := check(t, rep, step)
	if c.Status != st {
		t.Errorf("%s: status %s (%s), want %s", step, c.Status, c.Detail, st)
	}
	for _, s := range want {
		if !strings.Contains(c.Detail+"\nfix: "+c.Fix, s) {
			t.Errorf("%s: %q does not say %q", step, c.Detail+" fix: "+c.Fix, s)
		}
	}
}

var allSteps = []string{validate.StepCredentials, validate.StepCallerID, validate.StepClock, validate.StepEndpoint,
	validate.StepDNS, validate.StepTCP, validate.StepTLS, validate.StepIAMAuth, validate.StepPolicy, validate.StepLogin, validate.StepDatabase}

func TestDoctorHealthy(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	for _, tc := range []struct {
		name string
		o    validate.DoctorOptions
	}{{"postgres", doctorOptions()}, {"mysql", mysqlDoctorOptions()}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runDoctor(t, tc.o)
			if !rep.OK() {
				t.Fatal("a healthy setup fails")
			}
			if len(rep.Checks) != len(allSteps) {
				t.Fatalf("%d checks, want one per step (%d)", len(rep.Checks), len(allSteps))
			}
			for i, c := range rep.Checks {
				if c.Name != allSteps[i] {
					t.Errorf("check %d is %q, want %q", i, c.Name, allSteps[i])
				}
				want := validate.OK
				if c.Name == validate.StepDNS || c.Name == validate.StepDatabase {
					want = validate.Skip
				}
				if c.Status != want {
					t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Detail, want)
				}
			}
			expectStatus(t, rep, validate.StepCallerID, validate.OK, "assumed-role/app/")
			expectStatus(t, rep, validate.StepIAMAuth, validate.OK, "enabled", "db-EMULATED")
			expectStatus(t, rep, validate.StepPolicy, validate.OK, "arn:aws:iam::123456789012:role/app may rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:db-EMULATED")
			expectStatus(t, rep, validate.StepDatabase, validate.Skip, "run rds-iam-proxy validate")
		})
	}
}

// Without permission to ask the RDS API or the simulator, those steps say
// so and are not failures; the login still proves the setup.
func TestDoctorAWSChecksDenied(t *testing.T) {
	w.enter(t)
	rep := runDoctor(t, doctorOptions())
	if !rep.OK() {
		t.Fatal("denied AWS checks made doctor fail")
	}
	expectStatus(t, rep, validate.StepIAMAuth, validate.Skip, "could not check (AccessDenied for rds:DescribeDBInstances)", "aws rds describe-db-instances")
	expectStatus(t, rep, validate.StepPolicy, validate.Skip, "could not check", "--resource-id")
	expectStatus(t, rep, validate.StepLogin, validate.OK)

	// With --resource-id the policy is checked, and a denied simulator
	// is a skip too.
	o := doctorOptions()
	o.ResourceID = w.front.ResourceID()
	rep = runDoctor(t, o)
	expectStatus(t, rep, validate.StepPolicy, validate.Skip, "could not check (AccessDenied for iam:SimulatePrincipalPolicy)")
}

func TestDoctorNoCredentials(t *testing.T) {
	w.enter(t)
	w.setInstanceProfile(t, "")
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepCredentials, "no usable AWS credentials", "instance profile")
}

// Expired session keys still sign tokens (offline); GetCallerIdentity is
// where they are caught.
func TestDoctorExpiredCredentials(t *testing.T) {
	w.enter(t)
	akid, secret := w.aws.AWS.AddUser("doctor-assumer", emulator.Policy{})
	w.setSessionDuration(t, time.Second)
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")))
	if err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String(fmt.Sprintf("arn:aws:iam::%s:role/app", w.aws.AWS.AccountID())), RoleSessionName: aws.String("expiring")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	t.Setenv("AWS_ACCESS_KEY_ID", aws.ToString(out.Credentials.AccessKeyId))
	t.Setenv("AWS_SECRET_ACCESS_KEY", aws.ToString(out.Credentials.SecretAccessKey))
	t.Setenv("AWS_SESSION_TOKEN", aws.ToString(out.Credentials.SessionToken))
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepCallerID, "have expired", "ExpiredToken", "PAM authentication failed")
}

func TestDoctorClockSkew(t *testing.T) {
	w.enter(t)
	w.setClockOffset(t, 20*time.Minute)
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepClock, "clock", "timedatectl set-ntp true")
}

func TestDoctorSTSThrottled(t *testing.T) {
	w.enter(t)
	w.injectFault(t, emulator.FaultSTS, emulator.Throttling())
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepCallerID, "throttled", "Throttling")
}

// A throttled RDS API is a question not answered, not a failure.
func TestDoctorRDSAPIThrottled(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	w.injectFault(t, "rds:DescribeDBInstances", emulator.Throttling())
	rep := runDoctor(t, doctorOptions())
	if !rep.OK() {
		t.Fatal("a throttled DescribeDBInstances made doctor fail")
	}
	expectStatus(t, rep, validate.StepIAMAuth, validate.Skip, "could not check (Throttling for rds:DescribeDBInstances)")
}

func TestDoctorRegionMismatch(t *testing.T) {
	w.enter(t)
	o := doctorOptions()
	o.Config.Region = "us-west-2"
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepEndpoint, "token region mismatch", "--region us-west-2", "is in us-east-1")
}

func TestDoctorHostMismatch(t *testing.T) {
	w.enter(t)
	o := doctorOptions()
	o.Config.Endpoint = "db.example.com:5432"
	o.Config.TLSServerName = w.front.Endpoint()
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepEndpoint, "host mismatch", "--endpoint "+w.front.Endpoint()+":5432")
}

func TestDoctorEndpointNotRDSName(t *testing.T) {
	w.enter(t)
	for _, tc := range []struct{ endpoint, want string }{
		{"127.0.0.1:5432", "is an IP address"},
		{"db.internal.invalid:5432", "is not an RDS endpoint name"},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			o := doctorOptions()
			o.Config.Endpoint = tc.endpoint
			rep := runDoctor(t, o)
			expectFailure(t, rep, validate.StepEndpoint, tc.want, "--dial-address")
		})
	}
}

// An endpoint without its port: tokens name the engine's default, and
// the DB listens elsewhere.
func TestDoctorPortMissing(t *testing.T) {
	w.enter(t)
	front, err := w.aws.AWS.StartPostgres(w.aws.CA, emulator.PostgresOptions{
		Endpoint: "portdb.c0ffee123456.us-east-1.rds.amazonaws.com", Port: 15432, ResourceID: "db-PORTDB0001", Backend: w.pg.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	grantAPI(t, front.ConnectPolicy(iamUser).Statements...)
	o := doctorOptions()
	o.Config.Endpoint = front.Endpoint()
	o.Config.DialAddress = front.Addr()
	rep := runDoctor(t, o)
	expectStatus(t, rep, validate.StepEndpoint, validate.Warn, "has no port", "port 5432")
	expectFailure(t, rep, validate.StepIAMAuth, "port mismatch", "listens on port 15432", "--endpoint "+front.Endpoint()+":15432")

	// Without DescribeDBInstances, the login is where it shows.
	setRolePolicy(t, emulator.Policy{Statements: front.ConnectPolicy(iamUser).Statements})
	rep = runDoctor(t, o)
	expectFailure(t, rep, validate.StepLogin, "PAM authentication failed", "port")
}

func TestDoctorDNS(t *testing.T) {
	w.enter(t)
	o := doctorOptions()
	o.Config.Endpoint = "nosuchdb.c0ffee123456.us-east-1.rds.amazonaws.com:5432"
	o.Config.DialAddress = ""
	o.StepTimeout = 10 * time.Second
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepDNS, "cannot resolve nosuchdb.c0ffee123456.us-east-1.rds.amazonaws.com", "--dial-address")
}

func TestDoctorTCP(t *testing.T) {
	w.enter(t)
	o := doctorOptions()
	o.Config.DialAddress = closedAddr(t)
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepTCP, "cannot connect to "+o.Config.DialAddress, "security group")
}

func TestDoctorTLSWrongBundle(t *testing.T) {
	w.enter(t)
	for _, tc := range []struct {
		name string
		o    validate.DoctorOptions
	}{{"postgres", doctorOptions()}, {"mysql", mysqlDoctorOptions()}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Config.CABundle = otherCAFile(t)
			rep := runDoctor(t, tc.o)
			expectFailure(t, rep, validate.StepTLS, "certificate signed by unknown authority", "bundle")
		})
	}
}

func TestDoctorIAMAuthNotEnabled(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	w.setIAMAuth(t, w.front, false)
	rep := runDoctor(t, doctorOptions())
	id, _, _ := strings.Cut(w.front.Endpoint(), ".")
	expectFailure(t, rep, validate.StepIAMAuth, "IAM database authentication is not enabled on the instance "+id,
		"aws rds modify-db-instance --region us-east-1 --db-instance-identifier "+id+" --enable-iam-database-authentication --apply-immediately")

	// When DescribeDBInstances is not allowed, the login shows it the way
	// RDS does (a token checked as a password), explained.
	setRolePolicy(t, basePolicy())
	rep = runDoctor(t, doctorOptions())
	expectStatus(t, rep, validate.StepIAMAuth, validate.Skip, "could not check (AccessDenied for rds:DescribeDBInstances)")
	expectFailure(t, rep, validate.StepLogin, "password authentication failed", "IAM database authentication is not enabled", "GRANT rds_iam TO app_user", "modify-db-instance")
}

func TestDoctorMySQLIAMAuthNotEnabled(t *testing.T) {
	w.enter(t)
	w.setIAMAuth(t, w.my, false)
	rep := runDoctor(t, mysqlDoctorOptions())
	expectFailure(t, rep, validate.StepLogin, "Plugin 'AWSAuthenticationPlugin' is not loaded", "modify-db-instance")
}

// A MySQL user that is not IDENTIFIED WITH AWSAuthenticationPlugin is never
// switched to the cleartext plugin: the server refuses it.
func TestDoctorMySQLNotIAMUser(t *testing.T) {
	w.enter(t)
	grantAPI(t, emulator.Statement{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{w.my.UserARN(plainUser)}})
	o := mysqlDoctorOptions()
	o.DBUser = plainUser
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepLogin, "is not an IAM user", "IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'", "cleartext")
}

func TestDoctorPolicyMissing(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	o := doctorOptions()
	o.DBUser = unlistedUser
	rep := runDoctor(t, o)
	arn := w.front.UserARN(unlistedUser)
	expectFailure(t, rep, validate.StepPolicy, "no policy of arn:aws:iam::123456789012:role/app allows rds-db:connect on "+arn,
		`"Action":"rds-db:connect","Resource":["`+arn+`"]`)

	// Not checkable: the login fails and doctor says what it could not
	// verify.
	setRolePolicy(t, basePolicy())
	rep = runDoctor(t, o)
	expectFailure(t, rep, validate.StepLogin, "PAM authentication failed", "(not checked)", "rds-db:connect",
		`--cloudwatch-logs-export-configuration '{"EnableLogTypes":["iam-db-auth-error"]}'`)
}

func TestDoctorExplicitDeny(t *testing.T) {
	w.enter(t)
	grantAPI(t, emulator.Statement{Effect: "Deny", Action: []string{"rds-db:*"}, Resource: []string{"*"}})
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepPolicy, "an explicit Deny in the policies of arn:aws:iam::123456789012:role/app refuses rds-db:connect", "SCPs")
}

// The database checks run last, only after a token login worked, and
// their checks join the report.
func TestDoctorValidateDBHook(t *testing.T) {
	w.enter(t)
	ran := 0
	o := doctorOptions()
	o.ValidateDB = func(context.Context) *validate.Report {
		ran++
		return &validate.Report{Checks: []validate.Check{{Name: "rds_iam membership", Status: validate.Fail, Detail: "app_user is not in rds_iam", Fix: "GRANT rds_iam TO app_user;"}}}
	}
	rep := runDoctor(t, o)
	if ran != 1 || rep.OK() || rep.Checks[len(rep.Checks)-1].Name != "rds_iam membership" {
		t.Errorf("ran %d times; report ends with %+v", ran, rep.Checks[len(rep.Checks)-1])
	}
	o.Config.DialAddress = closedAddr(t)
	runDoctor(t, o)
	if ran != 1 {
		t.Error("the database checks ran after a failed step")
	}
}

func TestDoctorUserCaseMismatch(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	o := doctorOptions()
	o.DBUser = "App_User"
	rep := runDoctor(t, o)
	expectFailure(t, rep, validate.StepPolicy, "user case mismatch", `as "app_user" but not as "App_User"`, "--db-user app_user")
}

func TestDoctorUnsupportedConditionKey(t *testing.T) {
	w.enter(t)
	setRolePolicy(t, emulator.Policy{Statements: []emulator.Statement{apiStatement, {
		Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{w.front.UserARN(iamUser)},
		Condition: map[string]map[string][]string{"IpAddress": {"aws:SourceIp": {"10.0.0.0/8"}}},
	}}})
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepPolicy, "unsupported policy condition keys", "aws:SourceIp", "never matches")
}

// An Aurora cluster endpoint: the policy must name the cluster's resource
// id, not an instance's.
func TestDoctorCluster(t *testing.T) {
	w.enter(t)
	front, err := w.aws.AWS.StartPostgres(w.aws.CA, emulator.PostgresOptions{
		Endpoint: "aurora.cluster-c0ffee123456.us-east-1.rds.amazonaws.com", ResourceID: "db-AURORAMEMBER01", Backend: w.pg.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	front.JoinCluster("aurora", "cluster-AURORA0001")
	instanceARN := fmt.Sprintf("arn:aws:rds-db:us-east-1:%s:dbuser:db-AURORAMEMBER01/%s", w.aws.AWS.AccountID(), iamUser)
	grantAPI(t, emulator.Statement{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{instanceARN}})
	o := doctorOptions()
	o.Config.Endpoint = fmt.Sprintf("%s:%d", front.Endpoint(), front.Port())
	o.Config.DialAddress = front.Addr()
	rep := runDoctor(t, o)
	expectStatus(t, rep, validate.StepIAMAuth, validate.OK, "cluster aurora", "cluster-AURORA0001")
	expectFailure(t, rep, validate.StepPolicy, "dbuser:cluster-AURORA0001/app_user", "cluster's resource id (cluster-...)")

	grantAPI(t, front.ConnectPolicy(iamUser).Statements...)
	rep = runDoctor(t, o)
	// The login works; this front is no real Aurora instance (a plain
	// PostgreSQL behind it, no members listed), and the topology step says
	// so. TestDoctorAuroraCluster checks a whole emulated cluster.
	expectStatus(t, rep, validate.StepLogin, validate.OK)
	expectStatus(t, rep, validate.StepMembers, validate.Skip, "lists no members of cluster aurora")
	expectFailure(t, rep, validate.StepTopology, "Aurora topology functions", "do not exist", "not an Aurora PostgreSQL instance")
}

// A signer in another account: the DB is not visible there, and the fix
// is to assume a role in the DB's account, after which all is well.
func TestDoctorCrossAccount(t *testing.T) {
	w.enter(t)
	grantAPI(t)
	roleARN := fmt.Sprintf("arn:aws:iam::%s:role/app", w.aws.AWS.AccountID())
	akid, secret := w.aws.AWS.AddUserInAccount("210987654321", "doctor-outsider", emulator.Policy{Statements: []emulator.Statement{
		{Effect: "Allow", Action: []string{"rds:DescribeDBInstances", "sts:AssumeRole"}, Resource: []string{"*"}}}})
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	rep := runDoctor(t, doctorOptions())
	expectFailure(t, rep, validate.StepIAMAuth, "is visible to account 210987654321", "--role-arn")

	o := doctorOptions()
	o.Config.RoleARN = roleARN
	rep = runDoctor(t, o)
	if !rep.OK() {
		t.Fatal("doctor fails with --role-arn in the DB's account")
	}
	expectStatus(t, rep, validate.StepCredentials, validate.OK, "assumed "+roleARN)
	expectStatus(t, rep, validate.StepLogin, validate.OK)
}

// The command: text by default, JSON with --format json, exit 1 on a
// failure.
func TestDoctorCommand(t *testing.T) {
	w.enter(t)
	bin := proxyBinary(t)
	akid, secret := w.aws.AWS.AddUser("doctor-cli", emulator.Policy{Statements: append(basePolicy().Statements, apiStatement)})
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+akid, "AWS_SECRET_ACCESS_KEY="+secret)
	args := []string{"doctor", "--endpoint", fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()),
		"--dial-address", w.front.Addr(), "--ca-bundle", w.caFile, "--db-user", iamUser, "--db-name", appDB}

	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range []string{"ok    sts:GetCallerIdentity: tokens are signed as arn:aws:iam::123456789012:user/doctor-cli",
		"ok    rds-db:connect policy: arn:aws:iam::123456789012:user/doctor-cli may rds-db:connect", "ok    token login: logged in as app_user@",
		// The last step is validate's database checks, through the proxy.
		"ok    rds_iam membership", "ok    SELECT on tables in public"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}

	cmd = exec.Command(bin, append(args, "--format", "json", "--region", "eu-west-1")...)
	cmd.Env = env
	out, err = cmd.Output()
	if code := exitCode(err); code != 1 {
		t.Fatalf("doctor with a wrong region: exit %d (%v), want 1\n%s", code, err, out)
	}
	var got struct {
		OK     bool             `json:"ok"`
		Checks []validate.Check `json:"checks"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("--format json: %v\n%s", err, out)
	}
	if got.OK || len(got.Checks) == 0 || got.Checks[len(got.Checks)-1].Name != validate.StepEndpoint {
		t.Errorf("json report: %+v", got)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
