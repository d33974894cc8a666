package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

const validateSynopsis = `rds-iam-proxy validate --endpoint HOST:PORT --db-user USER --database DB [flags]
rds-iam-proxy validate --engine ENGINE --admin-dsn DSN --db-user USER [flags]

Checks the database side of IAM authentication, one line per check, with
the SQL that fixes each failure. With --endpoint it logs in as USER through
an in-process proxy (the path the application takes), so the IAM side must
work already. With --admin-dsn it connects as an admin instead (a libpq DSN
for postgres, a go-sql-driver DSN for mysql) and inspects USER, who may not
be able to log in yet.

Postgres: the role (exact case), LOGIN, rds_iam, not rds_ad, CONNECT, USAGE
on each schema, the privileges on every table and sequence, default
privileges for future ones (warning), the master-user trap (warning).
MySQL: the account, AWSAuthenticationPlugin, REQUIRE SSL, the grants.
Aurora DSQL (--engine dsql): the role and LOGIN, its AWS IAM GRANT mapping
to the signing principal (sys.iam_pg_role_mappings), USAGE and the table
privileges; sequences, temporary tables and triggers are named as missing.

Required privileges: --require SCHEMA.TABLE:PRIV,... (SCHEMA.* for all of
the schema's tables; MySQL: DATABASE.*), --require-sequences (Postgres), or
--requirements FILE (YAML: require: [...], require_sequences: [...]).
Default: SELECT on every table of public (Postgres) or of --database (MySQL).

Exit status: 0 when no check fails (warnings do not), 1 when one does, 2 for
bad flags.`

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// reqFlags are the flags that say which privileges the user needs, shared
// by validate and setup sql so both read them the same way.
type reqFlags struct {
	require, requireSequences stringList
	file                      string
}

func (f *reqFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.require, "require", "privileges needed on tables, SCHEMA.TABLE:PRIV,PRIV (SCHEMA.* = all its tables; MySQL: DATABASE.*); repeatable")
	fs.Var(&f.requireSequences, "require-sequences", "privileges needed on sequences (Postgres), e.g. public.*:USAGE,SELECT; repeatable")
	fs.StringVar(&f.file, "requirements", "", "YAML file with require: and require_sequences: lists, added to the flags'")
}

// load parses the flags and the file, and refuses privileges the engine
// does not know before anything connects.
func (f *reqFlags) load(engine config.Engine) (tables, sequences []validate.Requirement, err error) {
	if tables, err = validate.ParseRequirements(f.require); err != nil {
		return nil, nil, err
	}
	if sequences, err = validate.ParseRequirements(f.requireSequences); err != nil {
		return nil, nil, err
	}
	if f.file != "" {
		t, s, err := validate.LoadRequirements(f.file)
		if err != nil {
			return nil, nil, err
		}
		tables, sequences = append(tables, t...), append(sequences, s...)
	}
	if err := validate.CheckRequirements(engine, tables, sequences); err != nil {
		return nil, nil, err
	}
	return tables, sequences, nil
}

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", validateSynopsis, stderr)
	flags := config.RegisterUpstream(fs, config.LoginKeys...)
	var reqs reqFlags
	reqs.register(fs)
	database := fs.String("database", "", databaseUsage)
	adminDSN := fs.String("admin-dsn", "", "connect with this admin DSN instead of as --db-user through the proxy (libpq DSN for postgres, go-sql-driver DSN for mysql)")
	host := fs.String("host", "%", accountHostUsage)
	format := fs.String("format", "text", formatUsage)
	timeout := fs.Duration("timeout", 60*time.Second, timeoutUsage)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	usageErr := commandFailure("validate", 2, stderr)
	if *format != "text" && *format != "json" {
		return usageErr(fmt.Errorf("--format %q: use text or json", *format))
	}
	cfg, err := upstreamConfig(flags)
	if err != nil {
		return flagProblems("validate", err, stderr)
	}
	if *adminDSN == "" && cfg.Endpoint == "" {
		return usageErr(errors.New("give --endpoint (log in as --db-user through the proxy) or --admin-dsn"))
	}
	if cfg.DBUser == "" {
		return usageErr(errors.New("--db-user is required"))
	}
	tables, seqs, err := reqs.load(cfg.Engine)
	if err != nil {
		return usageErr(err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	o := validate.DBOptions{User: cfg.DBUser, Database: *database, Host: *host, Require: tables, RequireSequences: seqs, Admin: *adminDSN != ""}
	if cfg.Engine == config.DSQL {
		o.IAMPrincipal = dsqlSigner(ctx, cfg, stderr)
	}
	var report *validate.Report
	if o.Admin {
		report = validateAdmin(ctx, cfg.Engine, *adminDSN, o)
	} else {
		report = validateThroughProxy(ctx, cfg, o, stderr)
	}
	write := report.WriteText
	if *format == "json" {
		write = report.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy validate:", err)
		return 1
	}
	if !report.OK() {
		return 1
	}
	return 0
}

// loginFailed is the report when the connection itself fails: nothing
// else can be checked from here.
func loginFailed(name string, err error, hint string) *validate.Report {
	r := &validate.Report{}
	r.Add(validate.Check{Name: name, Status: validate.Fail, Detail: err.Error() + hint})
	return r
}

func validateAdmin(ctx context.Context, engine config.Engine, dsn string, o validate.DBOptions) *validate.Report {
	if engine == config.MySQL {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return loginFailed("admin connection", fmt.Errorf("--admin-dsn: %w", err), "")
		}
		db, err := openMySQL(cfg)
		if err != nil {
			return loginFailed("admin connection", err, "")
		}
		defer db.Close()
		return validate.MySQL(ctx, db, o)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return loginFailed("admin connection", err, "")
	}
	defer closePG(conn)
	if engine == config.DSQL {
		return validate.DSQL(ctx, conn, o)
	}
	return validate.Postgres(ctx, conn, o)
}

// validateThroughProxy starts the proxy in-process on a loopback port and
// logs in through it as the user, so the checks see exactly what the
// application will: the IAM login itself, then the grants.
func validateThroughProxy(ctx context.Context, cfg launch.Config, o validate.DBOptions, stderr io.Writer) *validate.Report {
	cfg.Listen = "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	run, err := launch.Start(ctx, cfg, log)
	if err != nil {
		return loginFailed("proxy", err, "")
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		run.Shutdown(sctx)
	}()
	const hint = "; IAM login failed, so the database side cannot be checked as the user: run again with --admin-dsn to see which database step is wrong (and rds-iam-proxy whoami for the AWS side)"
	if cfg.Engine == config.MySQL {
		c := mysql.NewConfig()
		c.User, c.Net, c.Addr, c.DBName = o.User, "tcp", "127.0.0.1:"+run.Port(), o.Database
		c.Timeout = 30 * time.Second
		db, err := openMySQL(c)
		if err != nil {
			return loginFailed("IAM login", err, hint)
		}
		defer db.Close()
		if err := db.PingContext(ctx); err != nil {
			return loginFailed("IAM login", err, hint)
		}
		return withLogin(validate.MySQL(ctx, db, o), o.User)
	}
	dsn := "host=127.0.0.1 port=" + run.Port() + " sslmode=disable connect_timeout=30 user=" + dsnQuote(o.User)
	if o.Database != "" {
		dsn += " dbname=" + dsnQuote(o.Database)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pgLoginFailed(err, hint)
	}
	defer closePG(conn)
	if cfg.Engine == config.DSQL {
		return withLogin(validate.DSQL(ctx, conn, o), o.User)
	}
	return withLogin(validate.Postgres(ctx, conn, o), o.User)
}

// withLogin puts the IAM login, which succeeded, first in the report.
func withLogin(r *validate.Report, user string) *validate.Report {
	out := &validate.Report{}
	out.Add(validate.Check{Name: "IAM login", Status: validate.OK, Detail: "logged in as " + user + " with an IAM token through the proxy"})
	out.Checks = append(out.Checks, r.Checks...)
	return out
}

func openMySQL(cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	return db, nil
}

func closePG(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// dsnQuote quotes a libpq keyword/value DSN value when needed.
func dsnQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\=") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
