package rdsiam

import (
	"context"
	"database/sql/driver"

	"github.com/go-sql-driver/mysql"
)

// MySQLConnector is a go-sql-driver/mysql connector (for sql.OpenDB) that
// logs each new connection in as the signer's user with a fresh token:
// mysql_clear_password inside verify-full TLS, as RDS asks. cfg supplies
// the rest (database, params, timeouts); nil: the driver's defaults. cfg
// is not changed.
func (s *Signer) MySQLConnector(cfg *mysql.Config) (driver.Connector, error) {
	if cfg == nil {
		cfg = mysql.NewConfig()
	} else {
		cfg = cfg.Clone()
	}
	cfg.User, cfg.Net, cfg.Addr = s.user, "tcp", s.DialAddr()
	cfg.AllowCleartextPasswords = true
	cfg.TLS = s.TLSConfig()
	err := cfg.Apply(mysql.BeforeConnect(func(ctx context.Context, c *mysql.Config) error {
		token, err := s.Token(ctx)
		if err != nil {
			return err
		}
		c.User, c.Passwd, c.TLS = s.user, token, s.TLSConfig()
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return mysql.NewConnector(cfg)
}
