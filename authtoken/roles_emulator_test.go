package authtoken_test

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"

	. "github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// These tests run the real SDK against the emulator; they live outside
// the package because the emulator's Postgres front imports the proxy,
// which imports authtoken.

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

// emulated starts an emulator with a user of account 111111111111 and a
// role of 123456789012 trusting it with an external ID.
func emulated(t *testing.T) (*emulator.AWS, string, string) {
	t.Helper()
	clearAWSEnv(t)
	a := emulator.NewAWS(emulator.Options{})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	role := a.AddRole("db", emulator.Policy{})
	may := emulator.Policy{Statements: []emulator.Statement{{Effect: "Allow", Action: []string{"sts:AssumeRole"}, Resource: []string{role}}}}
	akid, secret := a.AddUserInAccount("111111111111", "dev", may)
	if err := a.SetRoleTrust(role, &emulator.Trust{AWS: []string{"arn:aws:iam::111111111111:root"}, ExternalID: "xid"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	return a, srv.URL, role
}

// TestRoleErrorNamesRoleCallerAndFix: an AccessDenied from AssumeRole
// names the role, the caller as STS named it, and the fixes.
func TestRoleErrorNamesRoleCallerAndFix(t *testing.T) {
	_, url, role := emulated(t)
	src, err := New(t.Context(), Options{Region: "us-east-1", STSEndpoint: url, Roles: []string{role}, ExternalID: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.Token(t.Context(), "h", 5432, "us-east-1", "u")
	var re *RoleError
	if !errors.As(err, &re) || re.Code != "AccessDenied" || re.Caller != "arn:aws:iam::111111111111:user/dev" {
		t.Fatalf("error %v, want a RoleError with the caller", err)
	}
	for _, want := range []string{"cannot assume role " + role, "as arn:aws:iam::111111111111:user/dev", "trust policy", "--external-id", "sts:AssumeRole on " + role} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if st := src.Stats(); st.Refreshes != 1 || st.RefreshFailures != 1 || st.TokensBuilt != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestRefreshKeepsServing: with STS hanging, tokens keep being built from
// the held credentials (no wait), failures are counted and logged, and the
// refresher recovers when STS does.
func TestRefreshKeepsServing(t *testing.T) {
	a, url, role := emulated(t)
	logs := &syncbuf.Buffer{}
	// stscreds asks for 15-minute sessions; a window just under that
	// makes the first refresh come about 3 seconds after the fetch.
	src, err := New(t.Context(), Options{Region: "us-east-1", STSEndpoint: url, Roles: []string{role}, ExternalID: "xid",
		Refresh: Refresh{Window: 15*time.Minute - 3*time.Second, Jitter: 0.0001, MinInterval: 200 * time.Millisecond,
			MaxBackoff: 400 * time.Millisecond, Timeout: 2 * time.Second, Margin: time.Second},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := t.Context()
	if _, err := src.Token(ctx, "h", 5432, "us-east-1", "u"); err != nil {
		t.Fatal(err)
	}
	first, _ := src.Expiry()
	// STS hangs: a token that waited for it would take the 2s refresh
	// timeout at least.
	a.InjectFault(emulator.FaultSTS, emulator.Slow(time.Minute))
	failBy := time.Now().Add(30 * time.Second)
	for src.Stats().RefreshFailures == 0 {
		if time.Now().After(failBy) {
			t.Fatal("no background refresh failed within 30s")
		}
		start := time.Now()
		if _, err := src.Token(ctx, "h", 5432, "us-east-1", "u"); err != nil {
			t.Fatalf("token with valid credentials held: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a token took %s: the hot path waited for STS", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The failure is counted just before it is logged.
	for logBy := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "refresh failed; the current credentials keep serving"); {
		if time.Now().After(logBy) {
			t.Fatalf("failure not logged:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.ClearFault()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exp, _ := src.Expiry(); exp.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresher did not recover after STS came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range a.SeenSecrets() {
		if len(s) >= 8 && strings.Contains(logs.String(), s) {
			t.Fatal("a secret is in the log")
		}
	}
}
