package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlDB opens a go-sql-driver/mysql pool to the proxy on port as user,
// plaintext on loopback (the proxy's hop to RDS is the TLS one), with the
// config edited by mods.
func mysqlDB(t *testing.T, port, user string, mods ...func(*mysql.Config)) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = user, "tcp", "127.0.0.1:"+port, appDB
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 20*time.Second, 60*time.Second, 60*time.Second
	for _, m := range mods {
		m(cfg)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestMySQLIdentityAndTLS: the session upstream is the IAM user's, over
// TLS, in the database the client named.
func TestMySQLIdentityAndTLS(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	db := mysqlDB(t, port, iamUser)
	ctx := testCtx(t, 30*time.Second)
	var user, cur, dbName string
	if err := db.QueryRowContext(ctx, "SELECT USER(), CURRENT_USER(), DATABASE()").Scan(&user, &cur, &dbName); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(user, iamUser+"@") || cur != iamUser+"@%" || dbName != appDB {
		t.Fatalf("USER()=%q CURRENT_USER()=%q DATABASE()=%q, want %s@..., %s@%%, %s", user, cur, dbName, iamUser, iamUser, appDB)
	}
	var name, cipher string
	if err := db.QueryRowContext(ctx, "SHOW STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("Ssl_cipher is empty: the session upstream is not TLS")
	}
}

// TestMySQLPreparedAndTransactions: server-side prepared statements, a
// rolled-back and a committed transaction, a server error relayed with its
// number, and the session usable after it.
func TestMySQLPreparedAndTransactions(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	db := mysqlDB(t, port, iamUser)
	ctx := testCtx(t, 60*time.Second)

	stmt, err := db.PrepareContext(ctx, "SELECT name FROM items WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	for id, want := range map[int]string{1: "one", 2: "two", 3: "three"} {
		var got string
		if err := stmt.QueryRowContext(ctx, id).Scan(&got); err != nil || got != want {
			t.Fatalf("prepared id %d: %q, %v; want %q", id, got, err, want)
		}
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items (name) VALUES (?)", "rolled-back"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.My.ExecIn(context.Background(), appDB, "DELETE FROM items WHERE name IN ('committed', 'rolled-back')")
	})
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items (name) VALUES (?)", "committed"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var rolled, committed int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM items WHERE name = 'rolled-back'").Scan(&rolled)
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM items WHERE name = 'committed'").Scan(&committed)
	if rolled != 0 || committed != 1 {
		t.Fatalf("rolled-back rows %d (want 0), committed rows %d (want 1)", rolled, committed)
	}

	_, err = db.ExecContext(ctx, "SELECT * FROM no_such_table")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1146 {
		t.Fatalf("query on a missing table: %v, want ERROR 1146", err)
	}
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("session after an error: %d, %v", one, err)
	}
}

// TestMySQLMultiStatementsAndInterpolation: CLIENT_MULTI_STATEMENTS and
// multi-results reach the server from the client's capabilities, and
// client-side interpolation works.
func TestMySQLMultiStatementsAndInterpolation(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	db := mysqlDB(t, port, iamUser, func(c *mysql.Config) { c.MultiStatements = true; c.InterpolateParams = true })
	ctx := testCtx(t, 30*time.Second)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET @a = ?; SET @b = @a * 2", 21); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "SELECT @a; SELECT @b, ?", "x'y")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sets [][]string
	for {
		var set []string
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				set = append(set, string(v))
			}
		}
		sets = append(sets, set)
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || strings.Join(sets[0], ",") != "21" || strings.Join(sets[1], ",") != "42,x'y" {
		t.Fatalf("result sets %q, want [[21] [42 x'y]]", sets)
	}
}

// TestMySQLLargeRow: a 20 MB value goes up and comes back intact; packets
// over 16 MB are split by the driver and by the server, and the relay
// passes their continuation frames through.
func TestMySQLLargeRow(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)
	db := mysqlDB(t, port, iamUser)
	ctx := testCtx(t, 120*time.Second)
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS blobs (id INT PRIMARY KEY, data LONGBLOB)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.My.ExecIn(context.Background(), appDB, "DROP TABLE IF EXISTS blobs") })
	data := make([]byte, 20<<20)
	rand.Read(data)
	for _, interpolate := range []bool{false, true} {
		db := mysqlDB(t, port, iamUser, func(c *mysql.Config) { c.InterpolateParams = interpolate; c.MaxAllowedPacket = 64 << 20 })
		if _, err := db.ExecContext(ctx, "REPLACE INTO blobs VALUES (1, ?)", data); err != nil {
			t.Fatalf("insert 20 MB (interpolate=%v): %v", interpolate, err)
		}
		var back []byte
		if err := db.QueryRowContext(ctx, "SELECT data FROM blobs WHERE id = 1").Scan(&back); err != nil {
			t.Fatalf("select 20 MB: %v", err)
		}
		if sha256.Sum256(back) != sha256.Sum256(data) {
			t.Fatalf("20 MB row came back different (%d bytes, interpolate=%v)", len(back), interpolate)
		}
		var size int
		if err := db.QueryRowContext(ctx, "SELECT LENGTH(data) FROM blobs WHERE id = 1").Scan(&size); err != nil || size != len(data) {
			t.Fatalf("server stored %d bytes, %v", size, err)
		}
	}
}

// TestMySQLKillQuery: the client sees the server's connection id, so
// KILL QUERY from a second connection through the proxy stops a running
// statement at once.
func TestMySQLKillQuery(t *testing.T) {
	w.enter(t)
	port := startMySQLProxy(t)

	// The id in the greeting is the upstream session's.
	checkGreetingConnectionID(t, port)

	db := mysqlDB(t, port, iamUser)
	ctx := testCtx(t, 60*time.Second)
	sleeper, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Close()
	var id int64
	if err := sleeper.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var killedAt time.Time
	go func() {
		var r int
		done <- sleeper.QueryRowContext(ctx, "SELECT SLEEP(30)").Scan(&r)
	}()
	// Wait until the server runs it, then kill it from another session.
	killer := mysqlDB(t, port, iamUser)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		killer.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", id).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the SLEEP never showed in the process list")
		}
		time.Sleep(20 * time.Millisecond)
	}
	killedAt = time.Now()
	if _, err := killer.ExecContext(ctx, "KILL QUERY ?", id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if took := time.Since(killedAt); took > time.Second {
			t.Fatalf("SLEEP ended %v after KILL QUERY, want under 1s", took)
		}
		t.Logf("SLEEP ended %v after KILL QUERY (%v)", time.Since(killedAt), err)
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not stop SLEEP(30)")
	}
	var one int
	if err := sleeper.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("the killed query's session is unusable: %v", err)
	}
}
