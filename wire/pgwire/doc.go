// Package pgwire is the PostgreSQL handshake, as bytes: the packets that
// open a connection, the server's answers up to ReadyForQuery, its
// ErrorResponse, the cleartext password exchange, a CancelRequest sent
// over TLS, and the hand-over of a connection pgconn has logged in.
//
// It knows the protocol and nothing of who uses it: the proxy's engine
// (proxy/postgres) and the emulator's RDS front (emulator) both speak
// through it, each with its own policy. So its errors are plain: a
// *ProtocolError carries the SQLSTATE a PostgreSQL server answers such a
// client with and a message in the protocol's terms, never a metric label
// or advice about a command's flags; the caller decides what to tell whom.
//
// Opening packets are read with exact reads, never ahead, so that no
// client byte is swallowed before a TLS switch or a raw relay; pgproto3's
// chunk reader would read ahead.
package pgwire
