package localpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// Server is a running PostgreSQL started by Start. Stop it when done.
type Server struct {
	Host      string // "127.0.0.1"
	Port      int
	SocketDir string
	DataDir   string
	BinDir    string
	Version   string // e.g. "15.18", from `postgres --version`

	proc       *localsrv.Child
	log        *localsrv.LogRing
	baseDir    string
	removeBase bool
	life       localsrv.Life

	// What run needs again to Resume after Halt.
	opts    Options
	as      localsrv.Account
	timeout time.Duration
}

// Start creates a fresh cluster with initdb and runs postgres on it until
// Stop. ctx (and Options.StartTimeout) bound only the startup; the server
// keeps running after ctx ends. On error nothing is left running and a
// temp dir of ours is removed.
func Start(ctx context.Context, o Options) (srv *Server, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	timeout := localsrv.StartTimeout(o.StartTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, binDir)
	if err != nil {
		return nil, err
	}
	as, err := serverUser()
	if err != nil {
		return nil, err
	}
	base, made, err := localsrv.MakeBaseDir(o.Dir, "localpg-")
	if err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	defer localsrv.RemoveOnError(made, base, &err)
	s := &Server{
		Host:       "127.0.0.1",
		SocketDir:  filepath.Join(base, "sock"),
		DataDir:    filepath.Join(base, "data"),
		BinDir:     binDir,
		Version:    version,
		baseDir:    base,
		removeBase: made,
		life:       localsrv.Life{Pkg: "localpg", Prog: "postgres"},
	}
	if n := len(filepath.Join(s.SocketDir, ".s.PGSQL.65535.lock")); n > localsrv.MaxSocketPath {
		return nil, fmt.Errorf("localpg: socket path in %s would be %d bytes, over the %d-byte unix socket limit; use a shorter Options.Dir", s.SocketDir, n, localsrv.MaxSocketPath)
	}
	if err := as.EnsureTraversable(base); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if err := as.MkOwnedDir(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if err := as.MkOwnedDir(s.SocketDir, 0o755); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	initdbOut, err := s.initdb(ctx, as, timeout)
	if err != nil {
		return nil, err
	}
	if err := writeConfig(&o, s.DataDir, s.SocketDir, as); err != nil {
		return nil, err
	}

	err = localsrv.Bind(o.Port,
		func(port int) error { return s.run(ctx, &o, as, port, timeout) },
		func() bool { return bindFailed(s.log.String()) })
	if err != nil {
		return nil, startError(err, s.log.String(), initdbOut)
	}
	s.opts, s.as, s.timeout = o, as, timeout
	return s, nil
}

// initdb creates the cluster. --no-sync and trust auth keep it to about a
// second; the superuser is named "postgres" whatever our user is, so Exec
// and tests can rely on it.
func (s *Server) initdb(ctx context.Context, as localsrv.Account, timeout time.Duration) (string, error) {
	out := &localsrv.LogRing{}
	args := []string{"-D", s.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"}
	if major, _, _ := strings.Cut(s.Version, "."); atoiOr0(major) >= 13 {
		args = append(args, "--no-instructions") // PG 13+: drop the pg_ctl advice from error tails
	}
	// initdb (as another user) must be able to enter its cwd.
	c, err := as.Start(s.baseDir, childEnv(as.Home), out, filepath.Join(s.BinDir, "initdb"), args...)
	if err != nil {
		return "", fmt.Errorf("localpg: start initdb: %w", err)
	}
	if err := c.Finish(ctx, func() { abort(c) }); err != nil {
		return out.String(), fmt.Errorf("localpg: initdb interrupted (start timeout %v): %w\n--- initdb output ---\n%s", timeout, err, localsrv.Tail(out.String(), 30))
	}
	if c.Err() != nil {
		return out.String(), fmt.Errorf("localpg: initdb %s: %w\n--- initdb output ---\n%s", s.DataDir, c.Err(), localsrv.Tail(out.String(), 30))
	}
	return out.String(), nil
}

// run starts postgres on port and waits until it accepts connections. On
// failure the process is gone when run returns.
func (s *Server) run(ctx context.Context, o *Options, as localsrv.Account, port int, timeout time.Duration) error {
	s.log = &localsrv.LogRing{}
	c, err := as.Start(s.baseDir, childEnv(as.Home), localsrv.Tee(s.log, o.Log),
		filepath.Join(s.BinDir, "postgres"), "-D", s.DataDir, "-p", strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.Port = port
	s.proc = c
	if err := s.waitReady(ctx, timeout); err != nil {
		abort(c)
		return errors.Join(err, removeStaleShm(s.DataDir))
	}
	return nil
}

// waitReady polls with real connections over the socket: a TCP port that
// accepts is not a server that finished recovery. Any authoritative answer
// from the server other than "starting up" counts as ready, so a caller's
// restrictive HBA does not make Start time out.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	cfg, err := pgconn.ParseConfig(s.socketDSN("postgres", "postgres"))
	if err != nil {
		return fmt.Errorf("parse readiness DSN: %w", err)
	}
	return s.proc.AwaitReady(ctx, "postgres", timeout, 10*time.Millisecond, 200*time.Millisecond, func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.ConnectConfig(actx, cfg)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return true, nil
		}
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code != "57P03", err // 57P03: cannot_connect_now
	})
}

func atoiOr0(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// bindFailed recognises postgres failing to listen on its TCP port.
func bindFailed(log string) bool {
	return strings.Contains(log, "could not bind") || strings.Contains(log, "could not create any TCP/IP sockets")
}

// startError puts the output that explains a failed start into the error,
// since the caller usually has nowhere else to see it.
func startError(err error, serverLog, initdbOut string) error {
	return fmt.Errorf("localpg: start postgres: %w\n--- server log (tail) ---\n%s\n--- initdb output (tail) ---\n%s",
		err, localsrv.Tail(serverLog, 40), localsrv.Tail(initdbOut, 10))
}

// Stop shuts the server down (fast shutdown, SIGKILL after 10s) and
// removes the temp dir if Start made it. It is safe to call more than
// once and on a nil *Server, so it can be deferred unconditionally. It
// reports a server that had already died, so crashes are not silent.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	return s.life.Stop(s.stop)
}

func (s *Server) stop() error {
	errs := []error{s.life.Crashed(s.proc, s.log)}
	if err := stopChild(s.proc, localsrv.StopGrace); err != nil {
		errs = append(errs, fmt.Errorf("localpg: postgres (pid %d) %w", s.proc.Pid(), err))
	}
	if err := removeStaleShm(s.DataDir); err != nil {
		errs = append(errs, err)
	}
	if s.removeBase {
		if err := os.RemoveAll(s.baseDir); err != nil {
			errs = append(errs, fmt.Errorf("localpg: remove %s: %w", s.baseDir, err))
		}
	}
	return errors.Join(errs...)
}

// Halt stops the server as an administrator's restart does, keeping its
// data and port for Resume: a fast shutdown, in which open sessions are
// sent "terminating connection due to administrator command" and closed.
// Tests use it for a real restart under open connections.
func (s *Server) Halt() error {
	return s.life.Halt(s.proc, func() error { return stopChild(s.proc, localsrv.StopGrace) })
}

// Resume starts a halted server again on the same data directory and port
// and waits until it accepts connections (Options.StartTimeout bounds
// it, as for Start).
func (s *Server) Resume(ctx context.Context) error {
	return s.life.Resume(func() error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		if err := s.run(ctx, &s.opts, s.as, s.Port, s.timeout); err != nil {
			return startError(err, s.log.String(), "")
		}
		return nil
	})
}

// Addr is the TCP address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// ConnString is a keyword/value DSN for user and database over TCP with
// sslmode=disable; callers wanting TLS replace or append sslmode.
func (s *Server) ConnString(user, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		dsnQuote(s.Host), s.Port, dsnQuote(user), dsnQuote(database))
}

// socketDSN reaches the server over its private unix socket, which the
// default and the augmented HBA both trust for the superuser.
func (s *Server) socketDSN(user, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		dsnQuote(s.SocketDir), s.Port, dsnQuote(user), dsnQuote(database))
}

// Exec runs sql, which may hold several statements, as the superuser
// "postgres" over the unix socket. It is meant for fixtures (roles,
// databases, grants), so it returns only the first error. Like any simple
// query, several statements run as one implicit transaction: send
// CREATE DATABASE / VACUUM in a call of their own.
func (s *Server) Exec(ctx context.Context, sql string) error {
	return s.ExecIn(ctx, "postgres", sql)
}

// ExecIn is Exec in the named database.
func (s *Server) ExecIn(ctx context.Context, database, sql string) error {
	conn, err := pgconn.Connect(ctx, s.socketDSN("postgres", database))
	if err != nil {
		return fmt.Errorf("localpg: exec: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return fmt.Errorf("localpg: exec: %w", err)
	}
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("localpg: exec: %w", r.Err)
		}
	}
	return nil
}

// BinPath is the path of a program from the same installation, e.g.
// BinPath("pgbench") or BinPath("psql").
func (s *Server) BinPath(name string) string {
	return filepath.Join(s.BinDir, name)
}

// dsnQuote quotes a keyword/value DSN value when needed (libpq rules:
// single quotes, backslash escapes).
func dsnQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\=") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
