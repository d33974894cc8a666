package localsrv

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Account is the OS account a server's programs run as.
type Account struct {
	UID, GID   int
	Name, Home string
	// Switch is true when the programs must run as this account rather
	// than as ourselves: we are root and the server refuses root (or is
	// better kept away from it). File helpers then chown to it and
	// SysProcAttr sets the credential.
	Switch bool
}

// CurrentAccount is ourselves: no user switch, no chown.
func CurrentAccount() Account {
	return Account{UID: os.Geteuid(), GID: os.Getegid()}
}

// LookupAccount returns the named system account, to switch to. The error
// wraps the lookup failure (user.UnknownUserError when it does not exist).
func LookupAccount(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return Account{}, fmt.Errorf("user %s has non-numeric ids %q/%q: %w", name, u.Uid, u.Gid, err)
	}
	return Account{UID: uid, GID: gid, Name: u.Username, Home: u.HomeDir, Switch: true}, nil
}
