package mysql

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// FrontOptions say how the client side of a login goes.
type FrontOptions struct {
	// TLS, when set, is offered to clients (CLIENT_SSL in the greeting).
	TLS *tls.Config
	// RequireTLS refuses clients that answer without TLS (the emulator's
	// RDS front, like RDS for IAM users).
	RequireTLS bool
}

// Hello is a client's answer to the greeting.
type Hello struct {
	Conn     net.Conn // upgraded to TLS when the client asked
	Response *HandshakeResponse
	// Seq is the sequence id of the client's last packet: the server's
	// next packet carries Seq+1.
	Seq byte
	TLS bool
}

// ClientGreeting is the greeting the proxy shows a client for the
// upstream's greeting: the same version, connection id, charset, status
// and capabilities (see clientGreetingCaps), with the proxy's own scramble
// and plugin.
func ClientGreeting(upstream *Greeting, scramble []byte, plugin string, frontTLS bool) *Greeting {
	g := *upstream
	g.Caps = clientGreetingCaps(upstream.Caps, frontTLS)
	g.Scramble = scramble
	g.AuthPlugin = plugin
	return &g
}

// Greet sends g to the client and reads its answer, upgrading to TLS on
// an SSLRequest. Malformed or oversized packets come back as an *Error
// carrying the ERR to send.
func Greet(conn net.Conn, g *Greeting, o FrontOptions) (*Hello, error) {
	if err := writePacket(conn, 0, g.Marshal()); err != nil {
		return nil, err
	}
	seq, p, err := readPacket(conn, responseLimit)
	if err != nil {
		return nil, frontReadError(err, seq)
	}
	h := &Hello{Conn: conn, Seq: seq}
	if isSSLRequest(p) {
		if o.TLS == nil {
			return nil, &Error{Code: ErHandshake, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol,
				Message: "the client asked for TLS, which this listener does not offer: connect with TLS off (mysql --ssl-mode=DISABLED or --skip-ssl; go-sql-driver tls=false). The proxy's own hop to RDS is always TLS"}
		}
		tc := tls.Server(conn, o.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake with the client: %w", err)
		}
		h.Conn, h.TLS = tc, true
		seq, p, err = readPacket(tc, responseLimit)
		if err != nil {
			return nil, frontReadError(err, seq)
		}
		h.Seq = seq
	} else if o.RequireTLS {
		return nil, &Error{Code: ErSecureTransportReqd, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol,
			Message: "connections must use TLS"}
	}
	r, err := ParseResponse(p)
	if err != nil {
		return nil, &Error{Code: ErHandshake, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol, Err: err,
			Message: "malformed handshake response: " + err.Error()}
	}
	h.Response = r
	return h, nil
}

// frontReadError turns a failed read of the client's answer into what to
// tell the client; a client that went away gets nothing.
func frontReadError(err error, seq byte) error {
	var big *PacketTooLargeError
	if errors.As(err, &big) {
		return &Error{Code: ErNetPacketTooLarge, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol, Err: err,
			Message: fmt.Sprintf("handshake packet of %d bytes is over the limit of %d", big.Len, big.Limit)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: ErNetReadError, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol, Err: err,
			Message: "the handshake packet ended early"}
	}
	return err
}

// AuthSwitch asks the client to answer again with plugin, and returns the
// answer (the emulator switches clients to mysql_clear_password, as RDS
// does for IAM users). seq is the sequence id to send with.
func AuthSwitch(conn net.Conn, seq byte, plugin string, data []byte) (answer []byte, nextSeq byte, err error) {
	p := appendCString([]byte{0xfe}, plugin)
	p = append(p, data...)
	if err := writePacket(conn, seq, p); err != nil {
		return nil, 0, err
	}
	rseq, answer, err := readPacket(conn, responseLimit)
	if err != nil {
		return nil, 0, frontReadError(err, rseq)
	}
	return answer, rseq + 1, nil
}

// WritePacket sends one packet of under 16 MiB; for the login's last word
// (the upstream's OK, renumbered for the client).
func WritePacket(w io.Writer, seq byte, payload []byte) error { return writePacket(w, seq, payload) }
