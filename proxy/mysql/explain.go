package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// explain turns a failed login into what the client is told: the cause in
// words a person can act on, and the fix. The log gets the same text plus
// the underlying error; neither ever holds the token.
func (p *Proxy) explain(ctx context.Context, user string, err error) *Error {
	up := p.cfg.Upstream
	tlsUp, _ := up.currentTLS()
	t := proxy.Target{Host: up.Host, DialAddr: up.DialAddr(), Tunnel: up.DialAddress != "", User: user, TLS: tlsUp}
	if x, ok := proxy.ExplainLoginFailure(err, t); ok {
		return &Error{Code: codeFor(x.Reason), Reason: x.Reason, Message: x.Message, Err: err}
	}
	var se *mywire.ServerError
	if errors.As(err, &se) {
		return p.explainServerError(ctx, user, se)
	}
	var tlsErr *mywire.TLSError
	switch {
	case errors.Is(err, mywire.ErrNoTLS):
		return &Error{Code: mywire.ErUpstreamConnect, Reason: proxy.ReasonUpstreamTLS, Err: err,
			Message: fmt.Sprintf("the upstream %s does not offer TLS; IAM tokens are only sent over TLS. Fix: point --endpoint at an RDS or Aurora MySQL endpoint", up.Host)}
	case errors.As(err, &tlsErr):
		return &Error{Code: mywire.ErUpstreamConnect, Reason: proxy.ReasonUpstreamTLS, Err: err,
			Message: fmt.Sprintf("TLS with the upstream %s at %s failed: %s", up.Host, up.DialAddr(), tlsErr.Err)}
	}
	var plugin *mywire.UnsupportedPluginError
	if errors.As(err, &plugin) {
		return &Error{Code: mywire.ErNotSupportedAuth, Reason: proxy.ReasonUpstreamAuth, Err: err,
			Message: fmt.Sprintf("user %q is not an IAM user: the upstream asked for the auth plugin %q instead of mysql_clear_password. Fix: ALTER USER %s IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'", user, plugin.Plugin, sqlquote.MySQLString(user))}
	}
	var pe *mywire.ServerProtocolError
	if errors.As(err, &pe) {
		return &Error{Code: mywire.ErUpstreamConnect, Reason: proxy.ReasonUpstream, Err: err,
			Message: fmt.Sprintf("lost the upstream %s at %s during the login (%s). Fix: check that it is a MySQL endpoint and that the DB is healthy; if this client or the AWS credentials took over 10 s, the server's connect_timeout ended the wait", up.Host, up.DialAddr(), pe.Step)}
	}
	return &Error{Code: mywire.ErUpstreamConnect, Reason: proxy.ReasonUpstream, Err: err,
		Message: fmt.Sprintf("cannot log in to the upstream %s: %s", up.Host, err)}
}

// codeFor maps a shared failure reason to the MySQL error a client expects.
func codeFor(reason string) uint16 {
	if reason == proxy.ReasonCredentials {
		return mywire.ErAccessDenied
	}
	return mywire.ErUpstreamConnect
}

// explainServerError explains an ERR the upstream sent during the login.
func (p *Proxy) explainServerError(ctx context.Context, user string, e *mywire.ServerError) *Error {
	switch e.Code {
	case mywire.ErAccessDenied:
		who := "the proxy's AWS identity"
		account := ""
		ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if id, err := p.cfg.Tokens.Identity(ictx, p.cfg.Region); err == nil {
			who, account = id.ARN, id.Account
		}
		cancel()
		arn := authtoken.DBUserARN(p.cfg.Region, account, "*", user)
		return &Error{Code: mywire.ErAccessDenied, Reason: proxy.ReasonUpstreamAuth, Err: e,
			Message: fmt.Sprintf("upstream rejected the IAM token for user %q (%s). Fix: check that the user was created IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', that %s may rds-db:connect on %s, that IAM authentication is enabled on the DB, that %s is the DB's region, and that this machine's clock is right",
				user, e.Message, who, arn, p.cfg.Region)}
	case mywire.ErServerShutdown, mywire.ErUpstreamConnect:
		// "Server shutdown in progress", or a server that cannot be
		// reached behind the endpoint: the DB is restarting or failing
		// over.
		return &Error{Code: e.Code, Reason: proxy.ReasonUpstream, Err: e,
			Message: fmt.Sprintf("the upstream %s is not accepting connections now (%s). Fix: connect again in a few seconds: it is starting, shutting down, restarting or failing over; if it lasts, check the DB's status and events", p.cfg.Upstream.Host, e.Message)}
	case mywire.ErPluginNotLoaded:
		if strings.Contains(e.Message, "AWSAuthenticationPlugin") {
			return &Error{Code: mywire.ErPluginNotLoaded, Reason: proxy.ReasonUpstreamAuth, Err: e,
				Message: fmt.Sprintf("IAM database authentication is not enabled on %s (%s). Fix: aws rds modify-db-instance --db-instance-identifier ID --enable-iam-database-authentication --apply-immediately (for Aurora: modify-db-cluster)", p.cfg.Upstream.Host, e.Message)}
		}
	}
	return &Error{Code: e.Code, Reason: proxy.ReasonUpstream, Err: e,
		Message: "upstream refused the login: " + e.Message}
}
