// Package localmy starts and stops a throwaway MariaDB server built from
// the binaries installed on the machine (mariadb-install-db + mariadbd, no
// mysqld_safe, no service manager, no Docker). It is internal/throwaway/localpg's
// counterpart for the MySQL side of the proxy.
//
// It exists because the MySQL integration tests need a real server that
// behaves like the upstream RDS instance the proxy talks to (TLS, real
// handshakes and auth errors, large packets), and that must be quick to
// start (about half a second), never outlive the process that started it,
// and explain itself when it cannot start.
//
// When the caller is root the server runs as the "mysql" system user
// (created by the Debian package), like localpg runs PostgreSQL as
// "postgres": every file it needs is created where that user can reach and
// owns. Without such a user it runs as root with --user=root. Otherwise it
// runs as the calling user.
//
// The server gets its own my.cnf (--defaults-file), so nothing from
// /etc/mysql or ~/.my.cnf applies, and root@localhost/127.0.0.1 has an
// empty password. Anonymous accounts are removed so that tests' own users
// are not shadowed by them.
//
// Typical use:
//
//	srv, err := localmy.Start(ctx, localmy.Options{})
//	if err != nil { ... }
//	defer srv.Stop()
//	err = srv.Exec(ctx, "CREATE USER app IDENTIFIED BY 'pw'", "GRANT ALL ON *.* TO app")
//	db, err := sql.Open("mysql", srv.DSN("app", "pw", ""))
package localmy
