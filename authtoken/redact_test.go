package authtoken

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactSecrets(t *testing.T) {
	for _, in := range []string{
		`parse failed of process output: {"Version":1,"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"TOPSECRET","SessionToken":"SESSIONSECRET"`,
		`SecretAccessKey:TOPSECRET,SessionToken:SESSIONSECRET`,
		`X-Amz-Security-Token=SESSIONSECRET&X-Amz-Signature=TOPSECRET`,
		`opaque wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYTOPSECRET and more`,
	} {
		out := redactSecrets(in)
		if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "SESSIONSECRET") {
			t.Errorf("redactSecrets(%q) = %q", in, out)
		}
	}
	for _, plain := range []string{
		"dial tcp 169.254.169.254:80: connect: connection refused",
		"unable to read file at /var/run/secrets/eks.amazonaws.com/serviceaccount/token: open /var/run/secrets/eks.amazonaws.com/serviceaccount/token: no such file or directory",
		"InvalidIdentityToken: No OpenIDConnect provider found in your account for https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
		"ExpiredTokenException: Token expired: current date/time 1700000000 must be before the expiration date/time 1690000000",
		"User: arn:aws:sts::123456789012:assumed-role/app/i-0abc123def4567890 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/ProductionDatabaseAccessRoleForApplications",
	} {
		if got := redactSecrets(plain); got != plain {
			t.Errorf("plain text changed: %q", got)
		}
	}
}

// TestCredentialProcessOutputNeverShown: a credential_process that prints
// credentials in a shape the SDK cannot parse must not get its output (the
// secret) into the error a person sees.
func TestCredentialProcessOutputNeverShown(t *testing.T) {
	clearAWSEnv(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "creds.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho 'SecretAccessKey:MARKERSECRET123,SessionToken:MARKERSESSION456 not json'\n"), 0o755)
	config := filepath.Join(dir, "config")
	os.WriteFile(config, []byte("[default]\ncredential_process = "+script+"\n"), 0o644)
	t.Setenv("AWS_CONFIG_FILE", config)
	src, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Token(context.Background(), "h", 5432, "us-east-1", "u")
	if err == nil {
		t.Fatal("token from broken credential_process")
	}
	if msg := err.Error(); strings.Contains(msg, "MARKER") || !strings.Contains(msg, "credential_process") {
		t.Fatalf("error %q: want credential_process named and no output shown", msg)
	}
}
