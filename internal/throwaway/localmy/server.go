package localmy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

const (
	// adminUser is the account Exec and the readiness check use, over
	// the socket: root@localhost, created without a password.
	adminUser = "root"
)

// Server is a running MariaDB started by Start. Stop it when done.
type Server struct {
	Host    string // "127.0.0.1"
	Port    int
	Socket  string // unix socket path
	DataDir string
	Version string // e.g. "10.11.19", from `mariadbd --version`

	// StartDuration is how long Start took (install + startup), for
	// people wondering what the harness costs.
	StartDuration time.Duration

	proc       *localsrv.Child
	log        *localsrv.LogRing
	admin      *sql.DB // root over the socket; opened once ready
	p          paths
	removeBase bool
	life       localsrv.Life

	// What run needs again to Resume after Halt.
	opts     Options
	mariadbd string
	as       localsrv.Account
	userArgs []string
	timeout  time.Duration
}

// Start creates a fresh data directory with mariadb-install-db and runs
// mariadbd on it until Stop. ctx (and Options.StartTimeout) bound only the
// startup; the server keeps running after ctx ends. On error nothing is
// left running and a temp dir of ours is removed.
func Start(ctx context.Context, o Options) (srv *Server, err error) {
	begin := time.Now()
	if err := o.validate(); err != nil {
		return nil, err
	}
	timeout := localsrv.StartTimeout(o.StartTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	mariadbd, err := FindBin(serverProg)
	if err != nil {
		return nil, err
	}
	installDB, err := FindBin(installProg)
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, mariadbd)
	if err != nil {
		return nil, err
	}
	as, userArgs := serverUser()
	base, made, err := localsrv.MakeBaseDir(o.Dir, "localmy-")
	if err != nil {
		return nil, fmt.Errorf("localmy: %w", err)
	}
	defer localsrv.RemoveOnError(made, base, &err)
	p := layout(base, o.TLS)
	s := &Server{
		Host:       "127.0.0.1",
		Socket:     p.socket,
		DataDir:    p.data,
		Version:    version,
		p:          p,
		removeBase: made,
		life:       localsrv.Life{Pkg: "localmy", Prog: "mariadbd"},
	}
	if n := len(p.socket); n > localsrv.MaxSocketPath {
		return nil, fmt.Errorf("localmy: socket path %s is %d bytes, over the %d-byte unix socket limit; use a shorter Options.Dir", p.socket, n, localsrv.MaxSocketPath)
	}
	if err := prepareFiles(&o, p, as); err != nil {
		return nil, err
	}
	if err = s.install(ctx, installDB, mariadbd, as, userArgs, timeout); err != nil {
		return nil, err
	}

	err = localsrv.Bind(o.Port,
		func(port int) error { return s.run(ctx, &o, mariadbd, as, userArgs, port, timeout) },
		func() bool { return bindFailed(s.log.String()) })
	if err != nil {
		return nil, startError(err, s.log.String())
	}
	s.opts, s.mariadbd, s.as, s.userArgs, s.timeout = o, mariadbd, as, userArgs, timeout
	// Anonymous accounts (''@localhost, ''@host), created by the install
	// with root's "normal" authentication, would shadow tests' own users
	// on the socket: MySQL picks the most specific host first.
	if err := s.Exec(ctx, "DELETE FROM mysql.global_priv WHERE User = ''", "FLUSH PRIVILEGES"); err != nil {
		s.shutdown()
		return nil, startError(fmt.Errorf("remove anonymous accounts: %w", err), s.log.String())
	}
	s.StartDuration = time.Since(begin)
	return s, nil
}

// serverUser picks the account for mariadb-install-db and mariadbd. As
// root, the "mysql" system user (mariadbd refuses root unless told
// --user=root, and a server owning its files as root would hide
// permission mistakes); without that user, root with --user=root.
func serverUser() (localsrv.Account, []string) {
	if os.Geteuid() != 0 {
		return localsrv.CurrentAccount(), nil
	}
	a, err := localsrv.LookupAccount("mysql")
	if err != nil {
		return localsrv.CurrentAccount(), []string{"--user=root"}
	}
	return a, nil
}

// childEnv is our environment minus what would change what MariaDB
// programs do behind our back: MYSQL_*/MARIADB_* (MYSQL_HOME, MYSQL_PWD,
// MYSQL_UNIX_PORT, ...), and locale settings (English messages, which
// Start relies on to recognise a bind failure).
func childEnv(home string) []string {
	return localsrv.CleanEnv(home, func(k string) bool {
		return strings.HasPrefix(k, "MYSQL") || strings.HasPrefix(k, "MARIADB")
	})
}

// layout names the files under base.
func layout(base string, tls *TLSFiles) paths {
	p := paths{
		base:    base,
		conf:    filepath.Join(base, "my.cnf"),
		data:    filepath.Join(base, "data"),
		sockDir: filepath.Join(base, "sock"),
	}
	p.socket = filepath.Join(p.sockDir, "mariadbd.sock")
	p.pidFile = filepath.Join(p.sockDir, "mariadbd.pid")
	if tls != nil {
		p.cert = filepath.Join(base, "server-cert.pem")
		p.key = filepath.Join(base, "server-key.pem")
		if len(tls.CAPEM) > 0 {
			p.ca = filepath.Join(base, "ca.pem")
		}
	}
	return p
}

// prepareFiles creates the directories, my.cnf and TLS files, owned by
// the server's account: mariadbd creates its socket, pid and temp files
// in sock/ and must be able to read its key.
func prepareFiles(o *Options, p paths, as localsrv.Account) error {
	// Checked before anything is changed: a given Dir holding a previous
	// server's data must not be chowned or half overwritten.
	if entries, err := os.ReadDir(p.data); err == nil && len(entries) > 0 {
		return fmt.Errorf("localmy: data directory %s is not empty; give a fresh Options.Dir", p.data)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("localmy: %w", err)
	}
	if err := as.EnsureTraversable(p.base); err != nil {
		return fmt.Errorf("localmy: %w", err)
	}
	if err := as.MkOwnedDir(p.data, 0o750); err != nil {
		return fmt.Errorf("localmy: %w", err)
	}
	if err := as.MkOwnedDir(p.sockDir, 0o755); err != nil {
		return fmt.Errorf("localmy: %w", err)
	}
	// my.cnf must not be world-writable, or mariadbd ignores it.
	files := []localsrv.OwnedFile{{Path: p.conf, Data: []byte(serverConfig(o, p)), Mode: 0o644}}
	if o.TLS != nil {
		files = append(files, o.TLS.Files(p.cert, p.key, p.ca)...)
	}
	if err := as.WriteOwnedFiles(files); err != nil {
		return fmt.Errorf("localmy: %w", err)
	}
	return nil
}

// install runs mariadb-install-db: system tables, root without a password
// (--auth-root-authentication-method=normal), no test database, accounts
// by IP (--skip-name-resolve, no root@<hostname>). It takes about half a
// second. --basedir tells the script where the server and its SQL files
// are when they are not under /usr.
func (s *Server) install(ctx context.Context, installDB, mariadbd string, as localsrv.Account, userArgs []string, timeout time.Duration) error {
	out := &localsrv.LogRing{}
	args := []string{
		"--defaults-file=" + s.p.conf, // must come first
		"--datadir=" + s.p.data,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	}
	if basedir := filepath.Dir(filepath.Dir(mariadbd)); basedir != "/usr" {
		args = append(args, "--basedir="+basedir)
	}
	args = append(args, userArgs...)
	// The script (as another user) must be able to enter its cwd.
	c, err := as.Start(s.p.base, childEnv(as.Home), out, installDB, args...)
	if err != nil {
		return fmt.Errorf("localmy: start %s: %w", installDB, err)
	}
	// Kill: the whole group, the script and its bootstrap mariadbd.
	if err := c.Finish(ctx, c.Kill); err != nil {
		return fmt.Errorf("localmy: %s interrupted (start timeout %v): %w\n--- server log (tail, from %s) ---\n%s",
			installProg, timeout, err, installProg, installTail(out.String()))
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("localmy: %s %s: %w\n--- server log (tail, from %s) ---\n%s",
			installProg, s.p.data, err, installProg, installTail(out.String()))
	}
	return nil
}

// installFailed is the line after which mariadb-install-db prints 30
// lines of generic advice (conflicting my.cnf files, --skip-grant-tables,
// bug reports) that would push the bootstrap server's real error out of
// an error message's tail.
const installFailed = "Installation of system tables failed!"

// installTail is the end of mariadb-install-db's output without that
// advice: the bootstrap server's error log lines that explain a failure.
func installTail(out string) string {
	if i := strings.Index(out, installFailed); i >= 0 {
		out = out[:i+len(installFailed)]
	}
	return localsrv.Tail(out, 30)
}

// run starts mariadbd on port and waits until it accepts connections. On
// failure the process is gone when run returns. The error log goes to
// stderr (no log_error), into the ring and Options.Log.
func (s *Server) run(ctx context.Context, o *Options, mariadbd string, as localsrv.Account, userArgs []string, port int, timeout time.Duration) error {
	s.log = &localsrv.LogRing{}
	args := append([]string{"--defaults-file=" + s.p.conf, "--port=" + strconv.Itoa(port)}, userArgs...)
	c, err := as.Start(s.p.base, childEnv(as.Home), localsrv.Tee(s.log, o.Log), mariadbd, args...)
	if err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	s.Port = port
	s.proc = c
	admin, err := mysql.NewConnector(s.adminConfig(""))
	if err != nil {
		s.proc.Kill()
		return fmt.Errorf("admin connector: %w", err)
	}
	s.admin = sql.OpenDB(admin)
	if err := s.waitReady(ctx, timeout); err != nil {
		s.shutdown()
		return err
	}
	return nil
}

// waitReady polls with real connections over the socket: mariadbd creates
// the socket only once InnoDB is up, but a connection is what proves it.
// Any answer from the server itself (even an error packet) counts as
// ready, so a caller's unusual Settings do not make Start time out.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	cfg := s.adminConfig("")
	cfg.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("readiness connector: %w", err)
	}
	return s.proc.AwaitReady(ctx, "mariadbd", timeout, 5*time.Millisecond, 100*time.Millisecond, func() (bool, error) {
		c, err := conn.Connect(ctx)
		if err == nil {
			_ = c.Close()
			return true, nil
		}
		var myErr *mysql.MySQLError
		return errors.As(err, &myErr), err
	})
}

// shutdown stops a server that failed during Start: straight SIGKILL,
// since its data is about to be thrown away.
func (s *Server) shutdown() {
	if s.admin != nil {
		_ = s.admin.Close()
	}
	s.proc.Kill()
}

// bindFailed recognises mariadbd failing to listen on its TCP port.
func bindFailed(log string) bool {
	return strings.Contains(log, "Bind on TCP/IP port") || strings.Contains(log, "Address already in use")
}

// startError puts the server's error log that explains a failed start
// into the error, since the caller usually has nowhere else to see it.
// (A successful install's output is only advice, so it is left out.)
func startError(err error, serverLog string) error {
	return fmt.Errorf("localmy: start mariadbd: %w\n--- server log (tail) ---\n%s",
		err, localsrv.Tail(serverLog, 40))
}

// Stop shuts the server down (SIGTERM: a normal shutdown; SIGKILL after
// 10s) and removes the temp dir if Start made it. It is safe to call more
// than once and on a nil *Server, so it can be deferred unconditionally.
// It reports a server that had already died, so crashes are not silent.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	return s.life.Stop(s.stop)
}

func (s *Server) stop() error {
	if s.admin != nil {
		_ = s.admin.Close()
	}
	errs := []error{s.life.Crashed(s.proc, s.log)}
	if err := s.proc.Stop(localsrv.SigTerm(), localsrv.StopGrace, nil); err != nil {
		errs = append(errs, fmt.Errorf("localmy: mariadbd (pid %d) %w", s.proc.Pid(), err))
	}
	if s.removeBase {
		if err := os.RemoveAll(s.p.base); err != nil {
			errs = append(errs, fmt.Errorf("localmy: remove %s: %w", s.p.base, err))
		}
	}
	return errors.Join(errs...)
}

// Halt stops the server as an administrator's restart does (SIGTERM, a
// normal shutdown: running statements are killed and connections
// closed), keeping its data and port for Resume. Tests use it for a real
// restart under open connections.
func (s *Server) Halt() error {
	return s.life.Halt(s.proc, func() error {
		_ = s.admin.Close()
		return s.proc.Stop(localsrv.SigTerm(), localsrv.StopGrace, nil)
	})
}

// Resume starts a halted server again on the same data directory and port
// and waits until it accepts connections (Options.StartTimeout bounds
// it, as for Start).
func (s *Server) Resume(ctx context.Context) error {
	return s.life.Resume(func() error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		if err := s.run(ctx, &s.opts, s.mariadbd, s.as, s.userArgs, s.Port, s.timeout); err != nil {
			return startError(err, s.log.String())
		}
		return nil
	})
}

// Addr is the TCP address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// Config is a go-sql-driver/mysql configuration for user over TCP, to
// adjust (TLS, timeouts, params) before mysql.NewConnector; database ""
// means none.
func (s *Server) Config(user, password, database string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = user, password
	cfg.Net, cfg.Addr = "tcp", s.Addr()
	cfg.DBName = database
	return cfg
}

// DSN is a go-sql-driver/mysql DSN for user over TCP, without TLS.
func (s *Server) DSN(user, password, database string) string {
	return s.Config(user, password, database).FormatDSN()
}

// SocketDSN is DSN over the server's unix socket.
func (s *Server) SocketDSN(user, password, database string) string {
	cfg := s.Config(user, password, database)
	cfg.Net, cfg.Addr = "unix", s.Socket
	return cfg.FormatDSN()
}

// adminConfig is root over the socket, where root@localhost has no
// password whatever TCP accounts a test sets up. Several statements in
// one string are allowed, as in localpg's Exec.
func (s *Server) adminConfig(database string) *mysql.Config {
	cfg := s.Config(adminUser, "", database)
	cfg.Net, cfg.Addr = "unix", s.Socket
	cfg.MultiStatements = true
	cfg.Logger = &mysql.NopLogger{} // readiness attempts would log "unexpected EOF" noise
	return cfg
}

// Exec runs statements in order as root over the socket, on one
// connection (so SET and USE carry over), and returns the first error.
// A statement string may also hold several statements separated by ";".
// It is meant for fixtures: users, databases, grants.
func (s *Server) Exec(ctx context.Context, statements ...string) error {
	return s.ExecIn(ctx, "", statements...)
}

// ExecIn is Exec with database as the default database.
func (s *Server) ExecIn(ctx context.Context, database string, statements ...string) error {
	db := s.admin
	if database != "" {
		// A pool of its own, so the shared one never keeps this default
		// database (nor a missing one's error).
		c, err := mysql.NewConnector(s.adminConfig(database))
		if err != nil {
			return fmt.Errorf("localmy: exec: %w", err)
		}
		db = sql.OpenDB(c)
		defer db.Close()
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("localmy: exec: connect: %w", err)
	}
	defer conn.Close()
	for _, stmt := range statements {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("localmy: exec %q: %w", abbrev(stmt), err)
		}
	}
	return nil
}

// QueryRow runs a query as root over the socket and returns its first
// row, as database/sql's QueryRowContext (errors surface from Scan).
func (s *Server) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.admin.QueryRowContext(ctx, query, args...)
}

// BinPath is the path of a MariaDB program ("mariadb", "mariadb-dump",
// ...) found as FindBin does, or "" when it is not installed.
func (s *Server) BinPath(name string) string {
	p, err := FindBin(name)
	if err != nil {
		return ""
	}
	return p
}

// abbrev shortens a statement for an error message (a 20 MB INSERT
// should not end up in a test log).
func abbrev(stmt string) string {
	if len(stmt) > 200 {
		return stmt[:200] + "..."
	}
	return stmt
}
