package iamtest

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"net"
	"strconv"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// admin is the admin login to the server: what creates and drops the IAM
// user and runs the grants.
type admin interface {
	createUser(ctx context.Context, user, password string) error
	run(ctx context.Context, stmts []string) error
	dropUser(ctx context.Context, user string) error
	// backendTLS is how the front reaches the server: given, or the
	// admin's finding.
	backendTLS(given *tls.Config) *tls.Config
	close(ctx context.Context)
}

func connectAdmin(ctx context.Context, o Options) (admin, error) {
	// Each branch returns a nil interface on error, never a nil pointer in
	// one (Close checks for nil).
	if o.Engine == MySQL {
		a, err := connectMySQL(ctx, o)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	a, err := connectPostgres(ctx, o)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// pgAdmin holds one admin session for the Env's life: the user's
// cleanup must not depend on a fresh login succeeding late in a test.
type pgAdmin struct {
	conn          *pgconn.PgConn
	madeRDSIAM    bool
	addr, adminAs string
}

func connectPostgres(ctx context.Context, o Options) (*pgAdmin, error) {
	host, portText, _ := net.SplitHostPort(o.Addr)
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("iamtest: Options.Addr %q: the port is not a number", o.Addr)
	}
	// Keywords the environment cannot change (PGSSLMODE, PGPASSFILE...):
	// the admin login is the test's, not the developer's.
	cfg, err := pgconn.ParseConfig("host=pinned sslmode=prefer passfile='' target_session_attrs=any")
	if err != nil {
		return nil, fmt.Errorf("iamtest: %w", err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = host, uint16(port), o.AdminUser, o.AdminPassword, o.Database
	for _, fb := range cfg.Fallbacks {
		fb.Host, fb.Port = host, uint16(port)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("iamtest: log in to %s as %s: %w", o.Addr, o.AdminUser, err)
	}
	return &pgAdmin{conn: conn, addr: o.Addr, adminAs: o.AdminUser}, nil
}

func (a *pgAdmin) createUser(ctx context.Context, user, password string) error {
	res := a.conn.ExecParams(ctx, "SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam')", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("iamtest: %w", res.Err)
	}
	a.madeRDSIAM = len(res.Rows) == 1 && string(res.Rows[0][0]) == "t"
	if err := a.run(ctx, PostgresUserSQL(user, password)); err != nil {
		return fmt.Errorf("iamtest: create the IAM user %s on %s as %s: %w", user, a.addr, a.adminAs, err)
	}
	return nil
}

func (a *pgAdmin) run(ctx context.Context, stmts []string) error {
	for _, s := range stmts {
		results, err := a.conn.Exec(ctx, s).ReadAll()
		if err != nil {
			return err
		}
		for _, r := range results {
			if r.Err != nil {
				return r.Err
			}
		}
	}
	return nil
}

func (a *pgAdmin) dropUser(ctx context.Context, user string) error {
	return a.run(ctx, PostgresDropSQL(user, a.madeRDSIAM))
}

func (a *pgAdmin) backendTLS(*tls.Config) *tls.Config { return nil }

func (a *pgAdmin) close(ctx context.Context) { a.conn.Close(ctx) }

// myAdmin is the MySQL admin login, one connection kept for the Env's
// life as pgAdmin's.
type myAdmin struct {
	db      *sql.DB
	conn    *sql.Conn
	tls     bool // the server offers TLS
	addr    string
	adminAs string
}

func connectMySQL(ctx context.Context, o Options) (*myAdmin, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = o.AdminUser, o.AdminPassword, "tcp", o.Addr, o.Database
	// TLS when the server offers it, unverified: it is the test's own
	// server, and only whether it offers TLS matters here.
	cfg.TLSConfig = "preferred"
	cfg.AllowNativePasswords = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("iamtest: %w", err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("iamtest: log in to %s as %s: %w", o.Addr, o.AdminUser, err)
	}
	a := &myAdmin{db: db, conn: conn, addr: o.Addr, adminAs: o.AdminUser}
	var name, cipher string
	if err := conn.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		a.close(ctx)
		return nil, fmt.Errorf("iamtest: does %s offer TLS: %w", o.Addr, err)
	}
	a.tls = cipher != ""
	return a, nil
}

func (a *myAdmin) createUser(ctx context.Context, user, password string) error {
	if err := a.run(ctx, []string{MySQLUserSQL(user, password, a.tls)}); err != nil {
		return fmt.Errorf("iamtest: create the IAM user %s on %s as %s: %w", user, a.addr, a.adminAs, err)
	}
	return nil
}

func (a *myAdmin) run(ctx context.Context, stmts []string) error {
	for _, s := range stmts {
		if _, err := a.conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (a *myAdmin) dropUser(ctx context.Context, user string) error {
	return a.run(ctx, []string{MySQLDropSQL(user)})
}

func (a *myAdmin) backendTLS(given *tls.Config) *tls.Config {
	if given != nil || !a.tls {
		return given
	}
	// The front's hop to the test's own server: whether the user's
	// session is over TLS (REQUIRE SSL) is what matters, not whose
	// certificate the server has. Pass Options.BackendTLS to verify it.
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

func (a *myAdmin) close(context.Context) {
	a.conn.Close()
	a.db.Close()
}
