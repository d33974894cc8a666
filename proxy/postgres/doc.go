// Package postgres is the PostgreSQL engine of the proxy: what differs
// from MySQL between accepting a client and relaying its bytes.
//
// It is a proxy.Engine: the core (proxy.Serve) drives each connection,
// and this package reads the client's opening (Open), logs in upstream
// (handshake.Login), greets the client (handshake.Finish), renders a
// failure (the cause as the ErrorResponse's message, the fix as its HINT)
// and explains its server's errors (Explain). The client's side of the
// handshake is read and answered with wire/pgwire, which knows the
// protocol and no policy. The upstream login uses pgx's pgconn for TLS and
// authentication, then takes over the raw connection (pgwire.Connect), so
// that after the handshake bytes flow unchanged. In between the proxy
// answers the client with what the upstream said, except the cancel key,
// which is its own.
package postgres
