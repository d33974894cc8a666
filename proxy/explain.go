package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Target describes the upstream a login failed against, for messages.
type Target struct {
	Host     string // the endpoint name: tokens and TLS are for it
	DialAddr string // what was dialed
	Tunnel   bool   // DialAddr was set by --dial-address
	User     string
	TLS      tlsca.Upstream // the bundle, mode and names the login used
}

// Explanation is a login failure in words a person can act on.
type Explanation struct {
	Reason  string // Reason*
	Message string // cause and fix; never a secret
}

// ExplainLoginFailure explains the engine-independent ways a login fails:
// no credentials, TLS verification (tlsca's texts), DNS, an unreachable or
// slow upstream.
// ok is false for anything else (the engine's own server errors).
func ExplainLoginFailure(err error, t Target) (Explanation, bool) {
	var credErr *authtoken.CredentialsError
	if errors.As(err, &credErr) {
		msg := fmt.Sprintf("cannot sign an IAM token for user %q: %s", t.User, credErr.Error())
		if !strings.Contains(msg, "Fix:") {
			msg += ". Fix: give the proxy AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance profile, IRSA or Pod Identity)"
		}
		return Explanation{ReasonCredentials, msg}, true
	}
	if msg, ok := t.TLS.Explain(err, time.Now()); ok {
		return Explanation{ReasonUpstreamTLS, msg}, true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if t.Tunnel {
			return Explanation{ReasonUpstreamDial, fmt.Sprintf("cannot resolve %s from the dial address %s: %s. Fix: check --dial-address (the tunnel's local address)", dnsErr.Name, t.DialAddr, dnsErr.Err)}, true
		}
		return Explanation{ReasonUpstreamDial, fmt.Sprintf("cannot resolve %s: %s. Fix: check the endpoint name and this machine's DNS (inside the VPC); to connect through a tunnel set --dial-address", dnsErr.Name, dnsErr.Err)}, true
	}
	// A reset is checked before the dial: a connect that fails with
	// ECONNRESET reached the upstream, which accepted and reset at once
	// (before the dialer saw the connect complete), as any later reset.
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return Explanation{ReasonUpstream, fmt.Sprintf("the upstream %s at %s reset the connection during the login. Fix: check that the DB is up (a reboot or failover resets connections) and that nothing on the way (a firewall, NAT, the tunnel) cuts connections; then connect again", t.Host, t.DialAddr)}, true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return Explanation{ReasonUpstreamDial, fmt.Sprintf("cannot reach the upstream %s at %s: %s. Fix: check that the DB is running and reachable from here (security groups, VPC, tunnel)", t.Host, t.DialAddr, opErr.Err)}, true
	}
	if errors.Is(err, context.DeadlineExceeded) || IsTimeout(err) {
		return Explanation{ReasonTimeout, fmt.Sprintf("the upstream %s at %s did not complete the login in time. Fix: check that the DB is reachable from here (security groups, VPC, tunnel) and not overloaded", t.Host, t.DialAddr)}, true
	}
	return Explanation{}, false
}
