package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Explain turns a failed login into what the client is told, for the
// errors only a Postgres upstream gives: its server's errors, a message
// over the size bound, a close or a refusal of TLS during the login. It
// implements proxy.Engine; the core has explained the rest (credentials,
// TLS verification, the network) before.
func (p *Proxy) Explain(ctx context.Context, user string, err error) *failure.Failure {
	if x := p.cfg.Variant.Explain; x != nil {
		if f := x(ctx, user, err); f != nil {
			return f
		}
	}
	up := p.cfg.Upstream
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return p.explainServerError(ctx, user, pgErr)
	}
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooBig) {
		return failure.Wrap(failure.Upstream, err,
			fmt.Sprintf("the upstream %s at %s announced a %d-byte message during the login, more than the %d bytes a login message may have; it does not behave like PostgreSQL",
				up.Host, up.DialAddr(), tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen),
			"check that --endpoint and --dial-address reach the database itself and nothing in between rewrites the connection")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return failure.Wrap(failure.Upstream, err, fmt.Sprintf("the upstream %s at %s closed the connection during the login", up.Host, up.DialAddr()),
			"check that the DB is up and accepts connections (a restart, max_connections); check that --endpoint and --dial-address reach a PostgreSQL server; then connect again")
	}
	if strings.Contains(err.Error(), "server refused TLS") { // pgconn's words for an SSLRequest answered N
		return failure.Wrap(failure.UpstreamTLS, err, fmt.Sprintf("the upstream %s refused TLS; IAM tokens are only sent over TLS", up.Host),
			"point --endpoint at an RDS or Aurora endpoint")
	}
	return nil
}

// tlsSettings are the upstream's TLS settings, filled in from the older
// fields when a caller set only those.
func (p *Proxy) tlsSettings() tlsca.Upstream {
	ts, conf := p.cfg.Upstream.CurrentTLS()
	if ts.Host == "" {
		ts.Host = p.cfg.Upstream.Host
	}
	if ts.ServerName == "" && conf != nil && conf.ServerName != ts.Host {
		ts.ServerName = conf.ServerName
	}
	return ts
}

// Refusal is what a Postgres server's login error means for an IAM login.
type Refusal int

const (
	OtherRefusal  Refusal = iota
	TokenRejected         // RDS checked the token and rejected it
	NotIAMUser            // the token was checked as a password: the user is not in rds_iam
	NotAccepting          // the server is starting, shutting down or unreachable behind the endpoint
)

// Classify sorts a server's login error. It is the one place a Postgres
// server's words are matched (doctor uses it too): RDS says "PAM
// authentication failed" for a rejected token, and a user outside rds_iam
// gets "password authentication failed".
func Classify(e *pgconn.PgError) Refusal {
	switch {
	case strings.Contains(e.Message, "PAM authentication failed"):
		return TokenRejected
	case e.Code == "57P03" || e.Code == "57P01" || e.Code == "57P02" || e.Code == "08006":
		// cannot_connect_now ("starting up", "shutting down"), a shutdown
		// during the login, or a server that cannot be reached behind
		// the endpoint: the DB is restarting or failing over.
		return NotAccepting
	case strings.Contains(e.Message, "password authentication failed"):
		return NotIAMUser
	}
	return OtherRefusal
}

// explainServerError explains an error the upstream server sent.
func (p *Proxy) explainServerError(ctx context.Context, user string, e *pgconn.PgError) *failure.Failure {
	switch Classify(e) {
	case TokenRejected:
		return &failure.Failure{Reason: failure.UpstreamAuth, Err: e,
			Cause: fmt.Sprintf("upstream rejected the IAM token for user %q (PAM authentication failed)", user),
			Fix:   TokenRejectedFix(user, proxy.Signer(ctx, p.cfg.Tokens, p.cfg.SigningRegion()), p.cfg.SigningRegion())}
	case NotAccepting:
		return &failure.Failure{Reason: failure.Upstream, Code: failure.Code{SQLState: e.Code}, Err: e,
			Cause: fmt.Sprintf("the upstream %s is not accepting connections now (%s)", p.cfg.Upstream.Host, e.Message),
			Fix:   proxy.NotAcceptingFix}
	case NotIAMUser:
		return &failure.Failure{Reason: failure.UpstreamAuth, Err: e,
			Cause: fmt.Sprintf("upstream did not accept an IAM token for user %q (%s): the user is not set up for IAM authentication", user, e.Message),
			Fix:   GrantFix(user)}
	}
	cause := "upstream refused the login: " + e.Message
	if e.Detail != "" {
		cause += " (" + e.Detail + ")"
	}
	return &failure.Failure{Reason: failure.Upstream, Code: failure.Code{SQLState: e.Code}, Err: e, Cause: cause, Fix: e.Hint}
}

// TokenRejectedFix is what to check when RDS rejects a token for user,
// signed by signer (its ARN and account, when known) in region. doctor
// says the same.
func TokenRejectedFix(user string, signer authtoken.Identity, region string) string {
	who := signer.ARN
	if who == "" {
		who = "the proxy's AWS identity"
	}
	return fmt.Sprintf("check that %s is a member of rds_iam, that %s may rds-db:connect on %s, that IAM authentication is enabled on the DB, that %s is the DB's region, and that this machine's clock is right",
		user, who, authtoken.DBUserARN(region, signer.Account, "*", user), region)
}

// GrantFix makes user an IAM user (as the master user). doctor says the
// same.
func GrantFix(user string) string { return "GRANT rds_iam TO " + sqlquote.PGRole(user) }
