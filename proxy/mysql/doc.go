// Package mysql is the MySQL end of the proxy: it accepts MySQL and MariaDB
// clients in plaintext and logs them in upstream with IAM tokens over
// verify-full TLS, then relays raw bytes.
//
// No Go library speaks the server side of the handshake with
// mysql_clear_password while letting the caller choose every capability
// bit (go-mysql-org/go-mysql's client forces its own), so the handshake
// codec is here: packet framing (packet.go), capabilities (caps.go), the
// greeting (greeting.go), the client's answer (response.go), OK/ERR
// (errpacket.go). The emulator's RDS front reuses the same pieces.
//
// The shape of a login, in order:
//  1. dial the upstream and read its greeting (Dial);
//  2. mirror the greeting to the client with the proxy's own scramble
//     (ClientGreeting), read the client's HandshakeResponse41 (ReadResponse);
//  3. build a token, upgrade the upstream to TLS and log in with
//     mysql_clear_password, with exactly the client's capabilities where
//     they change framing (Pending.Login);
//  4. forward the upstream's OK with the client's sequence number, relay.
package mysql
