package authtoken

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestCLICacheKeyMatchesPythonJSON: the key hashes the arguments exactly as
// Python's json.dumps(sort_keys=True) writes them (the real CLI's file name
// is compared in integration/mfa_test.go).
func TestCLICacheKeyMatchesPythonJSON(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to check the cache key: %v", err)
	}
	for _, a := range []AssumeArgs{
		{RoleARN: "arn:aws:iam::123456789012:role/db"},
		{RoleARN: "arn:aws:iam::123456789012:role/db", SerialNumber: "arn:aws:iam::123456789012:mfa/alice"},
		{RoleARN: "arn:aws:iam::123456789012:role/db", SerialNumber: "arn:aws:iam::123456789012:mfa/alice",
			DurationSeconds: 3600, ExternalID: "ext-1<&>", RoleSessionName: "jürgen-😀\"\\"},
	} {
		script := `import json,hashlib,sys
a=json.loads(sys.argv[1])
print(hashlib.sha1(json.dumps(a, sort_keys=True).encode('utf-8')).hexdigest())`
		args := map[string]any{"RoleArn": a.RoleARN}
		if a.SerialNumber != "" {
			args["SerialNumber"] = a.SerialNumber
		}
		if a.ExternalID != "" {
			args["ExternalId"] = a.ExternalID
		}
		if a.RoleSessionName != "" {
			args["RoleSessionName"] = a.RoleSessionName
		}
		if a.DurationSeconds != 0 {
			args["DurationSeconds"] = a.DurationSeconds
		}
		out, err := exec.Command(py, "-c", script, mustJSON(t, args)).Output()
		if err != nil {
			t.Fatalf("python3: %v", err)
		}
		if got, want := CLICacheKey(a), strings.TrimSpace(string(out)); got != want {
			t.Errorf("CLICacheKey(%+v) = %s, Python says %s", a, got, want)
		}
	}
}

func TestCLICacheRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cli", "cache")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	in := CachedRole{
		Credentials:    aws.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "sekrit", SessionToken: "tok", Expires: exp, AccountID: "123456789012"},
		AssumedRoleARN: "arn:aws:sts::123456789012:assumed-role/db/x", AssumedRoleID: "AROAX:x",
	}
	if err := WriteCLICache(dir, "k1", in); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCLICache(dir, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Credentials.AccessKeyID != "ASIAEXAMPLE" || got.Credentials.SecretAccessKey != "sekrit" ||
		got.Credentials.SessionToken != "tok" || !got.Credentials.Expires.Equal(exp) ||
		got.AssumedRoleARN != in.AssumedRoleARN || got.Credentials.AccountID != "123456789012" {
		t.Errorf("round trip: got %+v", got)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "k1.json"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestCLICacheExpirationForms: what CLI v1 (strftime %Z), CLI v2 and other
// tools write.
func TestCLICacheExpirationForms(t *testing.T) {
	want := time.Date(2026, 12, 7, 4, 22, 11, 0, time.UTC)
	for _, s := range []string{"2026-12-07T04:22:11UTC", "2026-12-07T04:22:11Z", "2026-12-07T04:22:11+00:00",
		"2026-12-07T05:22:11+01:00", "2026-12-07T04:22:11.000000+00:00"} {
		got, err := parseCLIExpiration(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if _, err := parseCLIExpiration("tomorrow"); err == nil {
		t.Error("a bad expiration parsed")
	}
}

// TestCLICacheBadFiles: missing is ErrNotExist; corrupt, incomplete or huge
// files are errors that never quote the file.
func TestCLICacheBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadCLICache(dir, "none"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	for name, body := range map[string]string{
		"corrupt":    `{"Credentials": {"SecretAccessKey": "sekrit-in-a-broken-file"`,
		"incomplete": `{"Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "sekrit-in-a-broken-file", "Expiration": "2026-12-07T04:22:11Z"}}`,
		"badtime":    `{"Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "sekrit-in-a-broken-file", "SessionToken": "t", "Expiration": "soon"}}`,
		"huge":       `{"x": "` + strings.Repeat("a", maxCacheFile) + `"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCLICache(dir, name)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: err %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
