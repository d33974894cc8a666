// Package mysql is the MySQL engine of the proxy: it accepts MySQL and
// MariaDB clients in plaintext and logs them in upstream with IAM tokens
// over verify-full TLS, then relays raw bytes.
//
// It is a proxy.Engine: the core (proxy.Serve) drives each connection,
// and this package holds what is MySQL's. The handshake's bytes are
// wire/mywire's, which knows the protocol and no policy; this package
// decides what to say and do: a failure rendered as one ERR text of at
// most 511 bytes keeping cause and fix, the explanation of its server's
// errors, which capabilities a client is offered, and the cap on upstream
// connections held for clients that have not answered. The client's
// first-packet clock starts when the greeting goes out: the wait for a
// place and for the upstream's greeting is the proxy's, not the client's.
//
// The shape of a login, in order:
//  1. dial the upstream and read its greeting (Dial);
//  2. mirror the greeting to the client with the proxy's own scramble
//     (mywire.Mirror), read the client's HandshakeResponse41 (mywire.Greet);
//  3. build a token, upgrade the upstream to TLS and log in with
//     mysql_clear_password, with exactly the client's capabilities where
//     they change framing (Pending.Login);
//  4. forward the upstream's OK with the client's sequence number, relay.
package mysql
