// Package rdsiam logs a Go program in to Amazon RDS or Aurora with IAM
// database authentication, in process, with no proxy between: a fresh
// IAM auth token and a verify-full TLS configuration for every new
// connection of a pgx pool, a database/sql pool (pgx's stdlib or
// go-sql-driver/mysql).
//
// It is the proxy's own code, not a copy: a Signer resolves its upstream
// the way rds-iam-proxy does (the AWS credential chain, role chains, the
// region from the endpoint name or the AWS configuration, the RDS CA
// bundle downloaded, cached and kept fresh), signs tokens with the
// proxy's token source, and explains a failed login (Explain) with the
// cause and fix the proxy would tell its client for the same fault.
//
//	s, err := rdsiam.New(ctx, rdsiam.Options{Endpoint: "db.abc.eu-west-1.rds.amazonaws.com:5432", User: "app"})
//	cfg, err := pgxpool.ParseConfig("dbname=app")
//	cfg.BeforeConnect = s.BeforeConnect
//	pool, err := pgxpool.NewWithConfig(ctx, cfg)
//	if err := pool.Ping(ctx); err != nil { return s.Explain(ctx, err) }
//
// TLS is always verify-full: the certificate must chain to the CA bundle
// and name the endpoint (or Options.TLSServerName), as IAM tokens must
// never travel in plaintext.
package rdsiam
