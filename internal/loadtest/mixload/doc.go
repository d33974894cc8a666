// Package mixload is a long, mixed database workload that checks every
// byte it gets back. It exists because a proxy that relays sessions can
// fail in ways no single test notices: a reply that reaches the wrong
// session, a row that is written twice or never, a notification that is
// lost, a cancel that hits nobody, a session that hangs. Storms find hangs
// at login; this finds what goes wrong after it, under hours of ordinary
// traffic, for both engines.
//
// A run opens many sessions at once through the proxy and keeps them busy
// until its duration is over:
//
//   - long sessions, held for the whole run, cycle through prepared
//     statements, transactions that commit and roll back, bulk loads (COPY
//     FROM STDIN and COPY TO STDOUT on Postgres, multi-row INSERTs and large
//     SELECTs on MySQL), multi-statement queries, pipelined batches (pgx),
//     values of several MB both ways, results of many rows, and idle
//     spells;
//   - short sessions connect, do a few queries and leave, over pgx, pgconn
//     and psql, or go-sql-driver and the mariadb client;
//   - on Postgres, listeners receive every NOTIFY the other sessions send,
//     and a pair of sessions cancels a pg_sleep with a CancelRequest through
//     the proxy (and sends cancel requests with keys nobody holds); on
//     MySQL a pair kills a SLEEP() with KILL QUERY;
//   - now and then the server ends a session itself (pg_terminate_backend,
//     KILL CONNECTION), and its next query must fail at once as it would
//     without a proxy.
//
// Every answer is checked as it comes: each session tags its work with its
// own id and a counter, and expects both back, with the backend process or
// connection id that it saw first. At the end the run compares what it
// committed (a ledger of rows: count and a sum of per-row hashes) with the
// tables, notifications sent with those received by each listener,
// cancels requested with statements cancelled, and sessions opened with
// sessions closed. Any difference, error or hung session fails the run.
//
// The same workload serves the end-to-end tests (integration/mixed_*_test.go,
// a bounded run against the real binary) and the long form
// (go run ./bench/mixed -duration 10m).
package mixload
