package mywire

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// ProtocolError is a client that broke the handshake after the greeting:
// Code is the ERR a server answers it with, to be sent with sequence id
// Seq (and a SQLSTATE: the client has the greeting); Message says what was
// wrong, in the protocol's terms.
type ProtocolError struct {
	Code    uint16
	Seq     byte
	Message string
	Err     error // the cause, when there is one (ErrTLSNotOffered, a parse or read error)
}

func (e *ProtocolError) Error() string { return e.Message }

func (e *ProtocolError) Unwrap() error { return e.Err }

// ErrTLSNotOffered is a client that sent an SSLRequest to a greeting that
// did not offer TLS.
var ErrTLSNotOffered = errors.New("the client asked for TLS, which this server does not offer")

// GreetOptions say how the server side of a handshake goes.
type GreetOptions struct {
	// TLS, when set, serves TLS to a client that sends an SSLRequest (the
	// greeting should offer CLIENT_SSL).
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

// Greet sends g to the client and reads its answer, upgrading to TLS on
// an SSLRequest. A malformed or oversized answer is a *ProtocolError. The
// Hello is returned on error too: its Conn is where an ERR must go
// (inside TLS once the client upgraded).
func Greet(conn net.Conn, g *Greeting, o GreetOptions) (*Hello, error) {
	h := &Hello{Conn: conn}
	if err := WritePacket(conn, 0, g.Marshal()); err != nil {
		return h, err
	}
	if o.Greeted != nil {
		o.Greeted()
	}
	seq, p, err := ReadPacket(conn, ResponseLimit)
	if err != nil {
		return h, readError(err, seq)
	}
	h.Seq = seq
	if IsSSLRequest(p) {
		if o.TLS == nil {
			return h, &ProtocolError{Code: ErHandshake, Seq: seq + 1, Message: ErrTLSNotOffered.Error(), Err: ErrTLSNotOffered}
		}
		tc := tls.Server(conn, o.TLS)
		if err := tc.Handshake(); err != nil {
			return h, fmt.Errorf("TLS handshake with the client: %w", err)
		}
		h.Conn, h.TLS = tc, true
		seq, p, err = ReadPacket(tc, ResponseLimit)
		if err != nil {
			return h, readError(err, seq)
		}
		h.Seq = seq
	}
	r, err := ParseResponse(p)
	if err != nil {
		return h, &ProtocolError{Code: ErHandshake, Seq: seq + 1, Message: "malformed handshake response: " + err.Error(), Err: err}
	}
	h.Response = r
	return h, nil
}

// readError turns a failed read of a client's packet into the ERR a server
// answers; a client that went away is returned as is: nobody listens.
func readError(err error, seq byte) error {
	var big *PacketTooLargeError
	if errors.As(err, &big) {
		return &ProtocolError{Code: ErNetPacketTooLarge, Seq: seq + 1, Err: err,
			Message: fmt.Sprintf("handshake packet of %d bytes is over the limit of %d", big.Len, big.Limit)}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &ProtocolError{Code: ErNetReadError, Seq: seq + 1, Err: err, Message: "the handshake packet ended early"}
	}
	return err
}

// AuthSwitch asks the client to answer again with plugin
// (AuthSwitchRequest), sent with sequence id seq, and returns the answer
// and the sequence id of the server's next packet.
func AuthSwitch(conn net.Conn, seq byte, plugin string, data []byte) (answer []byte, nextSeq byte, err error) {
	p := appendCString([]byte{0xfe}, plugin)
	p = append(p, data...)
	if err := WritePacket(conn, seq, p); err != nil {
		return nil, 0, err
	}
	rseq, answer, err := ReadPacket(conn, ResponseLimit)
	if err != nil {
		return nil, 0, readError(err, rseq)
	}
	return answer, rseq + 1, nil
}
