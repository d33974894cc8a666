package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Variant is what another database on the Postgres wire changes in this
// engine, so that it is configured rather than copied: its token and
// trust come through Config's Settings.Tokens and Upstream.Trust; the
// rest is here. The zero Variant is PostgreSQL.
type Variant struct {
	// Name is the engine's name in logs; default "postgres".
	Name string
	// Database, when set, is the upstream database whatever the client
	// names (a database server with one database); the difference is
	// logged at debug.
	Database string
	// Explain explains a failed login in the variant's terms before the
	// Postgres explanations run; nil for what it does not know.
	Explain func(ctx context.Context, user string, err error) *failure.Failure
	// Retry, when set, is asked about a failed login: true logs in once
	// more (after any wait it chose). Not asked about the second attempt.
	Retry func(ctx context.Context, err error) bool
	// MaxSessionAge is how long the upstream lets a session live (0: no
	// limit). A session it breaks off after at least MaxSessionAge minus
	// a tenth (at most a minute) ends with SessionLimit told to the
	// client, instead of the lost-connection message, and logged.
	MaxSessionAge time.Duration
	SessionLimit  *failure.Failure
}

func (v Variant) name() string {
	if v.Name == "" {
		return "postgres"
	}
	return v.Name
}

// database is the upstream database for a client that named db.
func (v Variant) database(log *slog.Logger, db string) string {
	if v.Database == "" {
		return db
	}
	if db != v.Database {
		log.Debug("the upstream has one database: logging in to it, not to the one the client named", "database", db, "upstream_database", v.Database)
	}
	return v.Database
}

// sessionAge is a session's start and the upstream's limit on its age.
type sessionAge struct {
	start time.Time
	max   time.Duration
	tell  *failure.Failure
	log   *slog.Logger
}

// sessionAge starts the clock of a session that has just logged in.
func (v Variant) sessionAge(log *slog.Logger) *sessionAge {
	if v.MaxSessionAge <= 0 || v.SessionLimit == nil {
		return nil
	}
	return &sessionAge{start: time.Now(), max: v.MaxSessionAge, tell: v.SessionLimit, log: log}
}

// reached is the failure to tell when the upstream ended the session at
// its age limit (logged), or nil when the session is younger than that.
func (a *sessionAge) reached() *failure.Failure {
	if a == nil {
		return nil
	}
	age := time.Since(a.start)
	if age < a.max-min(time.Minute, a.max/10) {
		return nil
	}
	a.log.Warn("session ended by the upstream at its session age limit", "age", age.Round(time.Millisecond), "limit", a.max)
	return a.tell
}
