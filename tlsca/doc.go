// Package tlsca provides upstream TLS for every engine: the RDS CA bundle
// (from a file the user names, or downloaded from AWS's trust store,
// cached, revalidated and refreshed), the TLS modes, the *tls.Config built
// from them, and the messages for failed verifications.
//
// An engine's back end needs four things from here:
//
//   - [Load] the bundle with [Options] (once at start);
//   - describe the upstream with [Upstream] (bundle, mode, endpoint host,
//     optional server name and dial address) and wrap it in a [Trust]
//     ([NewTrust]), whose [Trust.KeepFresh] swaps in refreshed bundles;
//   - per connection, take [Trust.Current] and handshake with the
//     *tls.Config (nil only for the loopback-only Disable mode), e.g. with
//     [Handshake], which bounds the handshake in time;
//   - on failure, [Upstream.Explain] turns the handshake error into the
//     message for the client: expected name, what the server presented, the
//     bundle (path, CA count, download date) and the fix.
//
// RDS server certificates rotate; only CAs are trusted, never a server
// certificate, and the name checked is the RDS endpoint name (or
// --tls-server-name).
package tlsca
