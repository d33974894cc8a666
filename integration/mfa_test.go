package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// mfaSetup is a person's laptop: an IAM user with long-term keys and an
// MFA device, a database role whose trust requires MFA, and ~/.aws with
// [profile db] role_arn + mfa_serial + source_profile, in a HOME of its
// own.
type mfaSetup struct {
	home, serial, roleARN string
	secret                []byte
	akid, sk              string
	env                   []string
	awsPath               string // an AWS CLI that reads AWS_ENDPOINT_URL_STS
}

func newMFASetup(t *testing.T, name string) *mfaSetup {
	t.Helper()
	return newMFASetupWith(t, name, emulator.Policy{})
}

// newMFASetupWith is newMFASetup with a policy for the user.
func newMFASetupWith(t *testing.T, name string, userPolicy emulator.Policy) *mfaSetup {
	t.Helper()
	a := w.aws.AWS
	s := &mfaSetup{home: t.TempDir()}
	s.akid, s.sk = a.AddUser(name, userPolicy)
	s.serial, s.secret = a.AddMFADevice(name)
	s.roleARN = a.AddRole(name+"-db", appPolicy())
	if err := a.SetRoleTrust(s.roleARN, &emulator.Trust{AWS: []string{"arn:aws:iam::" + a.AccountID() + ":user/" + name},
		Condition: map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}}}); err != nil {
		t.Fatal(err)
	}
	awsDir := filepath.Join(s.home, ".aws")
	if err := os.MkdirAll(awsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("[profile db]\nrole_arn = %s\nmfa_serial = %s\nsource_profile = dev\nregion = us-east-1\n\n[profile dev]\nregion = us-east-1\n", s.roleARN, s.serial)
	creds := fmt.Sprintf("[dev]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s.akid, s.sk)
	if err := os.WriteFile(filepath.Join(awsDir, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(awsDir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "RDS_IAM_PROXY_") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env, "HOME="+s.home,
		"AWS_CONFIG_FILE="+filepath.Join(awsDir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(awsDir, "credentials"),
		"AWS_ENDPOINT_URL_STS="+w.aws.URL(),
		"AWS_EC2_METADATA_DISABLED=true",
		"RDS_IAM_PROXY_CA_BUNDLE="+w.caFile)
	return s
}

// cacheKey is the CLI's cache key for [profile db].
func (s *mfaSetup) cacheKey() string {
	return authtoken.CLICacheKey(authtoken.AssumeArgs{RoleARN: s.roleARN, SerialNumber: s.serial})
}

func (s *mfaSetup) cacheFile() string {
	return filepath.Join(s.home, ".aws", "cli", "cache", s.cacheKey()+".json")
}

// code is the device's current code (each works once: a test spends at
// most one real code per device).
func (s *mfaSetup) code() string { return emulator.TOTP(s.secret, w.aws.AWS.Now()) }

// proxyCmd is the binary with AWS_PROFILE=db, as a person runs it.
func (s *mfaSetup) proxyCmd(t *testing.T, port string, logs *syncbuf.Buffer, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{
		"--endpoint", fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port()),
		"--dial-address", w.front.Addr(), "--listen", "127.0.0.1:" + port,
	}, extra...)
	cmd := exec.Command(proxyBinary(t), args...)
	cmd.Env = append(append([]string(nil), s.env...), "AWS_PROFILE=db")
	cmd.Stdout = logs
	cmd.Stderr = logs
	t.Cleanup(func() { w.logs.Write([]byte(logs.String())) }) // the suite's leak check reads it
	// Killed here, by this cmd's own variable: tests reuse theirs for a
	// restart, and a kill registered on it would reach only the last one
	// (the others outlived the suite).
	t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	})
	return cmd
}

func (s *mfaSetup) mfaCalls() int {
	return w.aws.AWS.STSCalls("AssumeRoleMFA") + w.aws.AWS.STSCalls("GetSessionTokenMFA")
}

// awsCLI runs the real AWS CLI with the setup's HOME and files, killed
// if it takes over a minute.
func (s *mfaSetup) awsCLI(t *testing.T, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if s.awsPath == "" {
		s.awsPath = awsCLIWithServiceEndpoints(t)
	}
	cmd := exec.CommandContext(ctx, s.awsPath, args...)
	cmd.Env = s.env
	return cmd
}

// awsCLIWithServiceEndpoints finds, on PATH, an AWS CLI that reads
// AWS_ENDPOINT_URL_STS (v1.29+ or v2.13+), which is how the tests point it
// at the emulator. An older one (Debian 12's awscli is 2.9.19) would ask
// the real STS and fail for a reason that is not the proxy's.
func awsCLIWithServiceEndpoints(t *testing.T) string {
	t.Helper()
	var seen []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		path := filepath.Join(dir, "aws")
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		out, err := exec.Command(path, "--version").CombinedOutput()
		if err != nil {
			continue
		}
		version, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		seen = append(seen, path+": "+version)
		var major, minor int
		if _, err := fmt.Sscanf(version, "aws-cli/%d.%d", &major, &minor); err != nil {
			continue
		}
		if (major == 1 && minor >= 29) || (major == 2 && minor >= 13) || major > 2 {
			return path
		}
	}
	t.Fatalf("no AWS CLI on PATH reads AWS_ENDPOINT_URL_STS (v1.29+ or v2.13+ needed), found: %v", seen)
	return ""
}

// TestMFASidecarFailsFast: no terminal, no code, no cached session: the
// proxy exits before listening, naming the profile, the device and the
// ways out.
func TestMFASidecarFailsFast(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "mfa-sidecar")
	logs := &syncbuf.Buffer{}
	cmd := s.proxyCmd(t, freePort(t), logs)
	noTerminal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code, took := waitExit(t, cmd, 5*time.Second)
	if code == 0 {
		t.Fatalf("exit 0 without an MFA code:\n%s", logs)
	}
	out := logs.String()
	for _, want := range []string{`profile "db"`, s.serial, "terminal", "--mfa-code", "RDS_IAM_PROXY_MFA_CODE", "role without MFA"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not name %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "proxy ready") {
		t.Errorf("it listened before failing:\n%s", out)
	}
	t.Logf("failed in %s:\n%s", took, out)
}

// TestMFAProfileInTerminal: the binary in a pseudo-terminal asks as the AWS
// CLI asks; a wrong code ends it with STS's words and the fix; the right
// code gets a session psql uses; the session lands in the AWS CLI's cache,
// where the real `aws` uses it without a prompt, and a restart without a
// terminal starts from it.
func TestMFAProfileInTerminal(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "mfa-pty")
	prompt := "Enter MFA code for " + s.serial + ": "

	// A wrong code.
	logs := &syncbuf.Buffer{}
	cmd := s.proxyCmd(t, freePort(t), logs)
	term := startInPty(t, cmd)
	term.waitOutput(t, 15*time.Second, prompt)
	wrong := "000000"
	if wrong == s.code() {
		wrong = "999999"
	}
	term.typeLine(t, wrong)
	if code, _ := waitExit(t, cmd, 20*time.Second); code == 0 {
		t.Fatalf("a wrong code: exit 0\n%s", logs)
	}
	for _, want := range []string{"MultiFactorAuthentication failed with invalid MFA one time pass code", "Fix:", s.serial} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("after a wrong code the output lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(term.out.String(), wrong) {
		t.Errorf("the code was echoed on the terminal: %q", term.out.String())
	}

	// The right code: asked once, then psql works.
	port := freePort(t)
	logs = &syncbuf.Buffer{}
	cmd = s.proxyCmd(t, port, logs)
	term = startInPty(t, cmd)
	term.waitOutput(t, 15*time.Second, prompt)
	asked := time.Now()
	code := s.code()
	term.typeLine(t, code)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
	t.Logf("prompt answered to proxy ready: %s (shared machine)", time.Since(asked).Round(time.Millisecond))
	if n := strings.Count(term.out.String(), "Enter MFA code"); n != 1 {
		t.Errorf("asked %d times, want once:\n%s", n, term.out.String())
	}
	for i := 0; i < 2; i++ {
		out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user")
		if err != nil || strings.TrimSpace(out) != iamUser {
			t.Fatalf("psql through the MFA session: %v %q\n%s\nproxy log:\n%s", err, out, stderr, logs)
		}
	}
	fi, err := os.Stat(s.cacheFile())
	if err != nil {
		t.Fatalf("the session is not in the AWS CLI cache: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	cached, err := os.ReadFile(s.cacheFile())
	if err != nil {
		t.Fatal(err)
	}
	if leaked := secretIn(logs.String()); leaked != "" {
		t.Errorf("a secret in the proxy's output: %s", leaked)
	}
	if strings.Contains(logs.String(), string(cached)) {
		t.Error("the cache file's contents are in the proxy's output")
	}
	cmd.Process.Kill()
	cmd.Wait()

	// The real aws uses that session: no terminal, no prompt, no new MFA
	// call to STS.
	before := s.mfaCalls()
	cli := s.awsCLI(t, "sts", "get-caller-identity", "--profile", "db", "--output", "text", "--query", "Arn")
	noTerminal(cli)
	out, err := cli.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ":assumed-role/mfa-pty-db/") {
		t.Fatalf("aws with the proxy's cached session: %v\n%s", err, out)
	}
	if s.mfaCalls() != before {
		t.Errorf("aws made an MFA call to STS instead of using the cache")
	}

	// A restart without a terminal starts from the cache.
	port = freePort(t)
	logs = &syncbuf.Buffer{}
	cmd = s.proxyCmd(t, port, logs)
	noTerminal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(t, 15*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
	if out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT 1"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("psql after a restart from the cache: %v %q\n%s\n%s", err, out, stderr, logs)
	}
	if s.mfaCalls() != before {
		t.Errorf("the restart made an MFA call to STS instead of using the cache")
	}
}

// TestMFACacheFromAWSCLI: a code typed into the real `aws` (in a
// pseudo-terminal) serves the proxy started without a terminal; the file
// `aws` wrote has the name CLICacheKey gives (the key proven against the
// CLI itself).
func TestMFACacheFromAWSCLI(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "mfa-cli")
	cli := s.awsCLI(t, "sts", "get-caller-identity", "--profile", "db", "--output", "text", "--query", "Arn")
	cliOut := &syncbuf.Buffer{}
	cli.Stdout, cli.Stderr = cliOut, cliOut
	term := startInPty(t, cli)
	term.waitOutput(t, 30*time.Second, "Enter MFA code for "+s.serial+": ")
	term.typeLine(t, s.code())
	if code, _ := waitExit(t, cli, 30*time.Second); code != 0 {
		t.Fatalf("aws with the MFA code: exit %d\n%s\n%s", code, cliOut, term.out)
	}
	files, _ := filepath.Glob(filepath.Join(s.home, ".aws", "cli", "cache", "*.json"))
	if len(files) != 1 || filepath.Base(files[0]) != s.cacheKey()+".json" {
		t.Fatalf("aws wrote %v; CLICacheKey says %s.json", files, s.cacheKey())
	}
	before := s.mfaCalls()

	port := freePort(t)
	logs := &syncbuf.Buffer{}
	cmd := s.proxyCmd(t, port, logs)
	noTerminal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
	if out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user"); err != nil || strings.TrimSpace(out) != iamUser {
		t.Fatalf("psql with the session aws cached: %v %q\n%s\n%s", err, out, stderr, logs)
	}
	if s.mfaCalls() != before {
		t.Errorf("the proxy made an MFA call to STS instead of using the cache aws wrote")
	}
}

// TestMFATrustRequiresMFA: --role-arn on a role whose trust requires MFA
// is refused without it, and the client's error names the MFA condition;
// --mfa-serial with --mfa-code (GetSessionToken, then the role from its
// session) logs in.
func TestMFATrustRequiresMFA(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "mfa-gst")
	env := append(append([]string(nil), s.env...), "AWS_PROFILE=dev")

	run := func(extra ...string) (string, *syncbuf.Buffer) {
		port := freePort(t)
		logs := &syncbuf.Buffer{}
		cmd := s.proxyCmd(t, port, logs, append([]string{"--role-arn", s.roleARN}, extra...)...)
		cmd.Env = env
		noTerminal(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		waitFor(t, 15*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
		return port, logs
	}

	port, logs := run()
	_, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT 1")
	if err == nil || !strings.Contains(stderr, "MultiFactorAuthPresent") || !strings.Contains(stderr, "--mfa-serial") {
		t.Fatalf("a role requiring MFA, without MFA: err %v, want a refusal naming MultiFactorAuthPresent and --mfa-serial:\n%s\n%s", err, stderr, logs)
	}
	t.Logf("psql says: %s", stderr)

	before := w.aws.AWS.STSCalls("GetSessionTokenMFA")
	port, logs = run("--mfa-serial", s.serial, "--mfa-code", s.code())
	if out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user"); err != nil || strings.TrimSpace(out) != iamUser {
		t.Fatalf("with --mfa-serial and --mfa-code: %v %q\n%s\n%s", err, out, stderr, logs)
	}
	if got := w.aws.AWS.STSCalls("GetSessionTokenMFA") - before; got != 1 {
		t.Errorf("GetSessionToken with MFA called %d times, want 1", got)
	}
}

// TestMFAGetSessionTokenUser: an IAM user whose policy denies everything
// without MFA (AWS's documented BoolIfExists pattern) is refused with its
// long-term keys, and logs in with --mfa-serial and a code: the
// GetSessionToken session signs the tokens.
func TestMFAGetSessionTokenUser(t *testing.T) {
	w.enter(t)
	p := appPolicy()
	p.Statements = append(p.Statements, emulator.Statement{Effect: "Deny", Action: []string{"*"}, Resource: []string{"*"},
		Condition: map[string]map[string][]string{"BoolIfExists": {"aws:MultiFactorAuthPresent": {"false"}}}})
	s := newMFASetupWith(t, "mfa-user", p)
	env := append(append([]string(nil), s.env...), "AWS_PROFILE=dev")
	run := func(extra ...string) (string, *syncbuf.Buffer) {
		port := freePort(t)
		logs := &syncbuf.Buffer{}
		cmd := s.proxyCmd(t, port, logs, extra...)
		cmd.Env = env
		noTerminal(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		waitFor(t, 15*time.Second, func() bool { return strings.Contains(logs.String(), "proxy ready") })
		return port, logs
	}
	port, logs := run()
	if _, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT 1"); err == nil {
		t.Fatalf("long-term keys logged in although the policy requires MFA\n%s\n%s", stderr, logs)
	}
	port, logs = run("--mfa-serial", s.serial, "--mfa-code", s.code(), "--mfa-duration", "1h")
	if out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user"); err != nil || strings.TrimSpace(out) != iamUser {
		t.Fatalf("with GetSessionToken and MFA: %v %q\n%s\n%s", err, out, stderr, logs)
	}
}

// TestMFAWhoami: whoami says whether the credentials carry MFA, and names
// the key's account with GetAccessKeyInfo when GetCallerIdentity is
// refused.
func TestMFAWhoami(t *testing.T) {
	w.enter(t)
	s := newMFASetup(t, "mfa-who")
	whoami := func(profile string, extra ...string) (string, string, error) {
		cmd := exec.Command(proxyBinary(t), append([]string{"whoami", "--endpoint", fmt.Sprintf("%s:%d", w.front.Endpoint(), w.front.Port())}, extra...)...)
		cmd.Env = append(append([]string(nil), s.env...), "AWS_PROFILE="+profile)
		noTerminal(cmd)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		w.logs.Write([]byte(out.String() + errb.String()))
		return out.String(), errb.String(), err
	}
	out, stderr, err := whoami("db", "--mfa-code", s.code())
	if err != nil || !strings.Contains(out, "MFA:          yes (device "+s.serial+", from code") || !strings.Contains(out, ":assumed-role/mfa-who-db/") {
		t.Fatalf("whoami with an MFA profile: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = whoami("db")
	if err != nil || !strings.Contains(out, "MFA:          yes (device "+s.serial+", from AWS CLI cache") {
		t.Fatalf("whoami again, from the cache: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = whoami("dev")
	if err != nil || !strings.Contains(out, "MFA:          no (long-term keys") {
		t.Fatalf("whoami with long-term keys: %v\n%s%s", err, out, stderr)
	}
	w.injectFault(t, "sts:GetCallerIdentity", emulator.Fault{Status: 403, Code: "AccessDenied",
		Message: "User: arn:aws:iam::" + w.aws.AWS.AccountID() + ":user/mfa-who is not authorized to perform: sts:GetCallerIdentity"})
	out, stderr, err = whoami("dev")
	if err == nil || !strings.Contains(out, "Account:      "+w.aws.AWS.AccountID()+" (from sts:GetAccessKeyInfo") ||
		!strings.Contains(out, "AccessKeyId:  "+s.akid) || !strings.Contains(stderr, "GetCallerIdentity") {
		t.Fatalf("whoami with GetCallerIdentity refused: %v\n%s%s", err, out, stderr)
	}
}

// TestMFATwoUpstreamsOneCode: upstreams of one process share the MFA
// session, so one code serves them all (a second GetSessionToken with the
// same code would be refused).
func TestMFATwoUpstreamsOneCode(t *testing.T) {
	w.enter(t)
	p := appPolicy()
	p.Statements = append(p.Statements, emulator.Statement{Effect: "Deny", Action: []string{"*"}, Resource: []string{"*"},
		Condition: map[string]map[string][]string{"BoolIfExists": {"aws:MultiFactorAuthPresent": {"false"}}}})
	s := newMFASetupWith(t, "mfa-two", p)
	before := w.aws.AWS.STSCalls("GetSessionTokenMFA")
	ports := []string{freePort(t), freePort(t)}
	var args []string
	for i, port := range ports {
		args = append(args, "--upstream", fmt.Sprintf("name=u%d,endpoint=%s:%d,listen=127.0.0.1:%s,dial_address=%s",
			i, w.front.Endpoint(), w.front.Port(), port, w.front.Addr()))
	}
	args = append(args, "--mfa-serial", s.serial, "--mfa-code", s.code())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, proxyBinary(t), args...)
	cmd.Env = append(append([]string(nil), s.env...), "AWS_PROFILE=dev")
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	t.Cleanup(func() { w.logs.Write([]byte(logs.String())) })
	noTerminal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(t, 15*time.Second, func() bool { return strings.Count(logs.String(), "proxy ready") == 2 })
	for _, port := range ports {
		if out, stderr, err := psql(t, dsn(port, iamUser), "-c", "SELECT current_user"); err != nil || strings.TrimSpace(out) != iamUser {
			t.Fatalf("upstream on %s: %v %q\n%s\n%s", port, err, out, stderr, logs)
		}
	}
	if got := w.aws.AWS.STSCalls("GetSessionTokenMFA") - before; got != 1 {
		t.Errorf("GetSessionToken with MFA called %d times for two upstreams, want 1", got)
	}
}
