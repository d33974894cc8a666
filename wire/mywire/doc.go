// Package mywire is the MySQL and MariaDB handshake, as bytes: packet
// framing, the server's greeting (HandshakeV10), the client's
// HandshakeResponse41 and SSLRequest, capability flags, ERR and OK
// packets, password scrambles, the server side of a handshake up to the
// client's answer, and the client side of a login (TLS upgrade, auth
// answers and switches) over a connection whose greeting has been read.
//
// No Go library speaks the server side with mysql_clear_password while
// letting the caller choose every capability bit (go-mysql-org/go-mysql's
// client forces its own), so the codec is written here. It knows the
// protocol and nothing of who uses it: the proxy's engine (proxy/mysql)
// and the emulator's RDS front (emulator) both speak through it, each
// with its own policy. So its errors are plain: a *ProtocolError carries
// the ERR a server answers a broken handshake with, a *ServerError is an
// ERR a server sent, and the client login's failures have types of their
// own (*UpstreamProtocolError, *TLSError, *UnsupportedPluginError,
// ErrNoTLS); none carries a metric label or advice about a command's
// flags.
//
// Packets are read exactly, never ahead, so that a TLS upgrade or a raw
// relay can follow.
package mywire
