package config

import (
	"fmt"
	"time"
)

// DSQLAction is which IAM action an Aurora DSQL token is signed for.
type DSQLAction string

// The DSQL token choices: auto signs DbConnectAdmin for the role admin
// (the only role DbConnectAdmin logs in) and DbConnect for every other.
const (
	DSQLAuto    DSQLAction = "auto"
	DSQLConnect DSQLAction = "connect"
	DSQLAdmin   DSQLAction = "admin"
)

// DefaultDSQLSessionLimit is how long Aurora DSQL lets a session live.
const DefaultDSQLSessionLimit = time.Hour

// ParseDSQLAction reads dsql_action; "" is auto.
func ParseDSQLAction(s string) (DSQLAction, error) {
	switch a := DSQLAction(s); a {
	case "":
		return DSQLAuto, nil
	case DSQLAuto, DSQLConnect, DSQLAdmin:
		return a, nil
	}
	return "", fmt.Errorf("%q: use auto (DbConnectAdmin for admin, DbConnect otherwise), connect or admin", s)
}

// Admin reports whether a token for user is signed for DbConnectAdmin.
func (a DSQLAction) Admin(user string) bool {
	switch a {
	case DSQLAdmin:
		return true
	case DSQLConnect:
		return false
	}
	return user == "admin"
}

// SessionLimit is dsql_session_limit, or DSQL's hour when unset.
func (u Upstream) SessionLimit() time.Duration {
	if u.DSQLSessionLimit <= 0 {
		return DefaultDSQLSessionLimit
	}
	return time.Duration(u.DSQLSessionLimit)
}

// checkDSQL refuses DSQL settings on another engine, and a bad action.
func (u Upstream) checkDSQL(bad func(key, format string, args ...any)) {
	if u.Engine != DSQL {
		if u.DSQLAction != "" {
			bad("dsql_action", "is for dsql upstreams (Aurora DSQL); this one is %s", u.Engine)
		}
		if u.DSQLSessionLimit != 0 {
			bad("dsql_session_limit", "is for dsql upstreams (Aurora DSQL); this one is %s", u.Engine)
		}
		return
	}
	if _, err := ParseDSQLAction(u.DSQLAction); err != nil {
		bad("dsql_action", "%s", err)
	}
	if u.DSQLSessionLimit < 0 {
		bad("dsql_session_limit", "%s: use a positive duration (0: DSQL's 1h)", time.Duration(u.DSQLSessionLimit))
	}
}
