package tlsca

import (
	"context"
	"errors"
	"fmt"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"net"
	"net/netip"
	"syscall"
)

// PlaintextRefusedError is a plaintext connection (--tls-mode disable)
// refused because what it would reach is not a loopback address.
// [Upstream.Check] refuses names and addresses that are not loopback at
// start; this is the check at connect time, on the address actually
// dialed, which a name cannot get around: "localhost" can resolve
// elsewhere through /etc/hosts or DNS.
type PlaintextRefusedError struct {
	// Dialed is the address the connection would have gone to (an IP and
	// port, or what the tunnel reported).
	Dialed string
	// Name is what was asked for, when it differs from Dialed (a name that
	// resolved to Dialed).
	Name string
}

// Error is the cause and the fix in one sentence.
func (e *PlaintextRefusedError) Error() string { return failure.Join(e.Cause(), e.Fix()) }

// Cause says what was refused and why.
func (e *PlaintextRefusedError) Cause() string {
	what := e.Dialed
	if e.Name != "" && e.Name != e.Dialed {
		what = fmt.Sprintf("%s (%s resolved to it)", e.Dialed, e.Name)
	}
	return fmt.Sprintf("--tls-mode disable: refused to connect to %s: it is not a loopback address, and without TLS the IAM token would cross the network in plaintext", what)
}

// Fix says how to connect instead.
func (e *PlaintextRefusedError) Fix() string {
	return "dial 127.0.0.1 or ::1 (a local server, or the local end of a tunnel) with --dial-address, or use TLS (--tls-mode verify-full)"
}

// isLoopbackAddr reports whether addr (host:port) is a literal loopback IP.
func isLoopbackAddr(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// PlaintextDialer returns the dial function for a plaintext upstream: it
// connects to addr (host:port; a name is resolved with resolver, nil
// meaning the default) and refuses every resolved address that is not
// loopback before connecting to it, so no byte, not even the TCP
// handshake, goes to another machine. When a name resolves to several
// addresses, a loopback one among them is still used.
func PlaintextDialer(resolver *net.Resolver) func(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{
		Resolver: resolver,
		// Called with each resolved address after the socket is made and
		// before connect(2).
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			if !isLoopbackAddr(address) {
				return &PlaintextRefusedError{Dialed: address}
			}
			return nil
		},
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			var refused *PlaintextRefusedError
			if errors.As(err, &refused) {
				refused.Name = addr
			}
			return nil, err
		}
		return c, nil
	}
}

// CheckPlaintextDial wraps a dial function that is not a plain TCP dial
// (an in-process tunnel, a test's hook) for a plaintext upstream: the
// connection it returns must have a loopback TCP peer, else it is closed
// before anything is written to it.
func CheckPlaintextDial(dial func(ctx context.Context, addr string) (net.Conn, error)) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		remote := c.RemoteAddr()
		peer := remote.String()
		if _, isTCP := remote.(*net.TCPAddr); !isTCP || !isLoopbackAddr(peer) {
			c.Close()
			if !isTCP {
				peer = remote.Network() + " " + peer
			}
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: remote, Err: &PlaintextRefusedError{Dialed: peer, Name: addr}}
		}
		return c, nil
	}
}
