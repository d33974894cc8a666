// Package tlsca provides the trust anchors for upstream TLS: the RDS CA
// bundle, from a file the user names or downloaded from AWS's trust store and
// cached, and the verify-full tls.Config built on it.
//
// RDS server certificates rotate; only the CAs are trusted, never a server
// certificate, and the name checked is always the RDS endpoint name.
package tlsca
