// Package postgres is the PostgreSQL engine of the proxy: what differs
// from MySQL between accepting a client and relaying its bytes.
//
// The client's side of the handshake is read and answered with
// wire/pgwire, which knows the protocol and no policy; this package
// decides what to say (the proxy's words for a refused client, the
// explanation of a failed login) and what to do (cancel keys of its own,
// the upstream login). The upstream login uses pgx's pgconn for TLS and
// authentication, then takes over the raw connection (pgwire.Connect), so
// that after the handshake bytes flow unchanged. In between the proxy
// answers the client with what the upstream said, except the cancel key,
// which is its own.
package postgres
