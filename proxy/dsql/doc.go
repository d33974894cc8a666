// Package dsql is the Aurora DSQL engine: the Postgres engine
// (proxy/postgres) configured with DSQL's token (service dsql, action
// DbConnectAdmin for the role admin, DbConnect for any other), the one
// database postgres, DSQL's 1-hour session limit told to the client when
// the cluster ends a session at it, and DSQL's own login failures
// explained (the rate limit, the connection limit, the policy action on
// the cluster ARN, the role mapping). Its trust, the system's roots, comes
// from internal/launch like every engine's.
package dsql
