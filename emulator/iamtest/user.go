package iamtest

import (
	"context"
	"crypto/tls"
	"fmt"
)

// User is an IAM user created on a server by CreateUser; Drop removes it.
type User struct {
	// Name is the user.
	Name string
	// BackendTLS is how a MySQL front must reach the server for this
	// user (Options.BackendTLS, or unverified TLS when the server offers
	// it and the user was created REQUIRE SSL); nil for plaintext and for
	// PostgreSQL.
	BackendTLS *tls.Config

	admin admin
}

// CreateUser logs in to the server of o as its admin and creates
// o.DBUser as an IAM user whose password is password (what the front
// logs in with), then runs o.Grants. Start does this; the emulate
// command's --create-user too, with a front of its own. The admin login
// stays open until Drop.
func CreateUser(ctx context.Context, o Options, password string) (*User, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	a, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := a.createUser(ctx, o.DBUser, password); err != nil {
		a.close(ctx)
		return nil, err
	}
	u := &User{Name: o.DBUser, BackendTLS: a.backendTLS(o.BackendTLS), admin: a}
	if err := a.run(ctx, o.Grants); err != nil {
		u.Drop(ctx)
		return nil, fmt.Errorf("iamtest: grants for %s: %w", o.DBUser, err)
	}
	return u, nil
}

// Drop drops the user (PostgreSQL: what it owns in the admin's database
// first, and rds_iam when CreateUser made it and no one else is in it),
// then ends the admin login.
func (u *User) Drop(ctx context.Context) error {
	defer u.admin.close(ctx)
	if err := u.admin.dropUser(ctx, u.Name); err != nil {
		return fmt.Errorf("iamtest: drop %s: %w", u.Name, err)
	}
	return nil
}

// RandomPassword is a password for a front's logins to the server: no one
// else knows it, so the only way in as the user is through the front.
func RandomPassword() (string, error) { return randomPassword() }
