package authtoken

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestSessionName(t *testing.T) {
	cases := []struct{ host, who, want string }{
		{"laptop.local", "alice", "rds-iam-proxy@laptop.local.alice"},
		{"", "", "rds-iam-proxy"},
		{"host name", `CORP\bob`, "rds-iam-proxy@host-name.CORP-bob"},
		{strings.Repeat("h", 80), "u", "rds-iam-proxy@" + strings.Repeat("h", 50)},
	}
	for _, c := range cases {
		if got := SessionName("rds-iam-proxy", c.host, c.who); got != c.want {
			t.Errorf("SessionName(%q, %q) = %q, want %q", c.host, c.who, got, c.want)
		}
	}
	if n := DefaultSessionName(); len(n) < 2 || len(n) > 64 || sessionNameBad.MatchString(n) {
		t.Errorf("DefaultSessionName() = %q is not a valid session name", n)
	}
}

func TestParseRoleARNs(t *testing.T) {
	got, err := ParseRoleARNs(" arn:aws:iam::111111111111:role/a , arn:aws-cn:iam::123456789012:role/path/b,")
	if err != nil || len(got) != 2 || got[1] != "arn:aws-cn:iam::123456789012:role/path/b" {
		t.Fatalf("ParseRoleARNs = %q, %v", got, err)
	}
	if _, err := ParseRoleARNs("arn:aws:iam::1:user/x"); err == nil {
		t.Fatal("a user ARN accepted as a role")
	}
}

func TestNextRefresh(t *testing.T) {
	s := &Source{refresh: Refresh{}.withDefaults()}
	now := time.Now()
	hour := &held{creds: credsExpiring(now.Add(time.Hour)), fetched: now}
	at := s.nextRefresh(hour, now, 0)
	if at.After(now.Add(55*time.Minute)) || at.Before(now.Add(55*time.Minute-30*time.Second)) {
		t.Errorf("hour-long credentials refreshed at +%s, want 5 minutes (minus up to 10%% jitter) before expiry", at.Sub(now))
	}
	short := &held{creds: credsExpiring(now.Add(2 * time.Minute)), fetched: now}
	if at := s.nextRefresh(short, now, 0); at.Sub(now) > time.Minute || at.Sub(now) < 50*time.Second {
		t.Errorf("2-minute credentials refreshed at +%s, want about half-life", at.Sub(now))
	}
	tiny := &held{creds: credsExpiring(now.Add(4 * time.Second)), fetched: now}
	if at := s.nextRefresh(tiny, now, 0); at.Sub(now) != s.refresh.MinInterval {
		t.Errorf("rate limit: next refresh at +%s, want MinInterval %s", at.Sub(now), s.refresh.MinInterval)
	}
	for failures, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 5: 2 * time.Minute, 40: 2 * time.Minute} {
		if got := s.nextRefresh(hour, now, failures).Sub(now); got != want {
			t.Errorf("after %d failures: retry at +%s, want +%s", failures, got, want)
		}
	}
}

func credsExpiring(at time.Time) aws.Credentials {
	return aws.Credentials{AccessKeyID: "ASIAEXAMPLE", CanExpire: true, Expires: at}
}
