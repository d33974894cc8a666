package authtoken

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realisticToken is a session token shaped like STS's: "IQoJb3JpZ2luX2Vj"
// (base64 of the token's version header) and several hundred characters
// of base64 with '+', '/' and '='.
func realisticToken(r *rand.Rand) string {
	b := make([]byte, 720)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return "IQoJb3JpZ2luX2Vj" + base64.StdEncoding.EncodeToString(b)
}

// randomKey is a 40-character secret access key (30 random bytes in
// base64). Without digits it is such a key conditioned on having none:
// each character uniform over the 54 others, as likely as in a real one.
func randomKey(r *rand.Rand, digits bool) string {
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if !digits {
		alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/"
	}
	b := make([]byte, 40)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestRedactSecrets(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	const key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"         // AWS's documented example key
	const keyNoDigit = "wJalrXUtnFEMI/KxMDENG/bPxRfiCYzEXAMPLEKEY" // the same shape without a digit
	token := realisticToken(r)
	sig := "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	jwtToken := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0.eyJpc3MiOiJodHRwczovL29pZGMuZWtzIiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OnByb2Q6YXBwIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtcmVhbGx5LWxvbmctZW5vdWdo"
	presigned := "mydb.c0ffee123456.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app_user&X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=ASIAQWERTYUIOPASDFGH%2F20260101%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=900" +
		"&X-Amz-Security-Token=" + url.QueryEscape(token) + "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig

	secrets := []struct {
		name, in string
		gone     []string // none of these may survive
		kept     []string // these must
	}{
		{"credential_process JSON", `parse failed of process output: {"Version":1,"AccessKeyId":"AKIDEXAMPLE","SecretAccessKey":"TOPSECRET","SessionToken":"SESSIONSECRET"`, []string{"TOPSECRET", "SESSIONSECRET"}, []string{"AKIDEXAMPLE"}},
		{"pairs", `SecretAccessKey:TOPSECRET,SessionToken:SESSIONSECRET`, []string{"TOPSECRET", "SESSIONSECRET"}, nil},
		{"query pairs", `X-Amz-Security-Token=SESSIONSECRET&X-Amz-Signature=TOPSECRET`, []string{"TOPSECRET", "SESSIONSECRET"}, nil},
		{"key with digits", "opaque " + key + " and more", []string{key, "EXAMPLEKEY"}, []string{"opaque ", " and more"}},
		{"key without digits", "the key " + keyNoDigit + " was refused", []string{keyNoDigit, "EXAMPLEKEY"}, []string{"the key ", " was refused"}},
		{"key URL-encoded", "secret=" + "x&k=" + url.QueryEscape(key) + "&y", []string{"EXAMPLEKEY", "bPxRfiCY"}, []string{"&y"}},
		{"key URL-encoded, lower-case escapes", "k " + strings.ReplaceAll(url.QueryEscape(keyNoDigit), "%2F", "%2f") + " end", []string{"EXAMPLEKEY", "bPxRfiCY"}, []string{" end"}},
		{"session token raw", "unexpected value " + token + " in answer", []string{token[20:60]}, []string{"unexpected value ", " in answer"}},
		{"session token URL-encoded", "GET /?t=" + url.QueryEscape(token) + " HTTP/1.1", []string{token[20:60], url.QueryEscape(token)[100:140]}, []string{"GET /?", " HTTP/1.1"}},
		{"presigned RDS token", "build IAM token: " + presigned, []string{token[20:60], url.QueryEscape(token)[100:140], sig}, []string{"mydb.c0ffee123456.us-east-1.rds.amazonaws.com:5432", "DBUser=app_user"}},
		{"STS XML", "<Credentials><AccessKeyId>ASIAQWERTYUIOPASDFGH</AccessKeyId><SecretAccessKey>TOPSECRET</SecretAccessKey><SessionToken>SESSIONSECRET</SessionToken></Credentials>", []string{"TOPSECRET", "SESSIONSECRET"}, []string{"ASIAQWERTYUIOPASDFGH"}},
		{"IMDS JSON", `{"Code":"Success","AccessKeyId":"ASIAQWERTYUIOPASDFGH","SecretAccessKey" : "TOPSECRET","Token" : "SESSIONSECRET"}`, []string{"TOPSECRET", "SESSIONSECRET"}, []string{"ASIAQWERTYUIOPASDFGH"}},
		{"credentials file", "[default]\naws_access_key_id = AKIAQWERTYUIOPASDFGH\naws_secret_access_key = TOPSECRET\naws_session_token = SESSIONSECRET\n", []string{"TOPSECRET", "SESSIONSECRET"}, []string{"AKIAQWERTYUIOPASDFGH"}},
		{"environment", "AWS_SECRET_ACCESS_KEY=TOPSECRET AWS_SESSION_TOKEN=SESSIONSECRET AWS_REGION=us-east-1", []string{"TOPSECRET", "SESSIONSECRET"}, []string{"AWS_REGION=us-east-1"}},
		{"web identity JWT", "token " + jwtToken + " rejected", []string{"eyJhbGci", "c2lnbmF0dXJl"}, []string{"token ", " rejected"}},
	}
	for _, c := range secrets {
		t.Run(c.name, func(t *testing.T) {
			out := redactSecrets(c.in)
			for _, g := range c.gone {
				if strings.Contains(out, g) {
					t.Errorf("redactSecrets left %q in %q", g, out)
				}
			}
			for _, k := range c.kept {
				if !strings.Contains(out, k) {
					t.Errorf("redactSecrets removed %q: %q", k, out)
				}
			}
		})
	}

	for _, plain := range []string{
		"dial tcp 169.254.169.254:80: connect: connection refused",
		"unable to read file at /var/run/secrets/eks.amazonaws.com/serviceaccount/token: open /var/run/secrets/eks.amazonaws.com/serviceaccount/token: no such file or directory",
		"InvalidIdentityToken: No OpenIDConnect provider found in your account for https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
		"ExpiredTokenException: Token expired: current date/time 1700000000 must be before the expiration date/time 1690000000",
		"User: arn:aws:sts::123456789012:assumed-role/app/i-0abc123def4567890 is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/ProductionDatabaseAccessRoleForApplications",
		"operation error STS: AssumeRoleWithWebIdentity, https response error StatusCode: 403, RequestID: 6f1c9a3e-2b7d-4c1e-9f0a-1234567890ab, api error AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity",
		"arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app_user",
		"arn:aws:iam::123456789012:role/service-role/AmazonRDSDirectoryServiceAccessRoleForProductionCluster",
		"arn:aws:iam::123456789012:role/EC2InstanceRoleForProductionDatabaseAccess",
		"at com.example.aVeryLongMethodNameThatIsUsedInAJavaStackTrace(Main.java:12)",
		"mydb.c0ffee123456.us-east-1.rds.amazonaws.com:5432 and prod-aurora.cluster-ro-c0ffee123456.eu-west-1.rds.amazonaws.com",
		"session key ASIAQWERTYUIOPASDFGH expired; X-Amz-Credential=ASIAQWERTYUIOPASDFGH/20260101/us-east-1/rds-db/aws4_request",
		"https://sts.us-east-1.amazonaws.com/?Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FProductionDatabaseAccessRoleForApplications",
		"failed calling github.com/aws/aws-sdk-go-v2/feature/rds/auth/BuildAuthToken: ThisIsAVeryLongCamelCaseIdentifierNameForATest",
		"open /home/someuser/projects/applicationconfiguration/credentials: permission denied",
		"token: open /tmp/token: no such file or directory; password authentication failed for user \"app\"",
	} {
		if got := redactSecrets(plain); got != plain {
			t.Errorf("plain text changed:\n got %q\nwant %q", got, plain)
		}
	}
}

// TestRedactRandomKeys: over many random keys (a fixed seed, so the run is
// repeatable) every key with a digit is caught, and keys without one are
// caught all but rarely (about 1 in 130 is missed; see looksRandom).
func TestRedactRandomKeys(t *testing.T) {
	r := rand.New(rand.NewChaCha8([32]byte{2}))
	missedKeys := 0
	for range 2000 {
		k := randomKey(r, true)
		if !looksRandom(k) {
			missedKeys++
		}
		if out := redactSecrets("key " + url.QueryEscape(k) + " x"); strings.Contains(out, k[:12]) && looksRandom(k) {
			t.Errorf("URL-encoded key %s survived: %q", k, out)
		}
	}
	if missedKeys > 3 {
		t.Errorf("%d of 2000 keys missed, want at most 3", missedKeys)
	}
	missed := 0
	const n = 2000
	for range n {
		k := randomKey(r, false)
		if strings.Contains(redactSecrets("key "+k+" end"), k) {
			missed++
		}
	}
	if missed > n/50 {
		t.Errorf("%d of %d digit-free keys missed, want at most %d", missed, n, n/50)
	}
	t.Logf("missed %d of 2000 keys, %d of %d digit-free keys", missedKeys, missed, n)
	for range 20 {
		tok := realisticToken(r)
		for _, form := range []string{tok, url.QueryEscape(tok)} {
			if out := redactSecrets("token " + form + " end"); out != "token [redacted] end" {
				t.Fatalf("session token not redacted whole: %q", out)
			}
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
