// Package postgres speaks the PostgreSQL wire protocol at both ends of a
// proxied connection.
//
// The front (client side) reads the client's first packets itself, with
// exact reads, so no client byte is swallowed by a read-ahead buffer before a
// TLS switch or the raw relay. The back (upstream side) uses pgx's pgconn to
// do TLS and authentication, then hijacks the connection so that after the
// handshake bytes flow unchanged. In between the proxy answers the client with
// what the upstream said, except the cancel key, which is its own.
//
// The same pieces serve the emulator's RDS front (package emulator), which
// differs only in taking TLS from its client and checking a token.
package postgres
