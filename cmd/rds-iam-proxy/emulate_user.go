package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// emulateUser are emulate's flags for creating the IAM user on the
// backend, as iamtest.Start does for a Go test: the command form of the
// helper, for a CI job that is not written in Go.
type emulateUser struct {
	create, adminUser, adminPassword, database string
	grants                                     []string
}

func (u *emulateUser) register(fs *flag.FlagSet) {
	fs.StringVar(&u.create, "create-user", "", "create this IAM user on the backend (PostgreSQL: in rds_iam; MySQL: REQUIRE SSL when the server has TLS) with the --backend-password (default: a random one), logging in as --admin-user; it is dropped when emulate ends")
	fs.StringVar(&u.adminUser, "admin-user", "", "with --create-user: the backend's admin user (default postgres, or root for mysql)")
	fs.StringVar(&u.adminPassword, "admin-password", "", "with --create-user: the admin user's password")
	fs.StringVar(&u.database, "admin-database", "", "with --create-user: the database the admin logs in to and the grants run in (default postgres for postgres)")
	fs.Func("grant", "with --create-user: a statement to run as the admin after the user is created, e.g. \"GRANT SELECT ON t TO app\" (repeatable)", func(s string) error {
		u.grants = append(u.grants, s)
		return nil
	})
}

// start creates the user when --create-user asks: it returns the password
// the front must log in with (password, or a random one) and the user
// (nil when none was asked).
func (u *emulateUser) start(ctx context.Context, engine config.Engine, backend, password string) (string, *iamtest.User, error) {
	if u.create == "" {
		if u.adminUser != "" || u.adminPassword != "" || u.database != "" || len(u.grants) > 0 {
			return "", nil, fmt.Errorf("--admin-user, --admin-password, --admin-database and --grant go with --create-user")
		}
		return password, nil, nil
	}
	if password == "" {
		var err error
		if password, err = iamtest.RandomPassword(); err != nil {
			return "", nil, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	user, err := iamtest.CreateUser(cctx, iamtest.Options{Engine: engine.String(), Addr: backend, AdminUser: u.adminUser, AdminPassword: u.adminPassword,
		Database: u.database, DBUser: u.create, Grants: u.grants}, password)
	if err != nil {
		return "", nil, err
	}
	return password, user, nil
}

// drop drops the user emulate created, as it ends.
func dropEmulatedUser(user *iamtest.User, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := user.Drop(ctx); err != nil {
		fmt.Fprintf(stderr, "emulate: %v\n", err)
	}
}
