package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Explain turns a failed login into what the client is told, for the
// errors only a MySQL upstream gives: its server's errors, no TLS, a TLS
// failure tlsca did not explain, a user that is not an IAM user, a broken
// login exchange. It implements proxy.Engine; the core has explained the
// rest (credentials, TLS verification, the network) before.
func (p *Proxy) Explain(ctx context.Context, user string, err error) *failure.Failure {
	up := p.cfg.Upstream
	var se *mywire.ServerError
	if errors.As(err, &se) {
		return p.explainServerError(ctx, user, se)
	}
	var tlsErr *mywire.TLSError
	switch {
	case errors.Is(err, mywire.ErrNoTLS):
		return failure.Wrap(failure.UpstreamTLS, err, fmt.Sprintf("the upstream %s does not offer TLS; IAM tokens are only sent over TLS", up.Host),
			"point --endpoint at an RDS or Aurora MySQL endpoint")
	case errors.As(err, &tlsErr):
		return failure.Wrap(failure.UpstreamTLS, err, fmt.Sprintf("TLS with the upstream %s at %s failed: %s", up.Host, up.DialAddr(), tlsErr.Err), "")
	}
	var plugin *mywire.UnsupportedPluginError
	if errors.As(err, &plugin) {
		return &failure.Failure{Reason: failure.UpstreamAuth, Code: failure.Code{Errno: mywire.ErNotSupportedAuth}, Err: err,
			Cause: fmt.Sprintf("user %q is not an IAM user: the upstream asked for the auth plugin %q instead of mysql_clear_password", user, plugin.Plugin),
			Fix:   IAMUserFix(user)}
	}
	var pe *mywire.ServerProtocolError
	if errors.As(err, &pe) {
		return failure.Wrap(failure.Upstream, err, fmt.Sprintf("lost the upstream %s at %s during the login (%s)", up.Host, up.DialAddr(), pe.Step),
			"check that it is a MySQL endpoint and that the DB is healthy; if this client or the AWS credentials took over 10 s, the server's connect_timeout ended the wait")
	}
	return nil
}

// IAMUserFix makes an existing user an IAM user. doctor says the same.
func IAMUserFix(user string) string {
	return "ALTER USER " + sqlquote.MySQLAccount(user, "%") + " IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'"
}

// explainServerError explains an ERR the upstream sent during the login.
// It is the one place a MySQL server's words are read: error numbers,
// and the plugin name in "Plugin ... is not loaded".
func (p *Proxy) explainServerError(ctx context.Context, user string, e *mywire.ServerError) *failure.Failure {
	switch e.Code {
	case mywire.ErAccessDenied:
		return &failure.Failure{Reason: failure.UpstreamAuth, Code: failure.Code{Errno: mywire.ErAccessDenied}, Err: e,
			Cause: fmt.Sprintf("upstream rejected the IAM token for user %q (%s)", user, e.Message),
			Fix:   TokenRejectedFix(user, proxy.Signer(ctx, p.cfg.Tokens, p.cfg.SigningRegion()), p.cfg.SigningRegion())}
	case mywire.ErServerShutdown, mywire.ErUpstreamConnect:
		// "Server shutdown in progress", or a server that cannot be
		// reached behind the endpoint: the DB is restarting or failing
		// over.
		return &failure.Failure{Reason: failure.Upstream, Code: failure.Code{Errno: e.Code}, Err: e,
			Cause: fmt.Sprintf("the upstream %s is not accepting connections now (%s)", p.cfg.Upstream.Host, e.Message),
			Fix:   proxy.NotAcceptingFix}
	case mywire.ErPluginNotLoaded:
		if strings.Contains(e.Message, "AWSAuthenticationPlugin") {
			return &failure.Failure{Reason: failure.UpstreamAuth, Code: failure.Code{Errno: mywire.ErPluginNotLoaded}, Err: e,
				Cause: fmt.Sprintf("IAM database authentication is not enabled on %s (%s)", p.cfg.Upstream.Host, e.Message),
				Fix:   "aws rds modify-db-instance --db-instance-identifier ID --enable-iam-database-authentication --apply-immediately (for Aurora: modify-db-cluster)"}
		}
	}
	return &failure.Failure{Reason: failure.Upstream, Code: failure.Code{Errno: e.Code}, Err: e, Cause: "upstream refused the login: " + e.Message, Fix: proxy.UnexplainedFix}
}

// TokenRejectedFix is what to check when RDS rejects a token for user,
// signed by signer (its ARN and account, when known) in region. doctor
// says the same.
func TokenRejectedFix(user string, signer authtoken.Identity, region string) string {
	who := signer.ARN
	if who == "" {
		who = "the proxy's AWS identity"
	}
	return fmt.Sprintf("check that the user was created IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', that %s may rds-db:connect on %s, that IAM authentication is enabled on the DB, that %s is the DB's region, and that this machine's clock is right",
		who, authtoken.DBUserARN(region, signer.Account, "*", user), region)
}
