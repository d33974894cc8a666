package localpg

import (
	"context"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/jackc/pgx/v5/pgconn"
)

// requireServer skips only in -short mode: a machine without PostgreSQL
// must fail loudly (with the install hint) rather than pass by skipping.
func requireServer(t *testing.T) {
	t.Helper()
	shortskip.Skip(t, "starts a real PostgreSQL server")
	if _, err := FindBinDir(); err != nil {
		t.Fatal(err)
	}
}

// startServer starts a server that is stopped when the test ends.
func startServer(t *testing.T, o Options) *Server {
	t.Helper()
	requireServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

// queryOne returns the first column of the first row of sql run over dsn.
func queryOne(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %q: %v", dsn, err)
	}
	defer conn.Close(ctx)
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(results) == 0 || len(results[0].Rows) == 0 {
		t.Fatalf("%s: no rows", sql)
	}
	return string(results[0].Rows[0][0])
}
