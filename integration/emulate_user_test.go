package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// TestEmulateCreateUser: the helper's command form. `emulate
// --create-user` before a PostgreSQL with password logins creates the IAM
// user (in rds_iam, with the grants asked) that psql then reaches through
// the proxy emulate prints, and drops it when emulate is interrupted.
func TestEmulateCreateUser(t *testing.T) {
	w.enter(t)
	ctx := testCtx(t, 2*time.Minute)
	pg, err := localpg.Start(ctx, localpg.Options{HBA: []string{"host all all 127.0.0.1/32 scram-sha-256"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+helperAdminPassword+"'; CREATE TABLE notes (n text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after emulate has been interrupted.
	t.Cleanup(func() {
		if roles := pgRoles(t, testCtx(t, 30*time.Second), pg); roles != "" {
			t.Errorf("emulate left roles behind: %s", roles)
		}
	})
	port, logs := followEmulate(t, "--backend", pg.Addr(), "--admin-password", helperAdminPassword,
		"--create-user", helperUser, "--grant", "GRANT SELECT ON notes TO "+helperUser)
	out, stderr, err := psql(t, "host=127.0.0.1 port="+port+" user="+helperUser+" dbname=postgres sslmode=disable connect_timeout=20",
		"-c", "SELECT current_user, pg_has_role('rds_iam', 'MEMBER'), (SELECT n FROM notes)")
	if err != nil || strings.TrimSpace(out) != helperUser+"|t|kept" {
		t.Fatalf("psql through the printed setup: %v %q\n%s\nproxy log:\n%s", err, out, stderr, logs)
	}
	if roles := pgRoles(t, ctx, pg); !strings.Contains(roles, helperUser) {
		t.Fatalf("emulate made no %s: roles %q", helperUser, roles) // the check at the end would see nothing
	}
}

// interruptThenKill ends a command as a person does (Ctrl-C), so it can
// clean up (emulate drops the user it created), and kills it if it has not
// ended within grace.
func interruptThenKill(cmd *exec.Cmd, grace time.Duration) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}
