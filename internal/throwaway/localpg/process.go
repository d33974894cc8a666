package localpg

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// serverUser picks the account for initdb/postgres: the "postgres" system
// user when we are root (initdb and postgres refuse to run as root), else
// ourselves.
func serverUser() (localsrv.Account, error) {
	if os.Geteuid() != 0 {
		return localsrv.CurrentAccount(), nil
	}
	a, err := localsrv.LookupAccount("postgres")
	if err != nil {
		return localsrv.Account{}, fmt.Errorf("localpg: running as root, and PostgreSQL refuses root, but there is no \"postgres\" system user to run it as (%w); %s, or run as a non-root user", err, installHint)
	}
	return a, nil
}

// childEnv is our environment minus anything that would change what the
// server programs do behind our back: PG* variables (PGDATA, PGPORT,
// PGOPTIONS, ...) and locale settings. The C locale keeps messages in
// English, which Start relies on to recognise "could not bind".
func childEnv(home string) []string {
	return localsrv.CleanEnv(home, func(k string) bool { return strings.HasPrefix(k, "PG") })
}

// abortGrace is how long an immediate shutdown may take before SIGKILL.
const abortGrace = 3 * time.Second

// abort ends a PostgreSQL program fast but cleanly: SIGQUIT is
// PostgreSQL's immediate shutdown (the postmaster SIGQUITs its children,
// which run in sessions of their own, and exits; initdb removes its
// half-made data dir), then SIGKILL of the group if that did not work. A
// bare SIGKILL of the postmaster would leave its children to notice its
// death on their own.
func abort(c *localsrv.Child) {
	c.Abort(localsrv.SigQuit(), abortGrace)
}

// stopChild asks for a PostgreSQL fast shutdown (SIGINT: roll back open
// transactions, disconnect clients, checkpoint, exit) and aborts after
// grace.
func stopChild(c *localsrv.Child, grace time.Duration) error {
	err := c.Stop(os.Interrupt, grace, func() { abort(c) })
	if errors.Is(err, localsrv.ErrKilled) {
		return errKilled
	}
	return err
}

// errKilled reports that a server ignored the shutdown request.
var errKilled = errors.New("did not shut down in time and was stopped with SIGQUIT/SIGKILL")
