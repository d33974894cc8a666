package dsql

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// Database is the one database of a DSQL cluster: every login goes to it.
const Database = "postgres"

// DefaultSessionLimit is how long DSQL lets a session live.
const DefaultSessionLimit = time.Hour

// Signer builds DSQL tokens and says whose credentials sign them;
// *authtoken.Source implements it.
type Signer interface {
	DSQLToken(ctx context.Context, host, region string, admin bool) (string, error)
	Identity(ctx context.Context, region string) (authtoken.Identity, error)
}

// Config configures a DSQL proxy for one cluster. Settings.Tokens is
// ignored: tokens come from Signer.
type Config struct {
	Upstream postgres.Upstream // Host is ID.dsql.REGION.on.aws; Trust the system's roots
	proxy.Settings
	Signer Signer
	// Admin says whether a login as user signs for DbConnectAdmin; nil:
	// only the role admin does (dsql_action auto).
	Admin func(user string) bool
	// SessionLimit is DSQL's session lifetime (0: an hour).
	SessionLimit time.Duration
}

// LoginRate and LoginBurst shape new logins to one cluster (with the
// proxy's login-rate guard) under DSQL's 100 new connections a second.
const (
	LoginRate  = 90
	LoginBurst = 100
)

// New returns the Postgres engine configured for a DSQL cluster.
func New(cfg Config) (*postgres.Proxy, error) {
	if cfg.Signer == nil {
		return nil, errors.New("dsql proxy: no token signer")
	}
	if cfg.Admin == nil {
		cfg.Admin = func(user string) bool { return user == "admin" }
	}
	if cfg.SessionLimit <= 0 {
		cfg.SessionLimit = DefaultSessionLimit
	}
	t := &tokens{signer: cfg.Signer, admin: cfg.Admin}
	cfg.Tokens = t
	c := cluster{host: cfg.Upstream.Host, region: cfg.Region, admin: cfg.Admin, signer: t}
	return postgres.New(postgres.Config{Upstream: cfg.Upstream, Settings: cfg.Settings, Variant: postgres.Variant{
		Name: "dsql", Database: Database, Explain: c.explain, Retry: t.retry,
		MaxSessionAge: cfg.SessionLimit, SessionLimit: SessionLimitFailure(cfg.SessionLimit),
	}})
}

// tokens signs DSQL tokens where the core asks for a token
// (proxy.TokenSource): the action by the user, the cluster's bare host
// (DSQL tokens name no port). The proxy's login-rate guard paces the
// logins before a token is asked for (launch sets the cluster's key to
// LoginRate and LoginBurst).
type tokens struct {
	signer Signer
	admin  func(string) bool
}

func (t *tokens) Token(ctx context.Context, host string, _ int, region, user string) (string, error) {
	return t.signer.DSQLToken(ctx, host, region, t.admin(user))
}

func (t *tokens) Identity(ctx context.Context, region string) (authtoken.Identity, error) {
	return t.signer.Identity(ctx, region)
}

// retryWait bounds the random wait before a login refused for DSQL's
// connection rate (other clients of the cluster used it up) is tried
// again: the bucket
// refills 100 a second, so within a second there is room again unless a
// storm goes on.
const retryWait = time.Second

// retry gives a login refused for DSQL's connection rate (53400) one more
// try after a random wait under a second, spreading a storm's retries out.
func (t *tokens) retry(ctx context.Context, err error) bool {
	if !isRate(err) {
		return false
	}
	timer := time.NewTimer(rand.N(retryWait))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// isRate reports whether err is DSQL's connection-rate refusal.
func isRate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == CodeRateExceeded
}

// SessionLimitFailure is what a client is told when DSQL ends its session
// at the session lifetime: FATAL 57P01 (admin_shutdown, what a server
// says when it ends a backend) with the pool settings that avoid it.
func SessionLimitFailure(limit time.Duration) *failure.Failure {
	return &failure.Failure{Reason: failure.Upstream, Code: failure.Code{SQLState: pgwire.CodeAdminShutdown},
		Cause: fmt.Sprintf("Aurora DSQL ended this session at its session lifetime limit (%s): DSQL closes every connection after an hour", limit),
		Fix:   "keep your pool's max connection lifetime under an hour: pgxpool MaxConnLifetime, HikariCP maxLifetime, SQLAlchemy pool_recycle; then connect again"}
}
