package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/bench/internal/pgbenchrun"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// pgbenchResult is one pgbench run's figures.
type pgbenchResult struct {
	tps, latencyMS float64
	txns           int64
	cpu            time.Duration // PgBouncer's CPU over the run (0 for other sides)
}

// pgbench runs the server's pgbench against conninfo for d.
func pgbench(ctx context.Context, pg *localpg.Server, args []string, d time.Duration, conninfo string) (pgbenchResult, error) {
	r, err := pgbenchrun.Run(ctx, pg, args, d, conninfo)
	return pgbenchResult{tps: r.TPS, latencyMS: r.LatencyMS, txns: r.Txns}, err
}

// pgbouncer is PgBouncer in session mode before the same PostgreSQL,
// verifying the server's certificate (verify-full), as the anchor: what a
// pooler that reuses server sessions does on this machine.
type pgbouncer struct {
	child *localsrv.Child
	port  int
	dir   string
}

// startPgBouncer starts PgBouncer (found on PATH or in /usr/sbin) or
// returns nil, nil when it is not installed. As root it runs as the
// postgres account: PgBouncer refuses root.
func startPgBouncer(ctx context.Context, pgPort int, caFile, user, database string) (*pgbouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			return nil, nil
		}
		bin = "/usr/sbin/pgbouncer"
	}
	as := localsrv.CurrentAccount()
	if os.Geteuid() == 0 {
		if as, err = localsrv.LookupAccount("postgres"); err != nil {
			return nil, fmt.Errorf("pgbouncer refuses root and there is no postgres account: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "rds-iam-proxy-suite-pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ini := fmt.Sprintf(`[databases]
%[1]s = host=127.0.0.1 port=%[2]d dbname=%[1]s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = trust
auth_file = %[4]s/users.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 50
server_tls_sslmode = verify-full
server_tls_ca_file = %[4]s/ca.pem
ignore_startup_parameters = extra_float_digits
`, database, pgPort, port, dir)
	if err := as.WriteOwnedFiles([]localsrv.OwnedFile{
		{Path: filepath.Join(dir, "pgbouncer.ini"), Data: []byte(ini), Mode: 0o600},
		{Path: filepath.Join(dir, "users.txt"), Data: []byte(fmt.Sprintf("%q \"\"\n", user)), Mode: 0o600},
		{Path: filepath.Join(dir, "ca.pem"), Data: ca, Mode: 0o644},
	}); err != nil {
		return nil, err
	}
	child, err := as.Start(dir, os.Environ(), &boundedLog{}, bin, filepath.Join(dir, "pgbouncer.ini"))
	if err != nil {
		return nil, err
	}
	b := &pgbouncer{child: child, port: port, dir: dir}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		if exited, _ := child.Exited(); exited || time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("pgbouncer did not start: %v", err)
		}
		select {
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *pgbouncer) stop() {
	if b == nil {
		return
	}
	b.child.Kill()
	b.child.Wait(10 * time.Second)
	os.RemoveAll(b.dir)
}
