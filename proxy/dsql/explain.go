package dsql

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// DSQL's SQLSTATEs for a connection it will not take.
const (
	CodeRateExceeded    = "53400" // over 100 new connections a second per cluster
	CodeTooManyConns    = "53300" // over 10,000 open connections per cluster
	authFailedMessage   = "IAM authentication failed"
	sniMissingMessage   = "sni was not received"
	occConflictSQLState = "40001"
)

// cluster is what DSQL's failures are explained with.
type cluster struct {
	host, region string
	admin        func(string) bool
	signer       proxy.TokenSource
}

// explain turns DSQL's own login failures into what the client is told;
// nil for the rest (the Postgres engine explains those).
func (c cluster) explain(ctx context.Context, user string, err error) *failure.Failure {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return nil
	}
	var signer authtoken.Identity
	if strings.Contains(e.Message, authFailedMessage) {
		signer = proxy.Signer(ctx, c.signer, c.region) // only this message names the signer
	}
	return ExplainLogin(c.host, c.region, user, c.admin(user), signer, err)
}

// ExplainLogin explains a refused login to the DSQL cluster host in
// region as user, whose token was signed for DbConnectAdmin (admin) or
// DbConnect by signer (zero when unknown): DSQL's connection rate and
// connection limit, its "IAM authentication failed" (the action on the
// cluster's ARN, and for a role other than admin its mapping), a missing
// SNI. nil for any other error. The engine and doctor both say this.
func ExplainLogin(host, region, user string, admin bool, signer authtoken.Identity, err error) *failure.Failure {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return nil
	}
	switch {
	case e.Code == CodeRateExceeded:
		return &failure.Failure{Reason: failure.Limit, Code: failure.Code{SQLState: e.Code}, Err: e,
			Cause: fmt.Sprintf("Aurora DSQL refused the connection: over its rate of new connections (100 a second per cluster, bursts to 1,000) on %s (%s)", host, e.Message),
			Fix:   "connect again in a moment; open connections more slowly, or keep them open in a pool instead of connecting per request"}
	case e.Code == CodeTooManyConns:
		return &failure.Failure{Reason: failure.Limit, Code: failure.Code{SQLState: e.Code}, Err: e,
			Cause: fmt.Sprintf("Aurora DSQL refused the connection: the cluster %s has as many open connections as it allows (10,000) (%s)", host, e.Message),
			Fix:   "close idle connections (cap your pools' sizes), or ask AWS for a higher connection quota"}
	case strings.Contains(e.Message, authFailedMessage):
		return authFailed(host, region, user, admin, signer, e)
	case strings.Contains(e.Message, sniMissingMessage):
		return &failure.Failure{Reason: failure.UpstreamTLS, Err: e,
			Cause: fmt.Sprintf("Aurora DSQL received no TLS server name (SNI) from the proxy for %s (%s)", host, e.Message),
			Fix:   "--endpoint must be the cluster's name (ID.dsql.REGION.on.aws), not an IP address; to reach it through a tunnel keep --endpoint and set --dial-address"}
	}
	return nil
}

// authFailed explains DSQL's "IAM authentication failed": the token was
// refused, for one of a few reasons DSQL does not tell apart. They are
// named for this login: the action its token was signed for on the
// cluster's ARN, and for a role other than admin, the mapping of the
// signer to the role.
func authFailed(host, region, user string, admin bool, signer authtoken.Identity, e *pgconn.PgError) *failure.Failure {
	action := authtoken.DSQLAction(admin)
	who := signer.ARN
	if who == "" {
		who = "the proxy's AWS identity"
	}
	id, _, _ := authtoken.DSQLCluster(host)
	arn := authtoken.DSQLClusterARN(region, signer.Account, id)
	cause := fmt.Sprintf("Aurora DSQL rejected the IAM token for role %q (%s): the token was signed for %s on %s by %s", user, e.Message, action, arn, who)
	fix := fmt.Sprintf("allow %s on %s to %s (rds-iam-proxy setup policy --engine dsql prints the policy)", action, arn, who)
	switch {
	case admin && user != "admin":
		fix = fmt.Sprintf("only the role admin logs in with a %s token: drop --dsql-action admin, or log in as admin", action)
	case !admin && user == "admin":
		fix = "the role admin logs in with a dsql:DbConnectAdmin token: drop --dsql-action connect"
	case !admin:
		fix += fmt.Sprintf("; and map the role to that principal, as admin: AWS IAM GRANT %s TO '%s' (mappings are listed in sys.iam_pg_role_mappings)", sqlquote.PGRole(user), MappedPrincipal(signer.ARN))
	}
	fix += fmt.Sprintf("; check that %s is the cluster's region and that this machine's clock is right", region)
	return &failure.Failure{Reason: failure.UpstreamAuth, Code: failure.Code{SQLState: e.Code}, Err: e, Cause: cause, Fix: fix}
}

// MappedPrincipal is the ARN a role is mapped to for the signer: an
// assumed role's session maps by its role
// (arn:aws:sts::A:assumed-role/R/S -> arn:aws:iam::A:role/R); a user by
// itself; an unknown signer by a placeholder.
func MappedPrincipal(arn string) string {
	if arn == "" {
		return "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME"
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
		role, _, _ := strings.Cut(strings.TrimPrefix(parts[5], "assumed-role/"), "/")
		return fmt.Sprintf("%s:%s:iam::%s:role/%s", parts[0], parts[1], parts[4], role)
	}
	return arn
}

// OCCAdvice is what to do about DSQL's optimistic concurrency conflicts
// (SQLSTATE 40001, codes OC000 and OC001): the relay passes server errors
// through unchanged, so this is said in the README, doctor and validate.
const OCCAdvice = "Aurora DSQL uses optimistic concurrency: a transaction that conflicts with another fails at COMMIT with SQLSTATE " + occConflictSQLState + " (OC000, OC001); retry the whole transaction"
