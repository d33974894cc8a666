package authtoken

import (
	"context"
	"errors"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestNoTokenFromCredentialsAboutToExpire: RDS checks the signing
// credentials when the login arrives, after the dial and TLS. A token
// signed with credentials that expire within seconds, while refreshing
// them fails, would be rejected as a wrong token; the login is refused
// instead with the credentials' own story.
func TestNoTokenFromCredentialsAboutToExpire(t *testing.T) {
	clearEnv(t)
	var calls atomic.Int32
	provider := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		if calls.Add(1) == 1 {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret", Source: "TestProvider",
				CanExpire: true, Expires: time.Now().Add(signLife - time.Second)}, nil
		}
		return aws.Credentials{}, &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity",
			Err: &smithyhttp.RequestSendError{Err: io.EOF}}
	})
	ctx := context.Background()
	s, err := New(ctx, Options{Region: "us-east-1", LoadOptions: []func(*config.LoadOptions) error{config.WithCredentialsProvider(provider)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Just fetched: the best there is, so it signs.
	if _, err := s.Token(ctx, "db.example.com", 5432, "us-east-1", "app"); err != nil {
		t.Fatalf("first token: %v", err)
	}
	_, err = s.Token(ctx, "db.example.com", 5432, "us-east-1", "app")
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("second token, with credentials about to expire and the refresh failing: %v", err)
	}
	for _, want := range []string{"TestProvider", "too soon to sign with", "refreshing them failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestWebIdentitySendFailureIsTheNetwork: an STS that closes the
// connection without an answer is a network problem, not the token file.
func TestWebIdentitySendFailureIsTheNetwork(t *testing.T) {
	clearEnv(t)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token")
	err := &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRoleWithWebIdentity",
		Err: &smithyhttp.RequestSendError{Err: io.EOF}}
	x, _ := describeWebIdentityFailure(err, true)
	msg := failure.Join(x.cause, x.fix)
	if !strings.Contains(msg, "Fix: STS could not be reached") || strings.Contains(msg, "token file exists") {
		t.Fatalf("explained as %q", msg)
	}
}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(name, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
