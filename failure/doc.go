// Package failure holds the one type every refusal before the relay is
// carried in: why a connection cannot go on (Cause), what the person should
// do (Fix), the metric label (Reason) and, optionally, a server's own
// protocol code to pass through. It is made where the failure happens, from
// typed errors (AWS error codes, TLS verification errors, a server's
// error), so no code has to sort failures by their text or cut the advice
// back out of a sentence. Each engine renders a Failure in its protocol
// (Postgres: the cause as the message and the fix as the HINT; MySQL: both
// in one ERR text within 511 bytes); doctor prints cause and fix as they
// are.
//
// It is a leaf: it imports nothing of the project, so the codecs' users,
// tlsca and authtoken can all return it.
package failure
