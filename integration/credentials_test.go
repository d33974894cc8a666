package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// imdsFetches counts credential requests the emulated IMDS has answered.
func imdsFetches() int { return strings.Count(w.logs.String(), `msg="imds credentials served"`) }

func connectAndQuery(t *testing.T, port, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, user))
	if err != nil {
		t.Fatalf("connect through the proxy as %s: %v", user, err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT current_user", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return string(res.Rows[0][0])
}

// TestCredentialsCached: instance-profile credentials are fetched once for
// many connections (one token per connection, one credentials fetch).
func TestCredentialsCached(t *testing.T) {
	w.enter(t)
	port := startProxy(t)
	before := imdsFetches()
	for range 3 {
		if got := connectAndQuery(t, port, iamUser); got != iamUser {
			t.Fatalf("current_user %q", got)
		}
	}
	if got := imdsFetches() - before; got != 1 {
		t.Fatalf("3 connections fetched credentials %d times, want 1 (cached)", got)
	}
}

// TestCredentialsRefreshedAheadOfExpiry: with web identity (IRSA),
// connections use the held credentials, hour-long or short: a connection
// never waits for STS while they are valid (the background refresh, proven
// in credentials_refresh_test.go, renews them ahead of expiry).
func TestCredentialsRefreshedAheadOfExpiry(t *testing.T) {
	w.enter(t)
	tokenFile := t.TempDir() + "/token"
	if err := os.WriteFile(tokenFile, []byte(jwt(t, "system:serviceaccount:default:app")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/app")
	t.Setenv("AWS_ROLE_SESSION_NAME", "integration")
	assumed := func() int { return strings.Count(w.logs.String(), `msg="sts role assumed with web identity"`) }

	for _, session := range []time.Duration{time.Hour, 3 * time.Minute} {
		w.setSessionDuration(t, session)
		r := startProxyRunning(t)
		before := assumed()
		for range 3 {
			if got := connectAndQuery(t, r.Port(), iamUser); got != iamUser {
				t.Fatalf("current_user %q", got)
			}
		}
		if got := assumed() - before; got != 1 {
			t.Errorf("sessions of %s: 3 connections assumed the role %d times, want 1", session, got)
		}
		if st := r.Tokens().Stats(); st.Refreshes != 1 || st.TokensBuilt != 3 || st.RefreshFailures != 0 {
			t.Errorf("stats %+v, want 1 refresh, 3 tokens, no failures", st)
		}
	}
}

// TestPinnedDBUser: --db-user logs every client in as that user, whatever
// user the client names.
func TestPinnedDBUser(t *testing.T) {
	w.enter(t)
	port := startProxy(t, func(c *launch.Config) { c.DBUser = iamUser })
	if got := connectAndQuery(t, port, "someone_else"); got != iamUser {
		t.Fatalf("current_user %q, want the pinned %s", got, iamUser)
	}
}
