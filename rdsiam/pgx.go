package rdsiam

import (
	"context"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// BeforeConnect is a pgxpool.Config.BeforeConnect hook, and with
// stdlib.OptionBeforeConnect one for database/sql: each new connection
// logs in as the signer's user with a fresh token over verify-full TLS
// (see ConfigurePgConn).
func (s *Signer) BeforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	return s.ConfigurePgConn(ctx, &cc.Config)
}

// ConfigurePgConn points c at the endpoint for one login: the endpoint's
// name and port (what the token is signed for and TLS verifies), the
// user, a fresh token as the password, the current verify-full TLS
// configuration, and the dial address when there is one. It clears the
// fallbacks: a parsed sslmode=prefer would otherwise add a plaintext
// attempt. Call it on a copy per connection (pgxpool and stdlib hand the
// hook one).
func (s *Signer) ConfigurePgConn(ctx context.Context, c *pgconn.Config) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	c.Host, c.Port, c.User, c.Password = s.up.Endpoint.Host, uint16(s.up.Endpoint.Port), s.user, token
	c.TLSConfig = s.TLSConfig()
	c.Fallbacks = nil
	if dial := s.up.Config.DialAddress; dial != "" {
		// The name stays the endpoint's (TLS, token); the connection goes
		// to the tunnel, and the name need not resolve here.
		var d net.Dialer
		c.LookupFunc = func(context.Context, string) ([]string, error) { return []string{c.Host}, nil }
		c.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", dial) }
	}
	return nil
}
