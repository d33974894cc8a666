package authtoken

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
)

// clearAWSEnv leaves the SDK nothing from the machine: no variables, no
// shared files, no instance metadata.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestCanonicalForm(t *testing.T) {
	cases := map[string]string{
		"h:5432?Action=connect":  "h:5432/?Action=connect",
		"h:5432/?Action=connect": "h:5432/?Action=connect",
		"no-query":               "no-query",
	}
	for in, want := range cases {
		if got := canonicalForm(in); got != want {
			t.Errorf("canonicalForm(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenShape(t *testing.T) {
	clearAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE123456789")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_SESSION_TOKEN", "session-token-example")
	src, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Token(context.Background(), "mydb.abc.us-east-1.rds.amazonaws.com", 5432, "us-east-1", "App_User")
	if err != nil {
		t.Fatal(err)
	}
	host, query, ok := strings.Cut(tok, "/?")
	if !ok || host != "mydb.abc.us-east-1.rds.amazonaws.com:5432" {
		t.Fatalf("token does not start with host:port/?: %q", tok[:60])
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		"Action": "connect", "DBUser": "App_User", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
		"X-Amz-Expires": "900", "X-Amz-SignedHeaders": "host", "X-Amz-Security-Token": "session-token-example",
	}
	for k, want := range checks {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if cred := q.Get("X-Amz-Credential"); !strings.HasPrefix(cred, "AKIDEXAMPLE123456789/") || !strings.HasSuffix(cred, "/us-east-1/rds-db/aws4_request") {
		t.Errorf("X-Amz-Credential = %q", cred)
	}
	if len(q.Get("X-Amz-Signature")) != 64 {
		t.Errorf("signature %q", q.Get("X-Amz-Signature"))
	}
}

func TestNoCredentials(t *testing.T) {
	clearAWSEnv(t)
	src, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Token(context.Background(), "h", 5432, "us-east-1", "u")
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CredentialsError", err)
	}
	if !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Fatalf("error does not say where credentials are looked for: %v", err)
	}
	if _, err := src.Token(context.Background(), "h", 5432, "", "u"); err == nil {
		t.Fatal("token without region")
	}
}
