package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// goClientFor prepares the client of a Go kind for s's target.
func goClientFor(s Storm) (clientFunc, error) {
	switch s.Kind {
	case PGX:
		return pgxClient(s.Target)
	case GoMySQL:
		return goMySQLClient(s.Target, s.Limit)
	}
	return nil, fmt.Errorf("loadgen: %q is not a Go client kind", s.Kind)
}

// quoteConnValue quotes a libpq connection-string value.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// PGConnString is a libpq connection string for t: plaintext, or
// verify-full TLS when t has a CA file.
func PGConnString(t Target) string {
	parts := []string{
		"host=" + quoteConnValue(t.Host), "port=" + strconv.Itoa(t.Port),
		"user=" + quoteConnValue(t.User), "dbname=" + quoteConnValue(t.Database),
	}
	if t.HostAddr != "" {
		parts = append(parts, "hostaddr="+quoteConnValue(t.HostAddr))
	}
	if t.Password != "" {
		parts = append(parts, "password="+quoteConnValue(t.Password))
	}
	if t.CAFile != "" {
		parts = append(parts, "sslmode=verify-full", "sslrootcert="+quoteConnValue(t.CAFile))
	} else {
		parts = append(parts, "sslmode=disable")
	}
	return strings.Join(parts, " ")
}

// pgxClient: pgconn.ConnectConfig, one simple-protocol query, Close.
func pgxClient(t Target) (clientFunc, error) {
	cfg, err := pgconn.ParseConfig(PGConnString(t))
	if err != nil {
		return nil, fmt.Errorf("loadgen: pgx config for %s: %w", t.Name, err)
	}
	if t.HostAddr != "" {
		// pgconn has no hostaddr (it would send it as a parameter): Host
		// resolves to it instead.
		delete(cfg.RuntimeParams, "hostaddr")
		cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{t.HostAddr}, nil }
	}
	return func(ctx context.Context, n int64) (time.Duration, string, error) {
		start := time.Now()
		c, err := pgconn.ConnectConfig(ctx, cfg.Copy())
		if err != nil {
			return 0, "", withHint(err)
		}
		connect := time.Since(start)
		defer c.Close(ctx)
		rs, err := c.Exec(ctx, fmt.Sprintf("SELECT %d", n)).ReadAll()
		if err != nil {
			return connect, "", err
		}
		if len(rs) != 1 || len(rs[0].Rows) != 1 || len(rs[0].Rows[0]) != 1 {
			return connect, fmt.Sprint(rs), nil
		}
		return connect, string(rs[0].Rows[0][0]), nil
	}, nil
}

// goMySQLClient: the driver's Connector.Connect (the login, timed alone),
// one text-protocol query, Close.
func goMySQLClient(t Target, limit time.Duration) (clientFunc, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = t.User, t.Password, t.Database
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = limit, limit, limit
	// The driver's default logger prints to stderr; what went wrong is in
	// the returned error.
	cfg.Logger = &mysql.NopLogger{}
	if t.CAFile != "" {
		pool, err := caPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: t.Host, MinVersion: tls.VersionTLS12}
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("loadgen: go-sql-driver config for %s: %w", t.Name, err)
	}
	return func(ctx context.Context, n int64) (time.Duration, string, error) {
		start := time.Now()
		c, err := conn.Connect(ctx)
		if err != nil {
			return 0, "", err
		}
		connect := time.Since(start)
		defer c.Close()
		q, ok := c.(driver.QueryerContext)
		if !ok {
			return connect, "", errors.New("go-sql-driver connection cannot query")
		}
		rows, err := q.QueryContext(ctx, fmt.Sprintf("SELECT %d", n), nil)
		if err != nil {
			return connect, "", err
		}
		defer rows.Close()
		dest := make([]driver.Value, 1)
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return connect, "(no row)", nil
			}
			return connect, "", err
		}
		if b, ok := dest[0].([]byte); ok {
			return connect, string(b), nil
		}
		return connect, fmt.Sprint(dest[0]), nil
	}, nil
}

// caPool reads a PEM file of CAs.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("loadgen: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("loadgen: no certificate in %s", file)
	}
	return pool, nil
}

// withHint adds a server's HINT to its error's text as libpq and psql
// print it ("HINT:  ..." on a line of its own): the proxy says its fix
// there, and pgconn's error text leaves it out.
func withHint(err error) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Hint != "" {
		return fmt.Errorf("%w\nHINT:  %s", err, pe.Hint)
	}
	return err
}
