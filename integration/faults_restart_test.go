package integration

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// TestFaultServerRestart restarts a real PostgreSQL and a real MariaDB
// (private to this test, behind emulated RDS fronts of their own) with
// sessions open through the proxy: an idle one and one in a 30 s query.
// PostgreSQL gets a fast shutdown (SIGINT), MariaDB a normal one
// (SIGTERM); both come back on the same port and data.
//
// What the client sees:
//   - the session in a query: the server's own goodbye, passed through,
//     within 15 s: psql prints "FATAL: terminating connection due to
//     administrator command" (the proxy adds nothing after the server's
//     FATAL); MariaDB closes without a word, so the proxy answers the
//     waiting query: mariadb prints "ERROR 1429 (08S01): rds-iam-proxy:
//     the upstream closed the connection in the middle of the session,
//     without an error of its own. Fix: connect again; ... (a restart or
//     failover) ..." (a server that says "ERROR 1053 Server shutdown in
//     progress" first has that passed through instead).
//   - the idle session: its next query fails at once (Postgres: the
//     server's FATAL 57P01; go-sql-driver: "invalid connection").
//   - a login while the server is down: the proxy's error in its
//     protocol, within 15 s: "the upstream ... is not accepting
//     connections now (...). Fix: connect again in a few seconds: it is
//     starting, shutting down, restarting or failing over; ...".
//
// Other routes serve meanwhile. Once the server is back a new login
// works at once (the time from the server being ready, and the whole
// outage, are logged); goroutines and fds return to their baseline.
func TestFaultServerRestart(t *testing.T) {
	w.enter(t)
	var pg *privatePG
	var my *privateMy
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pg = startPrivatePG(t) }()
	go func() { defer wg.Done(); my = startPrivateMy(t) }()
	begin := time.Now()
	wg.Wait()
	if pg == nil || my == nil {
		t.FailNow()
	}
	t.Logf("private servers ready in %s (PostgreSQL %s, MariaDB %s of it)", time.Since(begin).Round(time.Millisecond),
		pg.took.Round(time.Millisecond), my.srv.StartDuration.Round(time.Millisecond))
	r := startFaultRigVia(t, pg.route(), my.route())
	servers := map[string]restartable{"pg": pg, "my": my}
	forEngine(t, r, func(t *testing.T, e engine) {
		srv := servers[e.name]
		idle := openIdleSession(t, e, e.port(r))
		busy := startCLISession(t, e, e.port(r))
		busy.send(map[string]string{"pg": "SELECT pg_sleep(30) AS during_restart;\n", "my": "SELECT SLEEP(30) AS during_restart;\n"}[e.name])
		waitFor(t, 20*time.Second, func() bool { return srv.running(t, "during_restart") == 1 })

		down := time.Now()
		if err := srv.halt(); err != nil {
			t.Fatal(err)
		}
		t.Logf("the server shut down in %s", time.Since(down).Round(time.Millisecond))
		stderr, err := busy.wait(t, 60*time.Second)
		took := time.Since(down)
		if err == nil {
			t.Fatal("the query in flight succeeded across a restart")
		}
		t.Logf("the session in a query was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		want := map[string][]string{
			"pg": {"FATAL:  terminating connection due to administrator command"},
			"my": {"ERROR 1429 (08S01) at line 1: rds-iam-proxy: the upstream closed the connection in the middle of the session", "ERROR 1053", "ERROR 2013"},
		}[e.name]
		if !containsAny(stderr, want) {
			t.Errorf("the client's error is none of %q", want)
		}
		if took > 15*time.Second {
			t.Fatalf("the session in a query waited %s", took)
		}
		start := time.Now()
		if err := idle.query(); err == nil {
			t.Fatal("the idle session answers with its server down")
		} else {
			t.Logf("the idle session's next query failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		}

		start = time.Now()
		_, stderr, err = e.cli(t, e.port(r), "SELECT 1")
		took = time.Since(start)
		if err == nil {
			t.Fatal("a login worked with the server down")
		}
		t.Logf("a login while the server was down was told after %s:\n%s", took.Round(time.Millisecond), stderr)
		wantClientError(t, e, stderr, "is not accepting connections now", "Fix: connect again in a few seconds")
		if took > 15*time.Second {
			t.Fatalf("the login waited %s", took)
		}
		e.otherSessionsWork(t, r)

		if err := srv.resume(); err != nil {
			t.Fatal(err)
		}
		back := e.recovery(t, e.port(r), 20*time.Second)
		t.Logf("recovery: a login worked %s after the server was ready again; the outage lasted %s",
			back.Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
	})
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// restartable is a private server the test can restart.
type restartable interface {
	halt() error
	resume() error
	// running counts the app user's sessions running a statement that
	// holds marker.
	running(t *testing.T, marker string) int
}

// privatePG is a PostgreSQL of this test's own behind an emulated RDS
// front, set up as the world's (rds_iam, app_user, appdb), with its own
// endpoint name; the world's role may connect to it (same resource id).
type privatePG struct {
	srv   *localpg.Server
	front *emulator.Postgres
	took  time.Duration
}

func startPrivatePG(t *testing.T) *privatePG {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	srv, err := localpg.Start(ctx, localpg.Options{})
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { srv.Stop() })
	for _, step := range []func() error{
		func() error { return srv.Exec(ctx, setupSQL) },
		func() error { return srv.Exec(ctx, "CREATE DATABASE "+appDB) },
		func() error { return srv.ExecIn(ctx, appDB, appSQL) },
	} {
		if err := step(); err != nil {
			t.Error(err)
			return nil
		}
	}
	front, err := w.aws.AWS.StartPostgres(w.aws.CA, emulator.PostgresOptions{
		Endpoint: "restart-pg.c0ffee123456.us-east-1.rds.amazonaws.com", Backend: srv.Addr(), Logger: newLogger(t, "restart-pg"),
	})
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { front.Close() })
	return &privatePG{srv: srv, front: front, took: time.Since(begin)}
}

func (p *privatePG) route() route {
	return route{fmt.Sprintf("%s:%d", p.front.Endpoint(), p.front.Port()), p.front.Addr()}
}

func (p *privatePG) halt() error { return p.srv.Halt() }

func (p *privatePG) resume() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return p.srv.Resume(ctx)
}

func (p *privatePG) running(t *testing.T, marker string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, p.srv.ConnString("postgres", appDB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' AND query LIKE '%' || $2 || '%'",
		[][]byte{[]byte(iamUser), []byte(marker)}, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var n int
	fmt.Sscan(string(res.Rows[0][0]), &n)
	return n
}

// privateMy is a MariaDB of this test's own behind an emulated RDS for
// MySQL front, with app_user as an IAM user.
type privateMy struct {
	srv   *localmy.Server
	front *emulator.MySQL
}

func startPrivateMy(t *testing.T) *privateMy {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const backendName = "restart-mariadb.backend.invalid"
	certPEM, keyPEM, err := w.aws.CA.ServerCertPEM(backendName)
	if err != nil {
		t.Error(err)
		return nil
	}
	srv, err := localmy.Start(ctx, localmy.Options{TLS: &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM}})
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { srv.Stop() })
	pw := make([]byte, 18)
	rand.Read(pw)
	password := base64.RawURLEncoding.EncodeToString(pw)
	if err := srv.Exec(ctx, "CREATE DATABASE "+appDB,
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL", iamUser, password),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", appDB, iamUser)); err != nil {
		t.Error(err)
		return nil
	}
	front, err := w.aws.AWS.StartMySQL(w.aws.CA, emulator.MySQLOptions{
		Endpoint: "restart-my.c0ffee123456.us-east-1.rds.amazonaws.com", Backend: srv.Addr(), BackendPassword: password,
		BackendTLS: &tls.Config{RootCAs: w.aws.CA.Pool(), ServerName: backendName, MinVersion: tls.VersionTLS12},
		IAMUsers:   []string{iamUser}, Logger: newLogger(t, "restart-my"),
	})
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { front.Close() })
	return &privateMy{srv: srv, front: front}
}

func (m *privateMy) route() route {
	return route{fmt.Sprintf("%s:%d", m.front.Endpoint(), m.front.Port()), m.front.Addr()}
}

func (m *privateMy) halt() error { return m.srv.Halt() }

func (m *privateMy) resume() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return m.srv.Resume(ctx)
}

func (m *privateMy) running(t *testing.T, marker string) int {
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.srv.QueryRow(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE CONCAT('%', ?, '%')", iamUser, marker).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
