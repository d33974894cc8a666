package mywire

import (
	"fmt"
	"io"
)

// Error numbers (all in the server range: MariaDB's client library takes a
// client-range number, 2000-2999, in an ERR packet for a malformed packet
// and hides the message).
const (
	ErConCount            uint16 = 1040 // ER_CON_COUNT_ERROR: too many connections
	ErHandshake           uint16 = 1043 // ER_HANDSHAKE_ERROR: bad handshake
	ErAccessDenied        uint16 = 1045 // ER_ACCESS_DENIED_ERROR
	ErServerShutdown      uint16 = 1053 // ER_SERVER_SHUTDOWN
	ErNetPacketTooLarge   uint16 = 1153 // ER_NET_PACKET_TOO_LARGE
	ErNetReadError        uint16 = 1158 // ER_NET_READ_ERROR
	ErNotSupportedAuth    uint16 = 1251 // ER_NOT_SUPPORTED_AUTH_MODE
	ErUpstreamConnect     uint16 = 1429 // ER_CONNECT_TO_FOREIGN_DATA_SOURCE: a server behind this one is unreachable or broke off
	ErPluginNotLoaded     uint16 = 1524 // ER_PLUGIN_IS_NOT_LOADED
	ErSecureTransportReqd uint16 = 3159 // ER_SECURE_TRANSPORT_REQUIRED
)

// SQLState is the SQLSTATE sent with a number.
func SQLState(code uint16) string {
	switch code {
	case ErAccessDenied:
		return "28000"
	case ErConCount:
		return "08004"
	case ErHandshake, ErNetReadError, ErNetPacketTooLarge, ErUpstreamConnect, ErServerShutdown:
		return "08S01" // a communication failure, which pools treat as transient
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

// ParseErr decodes an ERR payload (first byte 0xff). The 4.1 SQLSTATE
// marker is optional: servers leave it out before the handshake.
func ParseErr(p []byte) *ServerError {
	r := &reader{b: p[1:]}
	e := &ServerError{Code: r.uint16()}
	rest := r.rest()
	if len(rest) >= 6 && rest[0] == '#' {
		e.State, rest = string(rest[1:6]), rest[6:]
	}
	e.Message = string(rest)
	return e
}

// MarshalErr encodes an ERR payload with code's SQLSTATE. Before the
// client has answered the greeting its capabilities are unknown, and
// clients then read no SQLSTATE: withState false leaves it out, as servers
// do.
func MarshalErr(code uint16, message string, withState bool) []byte {
	b := []byte{0xff, byte(code), byte(code >> 8)}
	if withState {
		b = append(b, '#')
		b = append(b, SQLState(code)...)
	}
	return append(b, message...)
}

// WriteServerError sends an ERR packet as a server would. At sequence id 0
// (instead of the greeting) it carries no SQLSTATE, as servers send it.
func WriteServerError(w io.Writer, seq byte, code uint16, message string) error {
	return WritePacket(w, seq, MarshalErr(code, message, seq > 0))
}

// IsOK says whether a login result is an OK packet.
func IsOK(p []byte) bool { return len(p) >= 7 && p[0] == 0x00 }
