package authtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// mfaProfileWorld is an emulator with a user, an MFA device and a role
// whose trust requires MFA, and [profile db] (role_arn, mfa_serial,
// source_profile, duration_seconds 900) in files of the test's own.
type mfaProfileWorld struct {
	aws               *emulator.AWS
	url, serial, role string
	secret            []byte
	cacheDir          string
	log               *syncbuf.Buffer
}

func newMFAProfileWorld(t *testing.T) *mfaProfileWorld {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	a := emulator.NewAWS(emulator.Options{})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	akid, sk := a.AddUser("dev", emulator.Policy{})
	serial, secret := a.AddMFADevice("dev")
	role := a.AddRole("db", emulator.Policy{})
	if err := a.SetRoleTrust(role, &emulator.Trust{AWS: []string{"arn:aws:iam::" + a.AccountID() + ":user/dev"},
		Condition: map[string]map[string][]string{"Bool": {"aws:MultiFactorAuthPresent": {"true"}}}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("[profile db]\nrole_arn = %s\nmfa_serial = %s\nsource_profile = dev\nduration_seconds = 900\n", role, serial)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := fmt.Sprintf("[dev]\naws_access_key_id = %s\naws_secret_access_key = %s\n", akid, sk)
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return &mfaProfileWorld{aws: a, url: srv.URL, serial: serial, role: role, secret: secret,
		cacheDir: filepath.Join(dir, "cache"), log: &syncbuf.Buffer{}}
}

func (w *mfaProfileWorld) source(t *testing.T, r Refresh) *Source {
	t.Helper()
	src, err := New(t.Context(), Options{Profile: "db", Region: "us-east-1", STSEndpoint: w.url, Refresh: r,
		Logger: slog.New(slog.NewTextHandler(w.log, nil)),
		MFA:    MFA{Code: emulator.TOTP(w.secret, w.aws.Now()), CacheDir: w.cacheDir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src
}

func (w *mfaProfileWorld) mfaCalls() int {
	return w.aws.STSCalls("AssumeRoleMFA") + w.aws.STSCalls("GetSessionTokenMFA")
}

// TestMFARenewsWithoutCode: one code, then the role is renewed from the
// MFA session (AssumeRole without a code) as often as the Source refreshes;
// the STS calls are counted to show what a running session costs.
func TestMFARenewsWithoutCode(t *testing.T) {
	w := newMFAProfileWorld(t)
	// Refresh every second or so: the role's 15-minute sessions are always inside
	// the window; the cache (never fresh enough then) is passed over.
	src := w.source(t, Refresh{Window: 15*time.Minute - time.Second, MinInterval: time.Second, Jitter: 0.0001})
	if err := src.Prepare(t.Context()); err != nil {
		t.Fatalf("Prepare with a code: %v", err)
	}
	st := src.MFAState()
	if !st.Configured || !st.Present || st.Serial != w.serial || st.Profile != "db" || time.Until(st.Ends) < 11*time.Hour {
		t.Errorf("MFAState %+v, want a 12 h MFA session of profile db", st)
	}
	if w.mfaCalls() != 1 {
		t.Fatalf("MFA calls after Prepare: %d, want 1", w.mfaCalls())
	}
	start, roles := time.Now(), w.aws.STSCalls("AssumeRole")
	deadline := start.Add(20 * time.Second)
	for w.aws.STSCalls("AssumeRole") < roles+3 && time.Now().Before(deadline) {
		if _, err := src.Token(t.Context(), "h", 5432, "us-east-1", "u"); err != nil {
			t.Fatalf("token during renewals: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	renewed := w.aws.STSCalls("AssumeRole") - roles
	if renewed < 3 {
		t.Fatalf("%d renewals in 20 s, want 3", renewed)
	}
	if w.mfaCalls() != 1 {
		t.Errorf("MFA calls after %d renewals: %d, want still 1", renewed, w.mfaCalls())
	}
	t.Logf("%d AssumeRole renewals without a code in %s; MFA calls: %d", renewed, time.Since(start).Round(time.Millisecond), w.mfaCalls())
	entries, _ := filepath.Glob(filepath.Join(w.cacheDir, "*.json"))
	if len(entries) != 1 {
		t.Errorf("cache entries %v, want one", entries)
	}
}

// TestMFASessionEnds: when the MFA session ends, the Source warns ahead,
// says it ended, and tokens fail with an MFAError naming the profile, the
// device and the fixes.
func TestMFASessionEnds(t *testing.T) {
	w := newMFAProfileWorld(t)
	// STS's clock runs 15 minutes minus 4 s behind: the shortest sessions
	// it issues (900 s) end 4 s from now.
	w.aws.SetClockOffset(-(15*time.Minute - 4*time.Second))
	src := w.source(t, Refresh{MinInterval: 500 * time.Millisecond})
	src.mfa.margin = time.Second
	src.mfa.tick = 100 * time.Millisecond
	src.mfa.opts.Duration = 15 * time.Minute
	if err := src.Prepare(t.Context()); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := src.Token(t.Context(), "h", 5432, "us-east-1", "u"); err != nil {
		t.Fatalf("token in the session: %v", err)
	}
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = src.Token(t.Context(), "h", 5432, "us-east-1", "u")
		time.Sleep(200 * time.Millisecond)
	}
	var me *MFAError
	if !errors.As(err, &me) || me.Kind != MFAEnded {
		t.Fatalf("after the session's end: %v, want an MFAError (ended)", err)
	}
	for _, want := range []string{`profile "db"`, w.serial, "ended", "aws sts get-caller-identity --profile db", "--mfa-code"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	waitLog := func(want string) {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(w.log.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("log lacks %q:\n%s", want, w.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog("the MFA session ends in 5 minutes")
	waitLog("the MFA session has ended")
	for _, s := range w.aws.SeenSecrets() {
		if len(s) >= 8 && strings.Contains(w.log.String()+err.Error(), s) {
			t.Errorf("a secret (%d chars) in the log or the error", len(s))
		}
	}
}

// TestMFAPromptsAgain: with a terminal, the last 5 minutes of the MFA
// session bring one prompt; the code typed renews the session.
func TestMFAPromptsAgain(t *testing.T) {
	w := newMFAProfileWorld(t)
	w.aws.SetClockOffset(-(15*time.Minute - 4*time.Second))
	src := w.source(t, Refresh{MinInterval: 500 * time.Millisecond})
	src.mfa.margin = time.Second
	src.mfa.tick = 100 * time.Millisecond
	src.mfa.opts.Duration = 15 * time.Minute
	asked := make(chan string, 4)
	src.mfa.opts.Prompt = func(ctx context.Context, serial string) (string, error) {
		asked <- serial
		// The next step's code: the first was spent at Prepare.
		return emulator.TOTP(w.secret, w.aws.Now().Add(30*time.Second)), nil
	}
	if err := src.Prepare(t.Context()); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	first := src.MFAState().Ends
	select {
	case serial := <-asked:
		if serial != w.serial {
			t.Errorf("asked for %s, want %s", serial, w.serial)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no prompt in the last 5 minutes of the MFA session")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !src.MFAState().Ends.After(first) {
		if time.Now().After(deadline) {
			t.Fatalf("the session was not renewed by the code typed:\n%s", w.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(w.log.String(), "MFA session renewed") {
		t.Errorf("log lacks the renewal:\n%s", w.log.String())
	}
}
