package integration

import (
	"context"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/mixload"
)

// TestMixedMySQL runs the mixed workload through the real binary against
// the world's MySQL front (MariaDB): long and short sessions
// (go-sql-driver with server-side prepared statements, multi-statement
// text queries, the mariadb client), commits and rollbacks, multi-row
// INSERTs with large SELECTs back, large values both ways, many-row
// results and KILL QUERY of a SLEEP(), all at once. The same checks as
// TestMixedPostgres.
func TestMixedMySQL(t *testing.T) {
	w.enter(t)
	port := freePort(t)
	s := startSidecar(t, upstreamsYAML("", myUpstream("my", "127.0.0.1:"+port)))
	o := mixedOptions()
	o.CLI = w.My.BinPath("mariadb")
	o.Logger = newLogger(t, "mixload")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = iamUser, "tcp", "127.0.0.1:"+port, appDB
	run, err := mixload.NewMySQL(ctx, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := run.Cleanup(ctx); err != nil {
			t.Error(err)
		}
	})
	mixedCheck(t, ctx, s, "my", func() *mixload.Report { return run.Run(ctx) })
}
