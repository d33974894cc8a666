package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// DSQL's numbers, as its quotas page gives them.
const (
	dsqlService           = "dsql"
	dsqlMaxTokenExpires   = 604800 // seconds: a week
	DefaultDSQLRate       = 100    // new connections a second per cluster
	DefaultDSQLBurst      = 1000
	DefaultDSQLSessionAge = time.Hour
)

// DSQLOptions configure an emulated Aurora DSQL cluster in front of a real
// PostgreSQL server.
type DSQLOptions struct {
	// ClusterID is the cluster's id: the endpoint is
	// ID.dsql.REGION.on.aws:5432. Default "emulateddsqlcluster0000001".
	ClusterID string
	// Listen is the address to listen on; default 127.0.0.1:0.
	Listen string
	// Backend is the host:port of the real PostgreSQL server, which the
	// front logs in to as the client's role with BackendPassword (empty:
	// the backend trusts the front's address).
	Backend         string
	BackendPassword string
	// MaxSessionAge ends every session this long after its login, with a
	// bare close (DSQL's own words at the cut are not documented); default
	// an hour, as DSQL.
	MaxSessionAge time.Duration
	// Rate and Burst shape new connections as DSQL does (a token bucket
	// per cluster: Rate a second, Burst at most); over it a client is
	// answered 53400. Default 100 and 1,000.
	Rate  float64
	Burst int
	// Certificate, when set, is served instead of one issued by the CA.
	Certificate *tls.Certificate
	Logger      *slog.Logger
}

// DSQL is a running emulated Aurora DSQL cluster. It models what a
// login meets: TLS with SNI required; the connection rate (53400); a
// token signed for service dsql and this host (no port), action
// DbConnectAdmin for the role admin and DbConnect for any other, allowed
// by the signer's policy on the cluster's ARN; for roles other than admin,
// a mapping of the signer's principal to the role (AWS IAM GRANT, see
// GrantIAM); then a session on the real server as that role, cut at
// MaxSessionAge. Every refusal's real reason is logged; the client gets
// DSQL's words.
type DSQL struct {
	*instance
	clusterID string
	backend   *pgconn.Config
	opts      DSQLOptions

	mu       sync.Mutex
	grants   map[string][]string // role -> principal ARNs (AWS IAM GRANT)
	maxAge   time.Duration
	rate     float64
	burst    float64
	tokens   float64
	refilled time.Time
	refused  int // connections answered 53400
}

// StartDSQL starts an emulated Aurora DSQL cluster endpoint.
func (a *AWS) StartDSQL(ca *CA, o DSQLOptions) (*DSQL, error) {
	if o.Backend == "" {
		return nil, errors.New("emulator: DSQLOptions.Backend is required")
	}
	if o.ClusterID == "" {
		o.ClusterID = "emulateddsqlcluster0000001"
	}
	backend, err := backendConfig(o.Backend)
	if err != nil {
		return nil, err
	}
	inst, err := a.newInstance(ca, instanceOptions{endpoint: o.ClusterID + ".dsql." + a.Region() + ".on.aws", port: 5432,
		resourceID: o.ClusterID, listen: o.Listen, cert: o.Certificate, log: o.Logger, kind: "dsql"})
	if err != nil {
		return nil, err
	}
	// A DSQL cluster is not an RDS database: the RDS API does not list it.
	a.unregisterDB(inst.db)
	d := &DSQL{instance: inst, clusterID: o.ClusterID, backend: backend, opts: o, grants: map[string][]string{}}
	d.SetMaxSessionAge(o.MaxSessionAge)
	d.SetRate(o.Rate, o.Burst)
	d.serve(d.serveConn)
	return d, nil
}

// ClusterID is the cluster's id.
func (d *DSQL) ClusterID() string { return d.clusterID }

// ClusterARN is arn:aws:dsql:REGION:ACCOUNT:cluster/ID, what policies
// name. The emulator writes the format itself rather than use the
// proxy's, so that it checks the proxy instead of agreeing with it.
func (d *DSQL) ClusterARN() string {
	return fmt.Sprintf("arn:aws:dsql:%s:%s:cluster/%s", d.aws.Region(), d.aws.AccountID(), d.clusterID)
}

// ConnectPolicy allows dsql:DbConnectAdmin (admin) or dsql:DbConnect on
// this cluster.
func (d *DSQL) ConnectPolicy(admin bool) Policy {
	return Policy{Statements: []Statement{{Effect: "Allow", Action: []string{dsqlAction(admin)}, Resource: []string{d.ClusterARN()}}}}
}

// dsqlAction is the IAM action a login as admin or another role needs.
func dsqlAction(admin bool) string {
	if admin {
		return "dsql:DbConnectAdmin"
	}
	return "dsql:DbConnect"
}

// GrantIAM maps principalARN (an IAM role or user; a role's sessions log
// in as the role) to role, as `AWS IAM GRANT role TO 'arn'` does.
func (d *DSQL) GrantIAM(role, principalARN string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.grants[role], principalARN) {
		d.grants[role] = append(d.grants[role], principalARN)
	}
}

// RevokeIAM undoes GrantIAM (AWS IAM REVOKE).
func (d *DSQL) RevokeIAM(role, principalARN string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.grants[role] = slices.DeleteFunc(d.grants[role], func(s string) bool { return s == principalARN })
}

// SetRate changes the connection rate and burst (<= 0: DSQL's) and fills
// the bucket.
func (d *DSQL) SetRate(rate float64, burst int) {
	if rate <= 0 {
		rate = DefaultDSQLRate
	}
	if burst <= 0 {
		burst = DefaultDSQLBurst
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rate, d.burst, d.tokens, d.refilled = rate, float64(burst), float64(burst), time.Now()
}

// SetMaxSessionAge changes the session age cut for sessions logging in
// from now on (<= 0: DSQL's hour).
func (d *DSQL) SetMaxSessionAge(age time.Duration) {
	if age <= 0 {
		age = DefaultDSQLSessionAge
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maxAge = age
}

// RateRefusals is how many connections were answered 53400.
func (d *DSQL) RateRefusals() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused
}

// admit takes a connection from the bucket; false means over the rate.
// It runs on the wall clock, not the emulator's (which tests may stop).
func (d *DSQL) admit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.tokens = min(d.burst, d.tokens+now.Sub(d.refilled).Seconds()*d.rate)
	d.refilled = now
	if d.tokens < 1 {
		d.refused++
		return false
	}
	d.tokens--
	return true
}

// mapped reports whether principalARN may log in as role.
func (d *DSQL) mapped(role, principalARN string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Contains(d.grants[role], principalARN)
}

// serveConn serves one client.
func (d *DSQL) serveConn(ctx context.Context, c net.Conn) {
	hctx, cancel := context.WithTimeout(ctx, pgHandshakeLimit)
	defer cancel()
	log := d.log.With("client", c.RemoteAddr().String())

	hello := readPgHello(c, d.tls, log)
	if hello == nil {
		return
	}
	conn := hello.Conn
	if tc, ok := conn.(*tls.Conn); !ok || tc.ConnectionState().ServerName == "" {
		log.Warn("connection refused: no SNI")
		pgwire.WriteServerError(conn, "FATAL", "08004", "unable to accept connection, sni was not received")
		return
	}
	if !d.admit() {
		log.Warn("connection refused: over the connection rate")
		pgwire.WriteServerError(conn, "FATAL", "53400", "Unable to accept connection, rate exceeded.")
		return
	}
	if hello.Cancel != nil {
		conn.Close()
		if err := pgwire.SendCancel(hctx, d.opts.Backend, nil, *hello.Cancel); err != nil {
			log.Warn("cancel not delivered", "err", err)
		}
		return
	}
	st := hello.Startup
	role := st.User()
	log = log.With("user", role)
	if err := pgwire.WriteNegotiation(conn, st); err != nil {
		return
	}
	token, err := pgwire.RequestPassword(conn)
	if err != nil {
		log.Info("no password", "err", err)
		return
	}
	caller, why := d.verify(token, role)
	if why != "" {
		log.Warn("IAM token rejected", "reason", why)
		pgwire.WriteServerError(conn, "FATAL", "28000", fmt.Sprintf("IAM authentication failed for user %q", role))
		return
	}
	log = log.With("caller", caller.ARN)

	login := d.backend.Copy()
	login.User, login.Database, login.Password, login.RuntimeParams = role, st.Database(), d.opts.BackendPassword, st.RuntimeParams()
	hc, err := pgwire.Connect(hctx, login, nil)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			log.Warn("backend refused the login", "err", err)
			pgwire.WriteServerError(conn, pgErr.Severity, pgErr.Code, pgErr.Message)
		} else {
			log.Error("backend unreachable", "err", err)
			pgwire.WriteServerError(conn, "FATAL", "08006", "the database system is not reachable")
		}
		return
	}
	defer hc.Conn.Close()
	greeting := &pgwire.Greeting{Params: hc.ParameterStatuses, TxStatus: hc.TxStatus,
		Key: pgwire.CancelKey{PID: hc.PID, Secret: hc.SecretKey}}
	if err := pgwire.WriteGreeting(conn, greeting); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	d.mu.Lock()
	age := d.maxAge
	d.mu.Unlock()
	log.Info("IAM login accepted", "max_session_age", age)
	sctx, stop := context.WithTimeout(ctx, age)
	defer stop()
	relay(sctx, conn, hc.Conn, relayLinger)
	if errors.Is(context.Cause(sctx), context.DeadlineExceeded) && ctx.Err() == nil {
		log.Info("session ended: it reached the session age limit", "max_session_age", age)
	}
}

// VerifyToken checks a token presented for role as the cluster does (see
// DSQL), without a connection; a refusal is a *TokenError with the real
// reason.
func (d *DSQL) VerifyToken(token, role string) (*Caller, error) {
	c, why := d.verify(token, role)
	if why != "" {
		return nil, &TokenError{Reason: why}
	}
	return c, nil
}

// verify checks a token presented for role as DSQL does, and returns the
// caller or the reason it is refused.
func (d *DSQL) verify(token, role string) (*Caller, string) {
	admin := role == "admin"
	var tc tokenCheck
	v, why := d.aws.verifyPresigned(token, presignedToken{name: "DSQL", service: dsqlService, params: []string{"Action"},
		maxExpires: dsqlMaxTokenExpires, region: d.aws.Region(),
		request: func(host string, _ int, q url.Values) string {
			if !strings.EqualFold(host, d.endpoint) {
				return fmt.Sprintf("token is for host %q, this cluster is %q (tokens must name the cluster endpoint itself)", host, d.endpoint)
			}
			want := strings.TrimPrefix(dsqlAction(admin), "dsql:")
			if got := q.Get("Action"); got != want {
				return fmt.Sprintf("Action is %q, the role %q logs in with %s", got, role, want)
			}
			return ""
		}}, &tc)
	if why != "" {
		return nil, why
	}
	caller, why := d.aws.authorizeToken(v, dsqlAction(admin), d.ClusterARN())
	if why != "" {
		return nil, why
	}
	if !admin && !d.mapped(role, v.cred.who.principalARN) {
		return nil, fmt.Sprintf("role %q is not mapped to %s (AWS IAM GRANT %s TO '%s')", role, v.cred.who.principalARN, role, v.cred.who.principalARN)
	}
	return caller, ""
}
