package mysql

import (
	"errors"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// GreetedLoginBudget is how long after its greeting an upstream
// connection may wait for its login to start: RDS closes a connection
// left unanswered for its connect_timeout (10 s), and the TLS upgrade and
// the login itself need the rest.
const GreetedLoginBudget = 8 * time.Second

// LoginBy is when the login of the connection held for this client must
// have started (see proxy.UpstreamWaiting): a login waiting in the guard
// on the login rate is refused rather than sent to a server that has
// given up on the connection.
func (h *handshake) LoginBy() time.Time {
	if h.pending == nil || h.pending.greeted.IsZero() {
		return time.Time{}
	}
	return h.pending.greeted.Add(GreetedLoginBudget)
}

// TokenRejected says whether err is the server's generic rejection of a
// token ("Access denied"), which RDS may also give a login it throttled;
// it implements proxy.TokenRejecter.
func (p *Proxy) TokenRejected(err error) bool {
	var se *mywire.ServerError
	return errors.As(err, &se) && se.Code == mywire.ErAccessDenied
}
