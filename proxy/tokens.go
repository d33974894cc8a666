package proxy

import (
	"context"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// TokenSource builds IAM tokens and says whose credentials sign them.
// *authtoken.Source implements it; every engine's front uses it.
type TokenSource interface {
	Token(ctx context.Context, host string, port int, region, user string) (string, error)
	Identity(ctx context.Context, region string) (authtoken.Identity, error)
}

// Reasons label failures before the relay in logs (and metrics): short,
// fixed words shared by every engine.
const (
	ReasonProtocol     = "protocol"
	ReasonCredentials  = "credentials"
	ReasonLimit        = "limit"
	ReasonShutdown     = "shutdown"
	ReasonUpstreamAuth = "upstream_auth"
	ReasonUpstreamTLS  = "upstream_tls"
	ReasonUpstreamDial = "upstream_unreachable"
	ReasonUpstream     = "upstream_error"
	ReasonTimeout      = "timeout"
	ReasonClientGone   = "client_gone" // the client left before its login finished
	// ReasonHandshakeLimit: refused at accept, the cap on connections
	// logging in (--max-handshakes) being full of busy logins.
	ReasonHandshakeLimit = "handshake_limit"
	// ReasonEvicted: closed before its first packet to make room for a
	// newcomer (a full handshake cap, or MySQL's cap on unanswered
	// greetings).
	ReasonEvicted = "evicted"
	// ReasonCancelRequest is not a failure: a Postgres cancel request's
	// connection, which ends once the cancel is forwarded.
	ReasonCancelRequest = "cancel_request"
)
