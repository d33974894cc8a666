package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// explain turns a failed login into what the client is told: the cause in
// words a person can act on, and the fix. The log gets the same text plus
// the underlying error; neither ever holds the token.
func (p *Proxy) explain(ctx context.Context, user string, err error) *Error {
	up := p.cfg.Upstream
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return p.explainServerError(ctx, user, pgErr)
	}
	t := proxy.Target{Host: up.Host, DialAddr: up.DialAddr(), Tunnel: up.DialAddress != "", User: user, TLS: p.tlsSettings()}
	if x, ok := proxy.ExplainLoginFailure(err, t); ok {
		code := pgwire.CodeConnectionFailure
		if x.Reason == proxy.ReasonCredentials {
			code = pgwire.CodeInvalidAuthorization
		}
		return &Error{Code: code, Reason: x.Reason, Err: err, Message: x.Message}
	}
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &tooBig) {
		return &Error{Code: pgwire.CodeConnectionFailure, Reason: proxy.ReasonUpstream, Err: err,
			Message: fmt.Sprintf("the upstream %s at %s announced a %d-byte message during the login, more than the %d bytes a login message may have; it does not behave like PostgreSQL. Fix: check that --endpoint and --dial-address reach the database itself and nothing in between rewrites the connection",
				up.Host, up.DialAddr(), tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen)}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: pgwire.CodeConnectionFailure, Reason: proxy.ReasonUpstream, Err: err,
			Message: fmt.Sprintf("the upstream %s at %s closed the connection during the login. Fix: check that the DB is up and accepts connections (a restart, max_connections); check that --endpoint and --dial-address reach a PostgreSQL server; then connect again", up.Host, up.DialAddr())}
	}
	if strings.Contains(err.Error(), "server refused TLS") {
		return &Error{Code: pgwire.CodeConnectionFailure, Reason: proxy.ReasonUpstreamTLS, Err: err,
			Message: fmt.Sprintf("the upstream %s refused TLS; IAM tokens are only sent over TLS. Fix: point --endpoint at an RDS or Aurora endpoint", up.Host)}
	}
	return &Error{Code: pgwire.CodeConnectionFailure, Reason: proxy.ReasonUpstream, Err: err,
		Message: fmt.Sprintf("cannot log in to the upstream %s: %s", up.Host, err)}
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

// explainServerError explains an error the upstream server sent.
func (p *Proxy) explainServerError(ctx context.Context, user string, e *pgconn.PgError) *Error {
	switch {
	case strings.Contains(e.Message, "PAM authentication failed"):
		who := "the proxy's AWS identity"
		account := ""
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if id, err := p.cfg.Tokens.Identity(ictx, p.cfg.Region); err == nil {
			who, account = id.ARN, id.Account
		}
		cancel()
		arn := authtoken.DBUserARN(p.cfg.Region, account, "*", user)
		return &Error{Code: pgwire.CodeInvalidPassword, Reason: proxy.ReasonUpstreamAuth, Err: e,
			Message: fmt.Sprintf("upstream rejected the IAM token for user %q (PAM authentication failed): check that %s is a member of rds_iam, that %s may rds-db:connect on %s, that IAM authentication is enabled on the DB, that %s is the DB's region, and that this machine's clock is right",
				user, user, who, arn, p.cfg.Region)}
	case e.Code == "57P03" || e.Code == "57P01" || e.Code == "57P02" || e.Code == "08006":
		// cannot_connect_now ("starting up", "shutting down"), a shutdown
		// during the login, or a server that cannot be reached behind
		// the endpoint: the DB is restarting or failing over.
		return &Error{Code: e.Code, Reason: proxy.ReasonUpstream, Err: e,
			Message: fmt.Sprintf("the upstream %s is not accepting connections now (%s). Fix: connect again in a few seconds: it is starting, shutting down, restarting or failing over; if it lasts, check the DB's status and events", p.cfg.Upstream.Host, e.Message)}
	case strings.Contains(e.Message, "password authentication failed"):
		return &Error{Code: pgwire.CodeInvalidPassword, Reason: proxy.ReasonUpstreamAuth, Err: e,
			Message: fmt.Sprintf("upstream did not accept an IAM token for user %q (%s): the user is not set up for IAM authentication. Fix: GRANT rds_iam TO %s", user, e.Message, sqlquote.PGRole(user))}
	}
	return &Error{Code: e.Code, Reason: proxy.ReasonUpstream, Err: e, Detail: e.Detail, Hint: e.Hint,
		Message: "upstream refused the login: " + e.Message}
}
