package emulator

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// pgHandshakeLimit bounds a Postgres front's whole handshake with one client,
// so a client that stalls cannot hold a connection open forever.
const pgHandshakeLimit = 30 * time.Second

// readPgHello sets c's handshake deadline and reads the client's opening
// messages (TLS required, as on RDS and Aurora DSQL). When they are bad it
// logs why, tells the client in its protocol if it can, and returns nil:
// the caller only returns. The Postgres and DSQL fronts share it so both
// answer a broken opening the same way.
func readPgHello(c net.Conn, cfg *tls.Config, log *slog.Logger) *pgwire.Hello {
	c.SetDeadline(time.Now().Add(pgHandshakeLimit))
	hello, err := pgwire.ReadHello(c, pgwire.HelloOptions{TLS: cfg, RequireTLS: true})
	if err != nil {
		log.Info("handshake failed", "err", err)
		var pe *pgwire.ProtocolError
		if errors.As(err, &pe) {
			pgwire.WriteServerError(c, "FATAL", pe.Code, pe.Message)
		}
		return nil
	}
	return hello
}
