package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

// demoSQL sets up an IAM user the way it is done on RDS: a LOGIN role in
// rds_iam, with the grants the application needs. rds_iam exists on RDS;
// here it is created.
const demoSQL = `
CREATE ROLE rds_iam;
CREATE ROLE app_user WITH LOGIN;
GRANT rds_iam TO app_user;
`

// demoMySQLAppSQL is the same table on the MariaDB side.
var demoMySQLAppSQL = []string{
	"CREATE TABLE greetings (id INT AUTO_INCREMENT PRIMARY KEY, message TEXT NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
	"INSERT INTO greetings (message) VALUES ('hello from RDS IAM auth, through rds-iam-proxy')",
}

const demoAppSQL = `
CREATE TABLE greetings (id serial PRIMARY KEY, message text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO greetings (message) VALUES ('hello from RDS IAM auth, through rds-iam-proxy');
GRANT SELECT, INSERT, UPDATE, DELETE ON greetings TO app_user;
GRANT USAGE, SELECT ON SEQUENCE greetings_id_seq TO app_user;
`

// cmdDemo runs the whole IAM path on this machine: a throwaway PostgreSQL
// and/or MariaDB, the emulator (STS, IMDSv2 with an instance profile, the
// RDS IAM fronts) and the proxy, configured exactly as a user would
// configure it against AWS.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "rds-iam-proxy demo [--check] [--engine postgres|mysql|all]\n\nStarts a throwaway PostgreSQL (and/or MariaDB), emulated AWS (STS, IMDSv2, an RDS IAM\nfront) and the proxy, runs a query through it and waits for you to try psql or mysql;\nCtrl-C stops it all.", stderr)
	var lf logFlags
	lf.register(fs)
	check := fs.Bool("check", false, "exit after the query: status 0 if it worked")
	engine := fs.String("engine", "postgres", "postgres, mysql (needs MariaDB: apt-get install mariadb-server mariadb-client), or all")
	listen := fs.String("listen", "127.0.0.1:6432", "where the Postgres proxy listens")
	listenMy := fs.String("listen-mysql", "127.0.0.1:3307", "where the MySQL proxy listens")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	pg, my := *engine == config.Postgres.String() || *engine == "all", *engine == config.MySQL.String() || *engine == "all"
	if !pg && !my {
		fmt.Fprintf(stderr, "rds-iam-proxy demo: --engine %q: use postgres, mysql or all\n", *engine)
		return 2
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy demo:", err)
		return 2
	}
	d := &demo{log: log, stdout: stdout}
	defer d.close()
	fail := commandFailure("demo", 1, stderr)
	if err := d.start(ctx, pg, my); err != nil {
		return fail(err)
	}
	tries := []string{}
	if pg {
		r, err := d.startPostgres(ctx, *listen)
		if err != nil {
			return fail(err)
		}
		tries = append(tries, fmt.Sprintf("psql -h 127.0.0.1 -p %s -U app_user appdb", r.Port()))
	}
	if my {
		r, err := d.startMySQL(ctx, *listenMy)
		if err != nil {
			return fail(err)
		}
		tries = append(tries, fmt.Sprintf("mysql -h 127.0.0.1 -P %s -u app_user appdb", r.Port()))
	}
	if *check {
		return 0
	}
	fmt.Fprintf(stdout, "\nTry it (Ctrl-C here to stop):\n  %s\n\n", strings.Join(tries, "\n  "))
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return 0
}

type demo struct {
	log     *slog.Logger
	stdout  io.Writer
	stack   *iamstack.Stack
	proxies []*launch.Running
}

func (d *demo) start(ctx context.Context, pg, my bool) error {
	fmt.Fprintln(d.stdout, "starting throwaway databases and emulated AWS...")
	o := iamstack.Options{
		Role: "demo-app", AllowUsers: []string{"app_user"},
		Logger: d.log.With("component", "emulator"),
	}
	if pg {
		o.SetupSQL, o.AppDB, o.AppSQL = []string{demoSQL}, "appdb", demoAppSQL
	} else {
		o.NoPostgres = true
	}
	if my {
		o.MySQL = &iamstack.MySQLOptions{AppDB: "appdb", AppSQL: demoMySQLAppSQL, IAMUsers: []string{"app_user"},
			Grants: []string{"GRANT SELECT, INSERT, UPDATE, DELETE ON appdb.* TO 'app_user'@'%'"}}
	}
	stack, err := iamstack.Start(ctx, o)
	if err != nil {
		return err
	}
	d.stack = stack
	fmt.Fprintf(d.stdout, "emulated AWS at %s: instance profile role demo-app may rds-db:connect as app_user\n", stack.AWS.URL())
	// The proxy finds its credentials as on EC2: the default chain, IMDSv2.
	stack.UseInProcess()
	return nil
}

// proxy starts one proxy as a user would configure it.
func (d *demo) proxy(ctx context.Context, engine config.Engine, endpoint, dial, listen string) (*launch.Running, error) {
	c := launch.NewConfig(engine, endpoint)
	c.DialAddress, c.Listen, c.CABundle = dial, listen, d.stack.CAFile
	r, err := launch.Start(ctx, c, d.log.With("component", "proxy"))
	if err != nil {
		return nil, err
	}
	d.proxies = append(d.proxies, r)
	fmt.Fprintf(d.stdout, "%s proxy on %s for %s (dialing the emulator at %s)\n", engine, r.Addr(), endpoint, dial)
	return r, nil
}

func (d *demo) startPostgres(ctx context.Context, listen string) (*launch.Running, error) {
	s := d.stack
	fmt.Fprintf(d.stdout, "PostgreSQL %s at %s behind the emulated RDS front; dbuser ARN %s\n", s.PG.Version, s.PG.Addr(), s.Front.UserARN("app_user"))
	return d.proxyAndGreet(ctx, config.Postgres, s.Endpoint(), s.Front.Addr(), listen, pgGreeting)
}

func (d *demo) startMySQL(ctx context.Context, listen string) (*launch.Running, error) {
	s := d.stack
	fmt.Fprintf(d.stdout, "MariaDB %s at %s behind the emulated RDS front; dbuser ARN %s\n", s.My.Version, s.My.Addr(), s.MyFront.UserARN("app_user"))
	return d.proxyAndGreet(ctx, config.MySQL, s.MySQLEndpoint(), s.MyFront.Addr(), listen, myGreeting)
}

// greeting reads the demo's greeting as app_user through the proxy on
// 127.0.0.1:port, with the engine's own client library.
type greeting func(ctx context.Context, port string) (user, message string, err error)

// proxyAndGreet starts a proxy and shows that it works: one query through
// it, within 30 seconds.
func (d *demo) proxyAndGreet(ctx context.Context, engine config.Engine, endpoint, dial, listen string, greet greeting) (*launch.Running, error) {
	r, err := d.proxy(ctx, engine, endpoint, dial, listen)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	user, message, err := greet(qctx, r.Port())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(d.stdout, "query through the proxy OK: current_user=%s message=%q\n", user, message)
	return r, nil
}

// pgGreeting asks with pgconn, as libpq-based clients would connect.
func pgGreeting(ctx context.Context, port string) (user, message string, err error) {
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%s user=app_user dbname=appdb sslmode=disable application_name=rds-iam-proxy-demo", port))
	if err != nil {
		return "", "", fmt.Errorf("query through the proxy: %w", err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT current_user, message FROM greetings ORDER BY id LIMIT 1", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return "", "", fmt.Errorf("query through the proxy: %w", res.Err)
	}
	if len(res.Rows) != 1 {
		return "", "", fmt.Errorf("query through the proxy: got %d rows, want 1", len(res.Rows))
	}
	return string(res.Rows[0][0]), string(res.Rows[0][1]), nil
}

// myGreeting asks with go-sql-driver/mysql, without TLS to the local proxy.
func myGreeting(ctx context.Context, port string) (user, message string, err error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "app_user", "tcp", "127.0.0.1:"+port, "appdb"
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return "", "", err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER(), message FROM greetings ORDER BY id LIMIT 1").Scan(&user, &message); err != nil {
		return "", "", fmt.Errorf("query through the proxy: %w", err)
	}
	return user, message, nil
}

func (d *demo) close() {
	for _, r := range d.proxies {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r.Shutdown(ctx)
		cancel()
	}
	if d.stack != nil {
		d.stack.Close()
	}
}
