package localmy

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"

	"github.com/go-sql-driver/mysql"
)

// requireServer skips only in -short mode: a machine without MariaDB must
// fail loudly (with the install hint) rather than pass by skipping, in CI
// and everywhere else.
func requireServer(t *testing.T) {
	t.Helper()
	shortskip.Skip(t, "starts a real MariaDB server")
	for _, prog := range []string{serverProg, installProg} {
		if _, err := FindBin(prog); err != nil {
			t.Fatal(err)
		}
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
	t.Logf("MariaDB %s started in %v on %s", srv.Version, srv.StartDuration, srv.Addr())
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

// openDB opens a pool for cfg, closed when the test ends.
func openDB(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// queryOne returns the first column of the first row of query over db.
func queryOne(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s sql.NullString
	if err := db.QueryRowContext(ctx, query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s.String
}
