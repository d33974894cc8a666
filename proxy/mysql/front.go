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
	// Greeted, when set, is called once the greeting is written, before
	// the client's answer is read.
	Greeted func()
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
// carrying the ERR to send. The Hello is returned on error too: its Conn
// is where the ERR must go (inside TLS once the client upgraded).
func Greet(conn net.Conn, g *Greeting, o FrontOptions) (*Hello, error) {
	h := &Hello{Conn: conn}
	if err := writePacket(conn, 0, g.Marshal()); err != nil {
		return h, err
	}
	if o.Greeted != nil {
		o.Greeted()
	}
	seq, p, err := readPacket(conn, responseLimit)
	if err != nil {
		return h, frontReadError(err, seq)
	}
	h.Seq = seq
	if isSSLRequest(p) {
		if o.TLS == nil {
			return h, &Error{Code: ErHandshake, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol,
				Message: "the client asked for TLS, which this listener does not offer. Fix: connect with TLS off (MySQL's client: --ssl-mode=DISABLED; MariaDB's: --skip-ssl; go-sql-driver: tls=false); the proxy's own hop to RDS is always TLS"}
		}
		tc := tls.Server(conn, o.TLS)
		if err := tc.Handshake(); err != nil {
			return h, fmt.Errorf("TLS handshake with the client: %w", err)
		}
		h.Conn, h.TLS = tc, true
		seq, p, err = readPacket(tc, responseLimit)
		if err != nil {
			return h, frontReadError(err, seq)
		}
		h.Seq = seq
	}
	r, err := ParseResponse(p)
	if err != nil {
		return h, &Error{Code: ErHandshake, Seq: seq + 1, Greeted: true, Reason: proxy.ReasonProtocol, Err: err,
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
// does for IAM users; the proxy switches a client to the client's own
// plugin). seq is the sequence id to send with.
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

// clientPlugins are client auth plugins a client may pick by default
// (--default-auth, MySQL 9 without mysql_native_password) that need
// nothing from the server but a scramble, so the proxy can let the client
// answer with its own plugin and ignore the answer.
var clientPlugins = map[string]bool{
	PluginNativePassword: true, PluginCachingSHA2: true, PluginClearPassword: true,
	"sha256_password": true, "client_ed25519": true,
}

// settleClientAuth finishes a client's login to the proxy, which checks no
// password: a client that answered with the plugin offered is done; one
// that answered with another plugin (its default) is asked to answer again
// with that plugin, as servers do, since clients refuse an OK to an answer
// they consider provisional. It returns the sequence id for the OK.
func settleClientAuth(h *Hello, offered string, scramble []byte) (byte, error) {
	seq := h.Seq + 1
	r := h.Response
	if r.Caps&CapPluginAuth == 0 || r.AuthPlugin == "" || r.AuthPlugin == offered {
		return seq, nil
	}
	plugin := r.AuthPlugin
	if !clientPlugins[plugin] {
		plugin = offered
	}
	data := append(append([]byte(nil), scramble...), 0)
	if plugin == "client_ed25519" {
		// MariaDB's ed25519 signs a 32-byte nonce and takes nothing else.
		data = append(append([]byte(nil), scramble...), scramble[:12]...)
	}
	_, next, err := AuthSwitch(h.Conn, seq, plugin, data)
	return next, err
}
