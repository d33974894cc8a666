// Package loadgen drives connection storms: many clients that all connect
// at the same moment, each running one query whose answer it checks, then
// closing. It exists because a proxy that sits in front of every login must
// not lose a session when hundreds arrive at once: issue 13 saw 3 to 11 of
// 800 psycopg2 sessions hang in every storm (the server had answered; the
// client never got it), and nothing short of a storm with real clients
// showed it.
//
// A [Storm] names a client [Kind] (pgx, libpq through psycopg2, libmariadb
// through MySQLdb, go-sql-driver/mysql), a [Target] (the proxy's listener,
// or a server directly over TLS), how many clients and rounds. [Run] starts
// each round's clients together and records per client the connect time,
// the total time and the outcome: ok, wrong answer, error (with its text) or
// hung (no answer within the per-client limit; a hung client is abandoned,
// never waited for). The [Result] has the counts, connect-time percentiles
// and the error texts grouped.
//
// Errors are sorted by [Explained]: an error the proxy explains (its own
// message with a cause and a "Fix:") is a refusal a person can act on; any
// other error is one nobody can explain and a storm test fails on it, as
// on a hung session or a wrong answer.
//
// The C library clients run as threads of one Debian /usr/bin/python3
// process per round (python3-psycopg2, python3-mysqldb): thousands of
// processes would measure fork and exec, not the proxy. [Hog] keeps CPUs
// busy with separate processes, to run storms on a loaded machine, where
// writes are slow and races show.
package loadgen
