package mysql

import (
	"fmt"
	"io"
)

// Error numbers the proxy answers with. All are server numbers: MariaDB's
// client library takes a client-range number (2000-2999, such as 2003
// "can't connect") in an ERR packet for a malformed packet and hides the
// message, so upstream failures use 1429 with SQLSTATE 08S01 (a
// communication failure, which pools treat as transient) and a text that
// names the cause.
const (
	ErConCount            uint16 = 1040 // ER_CON_COUNT_ERROR: too many connections
	ErHandshake           uint16 = 1043 // ER_HANDSHAKE_ERROR: bad handshake
	ErAccessDenied        uint16 = 1045 // ER_ACCESS_DENIED_ERROR
	ErServerShutdown      uint16 = 1053 // ER_SERVER_SHUTDOWN
	ErNetPacketTooLarge   uint16 = 1153 // ER_NET_PACKET_TOO_LARGE
	ErNetReadError        uint16 = 1158 // ER_NET_READ_ERROR
	ErNotSupportedAuth    uint16 = 1251 // ER_NOT_SUPPORTED_AUTH_MODE
	ErUpstreamConnect     uint16 = 1429 // ER_CONNECT_TO_FOREIGN_DATA_SOURCE: the upstream is unreachable, TLS failed, or it broke off
	ErPluginNotLoaded     uint16 = 1524 // ER_PLUGIN_IS_NOT_LOADED: IAM auth off on the instance
	ErSecureTransportReqd uint16 = 3159 // ER_SECURE_TRANSPORT_REQUIRED
)

// sqlState is the SQLSTATE sent with a number.
func sqlState(code uint16) string {
	switch code {
	case ErAccessDenied:
		return "28000"
	case ErConCount:
		return "08004"
	case ErHandshake, ErNetReadError, ErNetPacketTooLarge, ErUpstreamConnect, ErServerShutdown:
		return "08S01"
	}
	return "HY000"
}

// ServerError is an ERR packet a server sent.
type ServerError struct {
	Code    uint16
	State   string // "" when the server sent none (before the handshake)
	Message string
}

func (e *ServerError) Error() string {
	if e.State == "" {
		return fmt.Sprintf("ERROR %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Message)
}

// parseErrPacket decodes an ERR payload (first byte 0xff). The 4.1
// SQLSTATE marker is optional: servers leave it out before the handshake.
func parseErrPacket(p []byte) *ServerError {
	r := &reader{b: p[1:]}
	e := &ServerError{Code: r.uint16()}
	rest := r.rest()
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// marshalErr encodes an ERR payload. Before the client has answered the
// greeting its capabilities are unknown, and clients then read no
// SQLSTATE: withState false leaves it out, as servers do.
func marshalErr(code uint16, state, message string, withState bool) []byte {
	b := []byte{0xff, byte(code), byte(code >> 8)}
	if withState {
		b = append(b, '#')
		b = append(b, state...)
	}
	return append(b, message...)
}

// WriteServerError sends an ERR packet as a server would, with no proxy
// prefix: the emulator answers exactly like RDS. At sequence id 0 (instead
// of the greeting) it carries no SQLSTATE, as servers send it.
func WriteServerError(w io.Writer, seq byte, code uint16, message string) error {
	return writePacket(w, seq, marshalErr(code, sqlState(code), message, seq > 0))
}

// isOK says whether a login result is an OK packet.
func isOK(p []byte) bool { return len(p) >= 7 && p[0] == 0x00 }
