package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// TestMySQLLocalInfile: LOAD DATA LOCAL INFILE, with which a server can
// ask a client for any file it can read, is refused by default with a
// clear error, for the mysql client (--local-infile=1) and for
// go-sql-driver (AllowAllFiles), and works with allow_local_infile.
func TestMySQLLocalInfile(t *testing.T) {
	w.enter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.My.ExecIn(ctx, appDB, "CREATE TABLE infile_rows (name VARCHAR(100) NOT NULL)", "GRANT ALL ON appdb.infile_rows TO 'app_user'@'%'"); err != nil {
		t.Fatal(err)
	}
	// MariaDB keeps a table's grants after DROP TABLE: revoke them first.
	t.Cleanup(func() {
		w.My.ExecIn(context.Background(), appDB, "REVOKE ALL ON appdb.infile_rows FROM 'app_user'@'%'", "DROP TABLE infile_rows")
	})
	file := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := "LOAD DATA LOCAL INFILE '" + file + "' INTO TABLE infile_rows (name)"
	count := func() int {
		var n int
		if err := w.My.QueryRow(ctx, "SELECT COUNT(*) FROM appdb.infile_rows").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// greetingCaps are the capabilities the proxy shows a client.
	greetingCaps := func(port string) uint32 {
		c := dialRaw(t, port)
		defer c.Close()
		g, err := mywire.ParseGreeting(c.mustRead())
		if err != nil {
			t.Fatal(err)
		}
		return g.Caps
	}
	driver := func(port string) error {
		db := mysqlDB(t, port, iamUser, func(c *mysql.Config) { c.AllowAllFiles = true })
		_, err := db.ExecContext(ctx, load)
		return err
	}

	t.Run("refused by default", func(t *testing.T) {
		port := startMySQLProxy(t)
		if greetingCaps(port)&mywire.CapLocalFiles != 0 {
			t.Error("the greeting offers CLIENT_LOCAL_FILES")
		}
		_, stderr, err := mysqlCLI(t, port, iamUser, "--local-infile=1", "-e", load)
		if err == nil {
			t.Fatal("mysql --local-infile=1: LOAD DATA LOCAL INFILE worked through the default proxy")
		}
		t.Logf("mysql: %s", strings.TrimSpace(stderr))
		if !strings.Contains(stderr, "local infile") && !strings.Contains(stderr, "LOCAL INFILE") {
			t.Errorf("mysql's error does not say that local infile is off: %s", stderr)
		}
		err = driver(port)
		if err == nil {
			t.Fatal("go-sql-driver: LOAD DATA LOCAL INFILE worked through the default proxy")
		}
		t.Logf("go-sql-driver: %v", err)
		if !strings.Contains(err.Error(), "local infile") && !strings.Contains(err.Error(), "LOCAL INFILE") {
			t.Errorf("go-sql-driver's error does not say that local infile is off: %v", err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows loaded", n)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		port := startMySQLProxy(t, func(c *launch.Config) { c.AllowLocalInfile = true })
		if greetingCaps(port)&mywire.CapLocalFiles == 0 {
			t.Error("the greeting does not offer CLIENT_LOCAL_FILES with allow_local_infile")
		}
		if _, stderr, err := mysqlCLI(t, port, iamUser, "--local-infile=1", "-e", load); err != nil {
			t.Fatalf("mysql --local-infile=1 with allow_local_infile: %v %s", err, stderr)
		}
		if err := driver(port); err != nil {
			t.Fatalf("go-sql-driver with allow_local_infile: %v", err)
		}
		if n := count(); n != 2 {
			t.Fatalf("%d rows loaded, want 2", n)
		}
	})
}
