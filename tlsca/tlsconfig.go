package tlsca

import "crypto/tls"

// ClientConfig returns a verify-full TLS configuration for serverName: the
// chain must lead to a CA in the bundle and the certificate must name
// serverName. TLS 1.2 is the floor, as RDS supports 1.2 and 1.3.
func (b *Bundle) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		RootCAs:    b.Pool,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
}
