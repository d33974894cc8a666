// Package integration holds the end-to-end tests: a real PostgreSQL server
// started in a temp dir, the emulator playing STS, IMDS and the RDS IAM
// front, the proxy as the run command starts it, and real clients (psql,
// pgx). Nothing here is mocked.
//
// The tests share one world (harness_test.go). Each starts with
// w.enter(t), which fails it if it leaves the world changed; changes to
// shared state go through the helpers in world_changes_test.go, which
// undo them; TestWorldRules checks both. So the tests pass in any order
// (go test -shuffle=on).
//
// Under `go test -short` the suite is skipped; otherwise a missing server
// binary fails it, so CI can never pass without having run it.
package integration
