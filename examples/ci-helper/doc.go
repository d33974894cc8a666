// Package cihelper is what another project's CI test looks like with
// iamtest: its own module, its own PostgreSQL (a service container, named
// by environment variables), and its code logging in with IAM through
// the plain AWS SDK and pgx, as it would against RDS. The rds-iam-proxy
// suite runs it against a throwaway PostgreSQL
// (integration/othermodule_test.go).
package cihelper
