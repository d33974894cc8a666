package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// pace spaces the connections of a loop; no assertion depends on it.
const pace = 200 * time.Millisecond

// TestIMDSRotation: instance credentials that last 20 seconds are rotated
// by IMDS ahead of expiry, as EC2 does; the proxy refreshes in the
// background, new connections move to the new keys, and none fails.
func TestIMDSRotation(t *testing.T) {
	w.enter(t)
	w.setSessionDuration(t, 20*time.Second)
	r := startProxyRunning(t, func(c *launch.Config) {
		c.CredentialRefresh = authtoken.Refresh{MinInterval: time.Second, Margin: 3 * time.Second}
	})
	var keys []string
	seen := map[string]bool{}
	n := 0
	deadline := time.Now().Add(2 * time.Minute)
	for len(keys) < 3 && time.Now().Before(deadline) {
		mark := logMark()
		if got := connectAndQuery(t, r.Port(), iamUser); got != iamUser {
			t.Fatalf("current_user %q", got)
		}
		n++
		for _, l := range loginsSince(mark) {
			if !seen[l.accessKeyID] {
				seen[l.accessKeyID] = true
				keys = append(keys, l.accessKeyID)
			}
		}
		time.Sleep(pace)
	}
	if len(keys) < 3 {
		t.Fatalf("%d connections over the rotation used %d keys, want 3 (two rotations)", n, len(keys))
	}
	st := r.Tokens().Stats()
	if st.RefreshFailures != 0 || st.TokensBuilt != uint64(n) {
		t.Errorf("stats %+v: want no failures and %d tokens", st, n)
	}
	// Connections never fetched: a handful of background refreshes served
	// them all.
	if st.Refreshes > 12 || st.Refreshes*3 > uint64(n) {
		t.Errorf("%d refreshes for %d connections: connections are waiting for credentials", st.Refreshes, n)
	}
}

// TestSTSOutage: STS throttles, fails or hangs while the proxy holds valid
// credentials (IRSA, 15-second sessions): connections keep working and
// the failed refreshes are logged and counted; once the credentials have
// expired the client gets a clear error; when STS is back the next
// connection works, without a restart.
func TestSTSOutage(t *testing.T) {
	w.enter(t)
	cases := []struct {
		name  string
		fault emulator.Fault
		want  string
	}{
		{"throttled", emulator.Throttling(), "STS is throttling requests"},
		{"down", emulator.Unavailable(), "ServiceUnavailable"},
		{"hanging", emulator.Slow(10 * time.Minute), "STS did not answer in time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := onlySource(t)
			role := irsaRole(t, "outage-db")
			tokenFile := useIRSA(t, dir, role, "system:serviceaccount:prod:app")
			w.setSessionDuration(t, 15*time.Second)
			r := startProxyRunning(t, func(c *launch.Config) {
				c.CredentialRefresh = authtoken.Refresh{MinInterval: 500 * time.Millisecond, MaxBackoff: 2 * time.Second,
					Timeout: 3 * time.Second, Margin: 2 * time.Second}
			})
			mark := logMark()
			loginAs(t, r.Port())
			first := loginsSince(mark)[0].accessKeyID
			expires, ok := r.Tokens().Expiry()
			if !ok {
				t.Fatal("no expiry for session credentials")
			}

			stsBack := w.injectFault(t, emulator.FaultSTS, tc.fault)
			// Valid credentials keep serving (up to the margin before
			// expiry, where a connection tries a refresh itself).
			n := 0
			for time.Until(expires) > 3*time.Second {
				mark := logMark()
				loginAs(t, r.Port())
				if got := loginsSince(mark)[0].accessKeyID; got != first {
					t.Fatalf("credentials changed during the outage")
				}
				n++
				time.Sleep(pace)
			}
			if n < 3 {
				t.Fatalf("only %d connections during the outage", n)
			}
			for r.Tokens().Stats().RefreshFailures == 0 {
				if time.Until(expires) < 0 {
					t.Fatal("no failed refresh counted before expiry")
				}
				time.Sleep(pace)
			}
			// Logged as still serving, or (when the refresh failed in the
			// last seconds) as too close to expiry to sign with.
			if !strings.Contains(w.logs.String()[mark:], "AWS credentials refresh failed") {
				t.Error("the failed refresh was not logged")
			}

			// Expired: a clear error.
			time.Sleep(time.Until(expires) + 100*time.Millisecond)
			e := connectErr(t, r.Port())
			wantAll(t, shown(e), "the AWS credentials (from WebIdentityCredentials) expired at "+expires.UTC().Format(time.RFC3339),
				"refreshing them failed", "web identity (IRSA) with token file "+tokenFile, tc.want)
			if e.Code != "28000" {
				t.Errorf("SQLSTATE %s, want 28000", e.Code)
			}

			// STS is back: the same proxy recovers (within the refresh
			// rate limit and backoff).
			stsBack()
			recoverBy := time.Now().Add(30 * time.Second)
			for {
				mark = logMark()
				if code := connectCode(t, r.Port(), iamUser); code == "" {
					break
				}
				if time.Now().After(recoverBy) {
					t.Fatal("the proxy did not recover within 30s of STS coming back")
				}
				time.Sleep(pace)
			}
			if ls := loginsSince(mark); len(ls) != 1 || ls[0].accessKeyID == first {
				t.Fatalf("recovered logins %v; want one with new credentials", ls)
			}
		})
	}
}
