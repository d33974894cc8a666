package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Target describes an engine's upstream: what tokens are signed for, and
// what messages name.
type Target struct {
	Host     string         // the endpoint name: tokens and TLS are for it
	Port     int            // the endpoint's port: tokens are for it
	DialAddr string         // what was dialed
	Tunnel   bool           // DialAddr was set by --dial-address
	User     string         // the upstream user (set per login)
	TLS      tlsca.Upstream // the bundle, mode and names the login used
}

// ExplainLoginFailure explains the engine-independent ways a login fails:
// no credentials, TLS verification (tlsca's explanations), DNS, an
// unreachable or slow upstream. It returns nil for anything else (the
// engine's own server errors).
func ExplainLoginFailure(err error, t Target) *failure.Failure {
	if credErr, ok := errors.AsType[*authtoken.CredentialsError](err); ok {
		fix := credErr.Fix()
		if fix == "" {
			fix = "give the proxy AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance profile, IRSA or Pod Identity)"
		}
		return failure.Wrap(failure.Credentials, err, fmt.Sprintf("cannot sign an IAM token for user %q: %s", t.User, credErr.Cause()), fix)
	}
	if f, ok := t.TLS.Explain(err, time.Now()); ok {
		return f
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if t.Tunnel {
			return failure.Wrap(failure.UpstreamDial, err, fmt.Sprintf("cannot resolve %s from the dial address %s: %s", dnsErr.Name, t.DialAddr, dnsErr.Err),
				"check --dial-address (the tunnel's local address)")
		}
		return failure.Wrap(failure.UpstreamDial, err, fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err),
			"check the endpoint name and this machine's DNS (inside the VPC); to connect through a tunnel set --dial-address")
	}
	// A reset is checked before the dial: a connect that fails with
	// ECONNRESET reached the upstream, which accepted and reset at once
	// (before the dialer saw the connect complete), as any later reset.
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return failure.Wrap(failure.Upstream, err, fmt.Sprintf("the upstream %s at %s reset the connection during the login", t.Host, t.DialAddr),
			"check that the DB is up (a reboot or failover resets connections) and that nothing on the way (a firewall, NAT, the tunnel) cuts connections; then connect again")
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return failure.Wrap(failure.UpstreamDial, err, fmt.Sprintf("cannot reach the upstream %s at %s: %s", t.Host, t.DialAddr, opErr.Err),
			"check that the DB is running and reachable from here (security groups, VPC, tunnel)")
	}
	if errors.Is(err, context.DeadlineExceeded) || IsTimeout(err) {
		return failure.Wrap(failure.Timeout, err, fmt.Sprintf("the upstream %s at %s did not complete the login in time", t.Host, t.DialAddr),
			"check that the DB is reachable from here (security groups, VPC, tunnel) and not overloaded")
	}
	return nil
}

// Signer is whose credentials sign tokens, for a message about a rejected
// token: its ARN and account, or nothing when it cannot be said within
// three seconds.
func Signer(ctx context.Context, tokens TokenSource, region string) authtoken.Identity {
	ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	id, err := tokens.Identity(ictx, region)
	if err != nil {
		return authtoken.Identity{}
	}
	return id
}

// UnexplainedFix is the fix for a login failure no explainer knows: where
// to look next, rather than nothing.
const UnexplainedFix = "see the proxy's log for the whole error; rds-iam-proxy doctor (with the same flags) checks this upstream step by step"

// NotAcceptingFix is the fix for a server that says it is starting,
// shutting down or cannot be reached behind its endpoint.
const NotAcceptingFix = "connect again in a few seconds: it is starting, shutting down, restarting or failing over; if it lasts, check the DB's status and events"
