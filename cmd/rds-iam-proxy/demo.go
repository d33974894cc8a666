package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/iamstack"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// demoSQL sets up an IAM user the way it is done on RDS: a LOGIN role in
// rds_iam, with the grants the application needs. rds_iam exists on RDS;
// here it is created.
const demoSQL = `
CREATE ROLE rds_iam;
CREATE ROLE app_user WITH LOGIN;
GRANT rds_iam TO app_user;
`

const demoAppSQL = `
CREATE TABLE greetings (id serial PRIMARY KEY, message text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO greetings (message) VALUES ('hello from RDS IAM auth, through rds-iam-proxy');
GRANT SELECT, INSERT, UPDATE, DELETE ON greetings TO app_user;
GRANT USAGE, SELECT ON SEQUENCE greetings_id_seq TO app_user;
`

// cmdDemo runs the whole IAM path on this machine: a throwaway PostgreSQL,
// the emulator (STS, IMDSv2 with an instance profile, the RDS IAM front) and
// the proxy, configured exactly as a user would configure it against AWS.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "rds-iam-proxy demo [--check] [--listen 127.0.0.1:6432]\n\nStarts a throwaway PostgreSQL, emulated AWS (STS, IMDSv2, an RDS IAM front) and the\nproxy, runs a query through it and waits for you to try psql; Ctrl-C stops it all.", stderr)
	var lf logFlags
	lf.register(fs)
	check := fs.Bool("check", false, "exit after the query: status 0 if it worked")
	listen := fs.String("listen", "127.0.0.1:6432", "where the proxy listens")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy demo:", err)
		return 2
	}
	d := &demo{log: log, stdout: stdout}
	defer d.close()
	if err := d.start(ctx, *listen); err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy demo:", err)
		return 1
	}
	if *check {
		return 0
	}
	fmt.Fprintf(stdout, "\nTry it (Ctrl-C here to stop):\n  psql -h 127.0.0.1 -p %s -U app_user appdb\n\n", d.proxy.Port())
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return 0
}

type demo struct {
	log    *slog.Logger
	stdout io.Writer
	stack  *iamstack.Stack
	proxy  *launch.Running
}

func (d *demo) start(ctx context.Context, listen string) error {
	fmt.Fprintln(d.stdout, "starting a throwaway PostgreSQL and emulated AWS...")
	stack, err := iamstack.Start(ctx, iamstack.Options{
		SetupSQL: []string{demoSQL}, AppDB: "appdb", AppSQL: demoAppSQL,
		Role: "demo-app", AllowUsers: []string{"app_user"},
		Logger: d.log.With("component", "emulator"),
	})
	if err != nil {
		return err
	}
	d.stack = stack
	fmt.Fprintf(d.stdout, "PostgreSQL %s at %s; emulated AWS at %s: instance profile role demo-app may rds-db:connect on %s\n",
		stack.PG.Version, stack.PG.Addr(), stack.AWS.URL(), stack.Front.UserARN("app_user"))

	// The proxy finds its credentials as on EC2: the default chain, IMDSv2.
	stack.UseInProcess()
	r, err := launch.Start(ctx, launch.Config{
		Engine: "postgres", Endpoint: stack.Endpoint(), DialAddress: stack.Front.Addr(), Listen: listen, CABundle: stack.CAFile,
	}, d.log.With("component", "proxy"))
	if err != nil {
		return err
	}
	d.proxy = r
	fmt.Fprintf(d.stdout, "proxy on %s for %s (dialing the emulator at %s)\n", r.Addr(), stack.Endpoint(), stack.Front.Addr())

	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(qctx, fmt.Sprintf("host=127.0.0.1 port=%s user=app_user dbname=appdb sslmode=disable application_name=rds-iam-proxy-demo", r.Port()))
	if err != nil {
		return fmt.Errorf("query through the proxy: %w", err)
	}
	defer conn.Close(qctx)
	res := conn.ExecParams(qctx, "SELECT current_user, message FROM greetings ORDER BY id LIMIT 1", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("query through the proxy: %w", res.Err)
	}
	if len(res.Rows) != 1 {
		return fmt.Errorf("query through the proxy: got %d rows, want 1", len(res.Rows))
	}
	fmt.Fprintf(d.stdout, "query through the proxy OK: current_user=%s message=%q\n", res.Rows[0][0], res.Rows[0][1])
	return nil
}

func (d *demo) close() {
	if d.proxy != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d.proxy.Shutdown(ctx)
		cancel()
	}
	if d.stack != nil {
		d.stack.Close()
	}
}
