package emulator

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// world is one emulator behind an HTTP server, with its log captured.
type world struct {
	aws  *AWS
	srv  *httptest.Server
	logs *syncbuf.Buffer
}

// newWorld starts an emulator and, when the test ends, checks that no secret
// it issued or verified appears in its log.
func newWorld(t *testing.T) *world {
	t.Helper()
	logs := &syncbuf.Buffer{}
	a := NewAWS(Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		out := logs.String()
		for _, s := range a.SeenSecrets() {
			if strings.Contains(out, s) {
				t.Errorf("a secret (%d chars, starting %.4q) leaked into the emulator log", len(s), s)
			}
		}
	})
	return &world{aws: a, srv: srv, logs: logs}
}

// isolateAWSEnv clears every AWS_* variable for the test and keeps the SDK
// away from the real ~/.aws and the real instance metadata address.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restores the old value after the test
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// stsClient returns a real SDK STS client for the emulator, signing with p
// (anonymous if p is nil).
func (w *world) stsClient(t *testing.T, p aws.CredentialsProvider) *sts.Client {
	t.Helper()
	opts := []func(*config.LoadOptions) error{
		config.WithRegion("us-east-1"),
		config.WithRetryMaxAttempts(1),
	}
	if p != nil {
		opts = append(opts, config.WithCredentialsProvider(p))
	}
	cfg, err := config.LoadDefaultConfig(t.Context(), opts...)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	if p == nil {
		cfg.Credentials = nil
	}
	return sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(w.srv.URL) })
}

func static(akid, secret, token string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(akid, secret, token)
}

// assumeRole calls sts:AssumeRole through the SDK and returns the session.
func (w *world) assumeRole(t *testing.T, as aws.CredentialsProvider, roleARN, sessionName string, seconds int32) aws.Credentials {
	t.Helper()
	out, err := w.stsClient(t, as).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String(sessionName),
		DurationSeconds: aws.Int32(seconds),
	})
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	c := out.Credentials
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		CanExpire:       true,
		Expires:         aws.ToTime(c.Expiration),
	}
}

func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestNewAWSDefaults(t *testing.T) {
	a := NewAWS(Options{})
	if a.AccountID() != "123456789012" || a.Region() != "us-east-1" {
		t.Errorf("defaults: account %q region %q", a.AccountID(), a.Region())
	}
	if a.SessionDuration() != time.Hour {
		t.Errorf("default session duration %v, want 1h", a.SessionDuration())
	}
	a.SetSessionDuration(2 * time.Minute)
	if a.SessionDuration() != 2*time.Minute {
		t.Errorf("session duration %v after set", a.SessionDuration())
	}
	a.SetSessionDuration(0)
	if a.SessionDuration() != time.Hour {
		t.Errorf("SetSessionDuration(0) gave %v, want the default", a.SessionDuration())
	}
	b := NewAWS(Options{AccountID: "210987654321", Region: "eu-west-1"})
	if b.AccountID() != "210987654321" || b.Region() != "eu-west-1" {
		t.Errorf("options ignored: %q %q", b.AccountID(), b.Region())
	}
}

func TestClockOffset(t *testing.T) {
	a := NewAWS(Options{})
	a.SetClockOffset(2 * time.Hour)
	if d := time.Until(a.Now()); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("clock offset %v, want about 2h", d)
	}
	a.SetClockOffset(0)
	if d := time.Until(a.Now()); d < -time.Minute || d > time.Minute {
		t.Errorf("clock offset %v after reset", d)
	}
}

func TestAddUserKeysAreRandomAndWellFormed(t *testing.T) {
	a := NewAWS(Options{})
	akidRE := regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`)
	seen := map[string]bool{}
	var first string
	for i := range 50 {
		id, secret := a.AddUser("alice", Policy{})
		if !akidRE.MatchString(id) {
			t.Fatalf("access key id %q is not AKIA + 16 base32 chars", id)
		}
		if len(secret) != 40 {
			t.Fatalf("secret is %d chars, want 40", len(secret))
		}
		if seen[id] || seen[secret] {
			t.Fatalf("key id or secret repeated")
		}
		seen[id], seen[secret] = true, true
		if i == 0 {
			first = id
		}
	}
	// Earlier keys stay valid: the user now has 50 keys.
	if _, ok := a.lookupCredential(first); !ok {
		t.Error("earlier key of the same user no longer known")
	}
}

func TestRoleAndInstanceProfileErrors(t *testing.T) {
	a := NewAWS(Options{})
	if got := a.AddRole("app", Policy{}); got != "arn:aws:iam::123456789012:role/app" {
		t.Errorf("AddRole = %q", got)
	}
	if err := a.SetRolePolicy("nope", Policy{}); err == nil {
		t.Error("SetRolePolicy on unknown role succeeded")
	}
	if err := a.SetRolePolicy("app", Policy{}); err != nil {
		t.Errorf("SetRolePolicy: %v", err)
	}
	if err := a.SetInstanceProfile("nope"); err == nil {
		t.Error("SetInstanceProfile on unknown role succeeded")
	}
	if err := a.SetInstanceProfile("app"); err != nil {
		t.Errorf("SetInstanceProfile: %v", err)
	}
	if err := a.SetInstanceProfile(""); err != nil {
		t.Errorf("SetInstanceProfile(\"\"): %v", err)
	}
}

// A policy handed to the emulator is copied: changing it afterwards changes
// nothing, and cannot race with evaluation.
func TestPolicyIsCopied(t *testing.T) {
	a := NewAWS(Options{})
	p := Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{"*"}}}}
	id, _ := a.AddUser("bob", p)
	p.Statements[0].Effect = "Deny"
	c, _ := a.lookupCredential(id)
	if ok, why := c.who.policy.Allows("rds-db:connect", "arn:x", nil); !ok {
		t.Errorf("caller's later change to the policy took effect: %s", why)
	}
}
