package launch

import (
	"context"
	"fmt"
	"net"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
)

// Probe checks that the upstream can be reached, for the readiness
// backend check, without signing a token or logging in.
//
// Postgres: a TCP connection, closed at once. MySQL: the server's
// greeting, then a failed login as a user that does not exist (see
// mysql.Pending.Abandon). A bare connection closed before the handshake
// counts against MySQL's max_connect_errors, and enough of them (a probe
// every few seconds does it within a minute) block the proxy's host for
// every client until FLUSH HOSTS; a failed login does not count. The
// greeting also proves the server answers, and an ERR in its place (too
// many connections, host blocked) fails the probe with the server's words.
func (r *Running) Probe(ctx context.Context) error {
	if r.engine == "mysql" {
		p, err := mysql.Dial(ctx, r.upstream)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", r.name, r.dialAddr, err)
		}
		p.Abandon()
		return nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.dialAddr)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	return c.Close()
}
