package launch

import (
	"context"
	"fmt"
	"net"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
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
//
// A pausable upstream (resume_wait) is not probed: any connection attempt
// wakes a paused Aurora Serverless v2 cluster and resets its auto-pause
// timer, so a probe every few seconds would keep it from ever pausing;
// and a paused cluster is no reason to take the proxy out of service,
// since it holds logins while the cluster resumes. It counts as ready.
func (r *Running) Probe(ctx context.Context) error {
	if r.Pausable() {
		return nil
	}
	err := r.up.Probe(ctx)
	switch {
	case err == nil:
		return nil
	case r.up.Config.Engine == config.MySQL:
		return fmt.Errorf("%s (%s): %w", r.Name(), r.up.DialAddr(), err)
	}
	return fmt.Errorf("%s: %w", r.Name(), err)
}

// Probe checks that the upstream can be reached, as Running.Probe
// describes, without signing a token or logging in.
func (u *Upstream) Probe(ctx context.Context) error {
	if u.Config.Engine == config.MySQL {
		p, err := mysql.Dial(ctx, u.MySQLUpstream())
		if err != nil {
			return err
		}
		p.Abandon()
		return nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.DialAddr())
	if err != nil {
		return err
	}
	return c.Close()
}
