// Package localpg starts and stops a throwaway PostgreSQL server built from
// the binaries installed on the machine (initdb + postgres, no pg_ctl, no
// Docker).
//
// It exists because the integration tests, the `rds-iam-proxy demo` command
// and the benchmark all need a real server that behaves like the upstream
// RDS instance the proxy talks to (TLS, pg_hba rules, real auth errors),
// and that must be quick to start, never outlive the process that started
// it, and explain itself when it cannot start.
//
// PostgreSQL refuses to run as root. When the caller is root the server is
// run as the "postgres" system user (created by the Debian package); every
// file it needs is created in a directory that user can reach and owns.
// Otherwise the server runs as the calling user.
//
// Typical use:
//
//	srv, err := localpg.Start(ctx, localpg.Options{})
//	if err != nil { ... }
//	defer srv.Stop()
//	err = srv.Exec(ctx, "CREATE ROLE app LOGIN")
//	dsn := srv.ConnString("app", "postgres")
package localpg
