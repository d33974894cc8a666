package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/localpg"
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
	fmt.Fprintf(stdout, "\nTry it (Ctrl-C here to stop):\n  psql -h 127.0.0.1 -p %s -U app_user appdb\n\n", portOf(d.proxy.Addr().String()))
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return 0
}

type demo struct {
	log    *slog.Logger
	stdout io.Writer
	pg     *localpg.Server
	aws    *emulator.Server
	front  *emulator.Postgres
	proxy  *launch.Running
	dir    string
}

func (d *demo) start(ctx context.Context, listen string) error {
	fmt.Fprintln(d.stdout, "starting a throwaway PostgreSQL...")
	pg, err := localpg.Start(ctx, localpg.Options{})
	if err != nil {
		return err
	}
	d.pg = pg
	if err := pg.Exec(ctx, demoSQL); err != nil {
		return fmt.Errorf("set up the demo database: %w", err)
	}
	if err := pg.Exec(ctx, "CREATE DATABASE appdb"); err != nil {
		return fmt.Errorf("set up the demo database: %w", err)
	}
	if err := pg.ExecIn(ctx, "appdb", demoAppSQL); err != nil {
		return fmt.Errorf("set up the demo table: %w", err)
	}

	// Emulated AWS: an instance profile whose role may connect as app_user.
	aws, err := emulator.StartServer(emulator.Options{Logger: d.log.With("component", "emulator")}, "")
	if err != nil {
		return err
	}
	d.aws = aws
	front, err := aws.AWS.StartPostgres(aws.CA, emulator.PostgresOptions{Backend: pg.Addr(), Logger: d.log.With("component", "emulator")})
	if err != nil {
		return err
	}
	d.front = front
	arn := authtoken.DBUserARN(aws.AWS.Region(), aws.AWS.AccountID(), front.ResourceID(), "app_user")
	aws.AWS.AddRole("demo-app", emulator.Policy{Statements: []emulator.Statement{
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{arn}},
	}})
	if err := aws.AWS.SetInstanceProfile("demo-app"); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "emulated AWS at %s: instance profile role demo-app may rds-db:connect on %s\n", aws.URL(), arn)

	// The proxy finds its credentials like on EC2: the default chain, IMDSv2.
	d.dir, err = os.MkdirTemp("", "rds-iam-proxy-demo-")
	if err != nil {
		return err
	}
	caFile := filepath.Join(d.dir, "emulator-ca.pem")
	if err := os.WriteFile(caFile, aws.CA.CertPEM(), 0o644); err != nil {
		return err
	}
	isolateAWSEnv(aws.SDKEnv(), d.dir)

	endpoint := fmt.Sprintf("%s:%d", front.Endpoint(), front.Port())
	r, err := launch.Start(ctx, launch.Config{
		Engine: "postgres", Endpoint: endpoint, DialAddress: front.Addr(), Listen: listen, CABundle: caFile,
	}, d.log.With("component", "proxy"))
	if err != nil {
		return err
	}
	d.proxy = r
	fmt.Fprintf(d.stdout, "proxy on %s for %s (dialing the emulator at %s)\n", r.Addr(), endpoint, front.Addr())

	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(qctx, fmt.Sprintf("host=127.0.0.1 port=%s user=app_user dbname=appdb sslmode=disable application_name=rds-iam-proxy-demo", portOf(r.Addr().String())))
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
	if d.front != nil {
		d.front.Close()
	}
	if d.aws != nil {
		d.aws.Close()
	}
	if d.pg != nil {
		d.pg.Stop()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// isolateAWSEnv makes this process's AWS chain see only the emulator:
// every AWS_* variable is cleared (keys in the environment would win over
// the instance profile) and the shared files point at nothing.
func isolateAWSEnv(env map[string]string, dir string) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}
