// Package integration holds the end-to-end tests: a real PostgreSQL server
// started in a temp dir, the emulator playing STS, IMDS and the RDS IAM
// front, the proxy as the run command starts it, and real clients (psql,
// pgx). Nothing here is mocked.
//
// Under `go test -short` the suite is skipped; otherwise a missing server
// binary fails it, so CI can never pass without having run it.
package integration
