package config

import (
	"strings"
	"testing"
	"time"
)

// TestMFASettings: the MFA settings come from flags and variables, are
// checked against STS's limits, and a code is refused in a file (it works
// once, for 30 seconds).
func TestMFASettings(t *testing.T) {
	s, err := load(t, "", map[string]string{"RDS_IAM_PROXY_MFA_CODE": "123456"},
		"--endpoint", "db.abc.us-east-1.rds.amazonaws.com:5432", "--mfa-serial", "arn:aws:iam::1:mfa/me", "--mfa-duration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	u := s.Upstreams[0]
	if u.MFASerial != "arn:aws:iam::1:mfa/me" || u.MFACode != "123456" || time.Duration(u.MFADuration) != time.Hour {
		t.Errorf("got serial %q code %q duration %s", u.MFASerial, u.MFACode, u.MFADuration)
	}
	for _, c := range []struct{ args []string }{
		{[]string{"--mfa-duration", "10m"}},
		{[]string{"--mfa-duration", "37h"}},
		{[]string{"--mfa-code", "12345x"}},
	} {
		_, err := load(t, "", nil, append([]string{"--endpoint", "db.abc.us-east-1.rds.amazonaws.com:5432"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), "mfa_") {
			t.Errorf("%v: %v, want a problem naming the mfa_ key", c.args, err)
		}
	}
	for _, file := range []string{
		"mfa_code: \"123456\"\nupstreams:\n  - endpoint: db.abc.us-east-1.rds.amazonaws.com\n",
		"upstreams:\n  - endpoint: db.abc.us-east-1.rds.amazonaws.com\n    mfa_code: \"123456\"\n",
	} {
		_, err := load(t, file, nil)
		if err == nil || !strings.Contains(err.Error(), "--mfa-code") {
			t.Errorf("mfa_code in a file: %v, want a refusal pointing at --mfa-code", err)
		}
	}
}
