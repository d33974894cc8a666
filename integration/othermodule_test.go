package integration

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// TestHelperFromAnotherModule: a plain `go test` in a module of its own
// (examples/ci-helper, which needs only the module's public packages)
// starts iamtest before a PostgreSQL with password logins, named by the
// PG* variables as a CI service container is, and logs in with IAM through
// the AWS SDK and pgx. It fails when that test fails. Budget: 30 s once
// the build cache is warm (the child builds with the suite's -race
// setting, so it reuses what the suite compiled).
func TestHelperFromAnotherModule(t *testing.T) {
	w.enter(t)
	ctx := testCtx(t, 3*time.Minute)
	pg, err := localpg.Start(ctx, localpg.Options{HBA: []string{"host all all 127.0.0.1/32 scram-sha-256"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.Exec(ctx, "ALTER ROLE postgres PASSWORD '"+helperAdminPassword+"'"); err != nil {
		t.Fatal(err)
	}
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./...")...)
	cmd.Dir = "../examples/ci-helper"
	cmd.Env = append(cmd.Environ(), "PGHOST="+pg.Host, "PGPORT="+strconv.Itoa(pg.Port), "PGUSER=postgres", "PGPASSWORD="+helperAdminPassword)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("go test in examples/ci-helper: %v\n%s", err, out.String())
	}
	t.Logf("go test in examples/ci-helper took %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out.String(), "ok ") {
		t.Fatalf("go test in examples/ci-helper ran no test:\n%s", out.String())
	}
	if roles := pgRoles(t, ctx, pg); roles != "" {
		t.Fatalf("the helper left roles behind: %s", roles)
	}
}
