package mixload

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Postgres is a Postgres run whose tables exist and whose sessions have
// not started yet: the caller can take its baseline of the proxy between
// NewPostgres and Run.
type Postgres struct {
	r      *run
	cfg    *pgx.ConnConfig
	conn   string // the connection string, for psql
	rows   string // table names, unique per run
	blobs  string
	notify string // the LISTEN/NOTIFY channel
	notes  *notifications
	sql    statements
}

// NewPostgres prepares a run against the server (or proxy) that
// connString reaches: keyword/value form, sslmode=disable toward a local
// proxy. The user needs CREATE on the public schema. The server must use
// UTF8 and standard_conforming_strings (the defaults, and RDS's).
func NewPostgres(ctx context.Context, connString string, o Options) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("mixload: connection string: %w", err)
	}
	r := newRun(o)
	r.ctx = ctx
	p := &Postgres{r: r, cfg: cfg, conn: connString,
		rows: r.id + "_rows", blobs: r.id + "_blobs", notify: r.id + "_events", notes: newNotifications()}
	p.sql = statements{
		insertBlob: fmt.Sprintf("INSERT INTO %s (session, seq, v) VALUES ($1, $2, $3)", p.blobs),
		blobWhere:  fmt.Sprintf(" FROM %s WHERE session = $1 AND seq = $2", p.blobs),
		repeat:     "SELECT $1::text, repeat($2::text, $3::int)",
		manyRows:   "SELECT $1::text, g, md5($2::text || ':' || g) FROM generate_series(1, $3::int) g",
		trim:       fmt.Sprintf("DELETE FROM %s WHERE session = $1 AND seq BETWEEN $2 AND $3", p.rows),
	}
	// No unique key on purpose: a row relayed twice must show up as two
	// rows, not as an error that hides what happened.
	// EXTERNAL storage: the large values are random and would not compress.
	err = createTables(ctx, r, p.connect, func(ctx context.Context, s *pgSession) error {
		var enc, scs string
		if err := s.conn.QueryRow(ctx, "SELECT current_setting('server_encoding'), current_setting('standard_conforming_strings')").Scan(&enc, &scs); err != nil {
			return fmt.Errorf("mixload: server settings: %w", err)
		}
		if enc != "UTF8" || scs != "on" {
			return fmt.Errorf("mixload: the server has server_encoding %s and standard_conforming_strings %s; the workload needs UTF8 and on", enc, scs)
		}
		return nil
	},
		fmt.Sprintf("CREATE TABLE %s (session text NOT NULL, seq integer NOT NULL, payload text NOT NULL)", p.rows),
		fmt.Sprintf("CREATE INDEX ON %s (session, seq)", p.rows),
		fmt.Sprintf("CREATE TABLE %s (session text NOT NULL, seq integer NOT NULL, v bytea NOT NULL)", p.blobs),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN v SET STORAGE EXTERNAL", p.blobs),
	)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Run runs the workload for Options.Duration (or until ctx ends), then
// checks everything it did. It returns once every session has ended (or
// has been reported hung and cut).
func (p *Postgres) Run(ctx context.Context) *Report {
	r := p.r
	o := r.opts
	return r.runWorkload(ctx, workload{
		engine: "postgres",
		title: fmt.Sprintf("mixload postgres: %d long sessions, %d short-session workers, %d listeners, a cancel pair",
			o.LongSessions, o.ShortWorkers, o.Listeners),
		pairName: "cancel pair",
		// Listeners first: a notification sent before a LISTEN would be
		// rightly missed, and counted as lost.
		helpers: func() []*actor {
			var listeners []*actor
			ready := make(chan bool, o.Listeners)
			for i := range o.Listeners {
				l := p.notes.addListener(fmt.Sprintf("listener %d", i))
				listeners = append(listeners, r.spawn(l.name, func(a *actor) { p.listen(a, i, l, ready) }))
			}
			for range o.Listeners {
				if !<-ready {
					r.problem("a listener could not start; notifications are not checked")
				}
			}
			return listeners
		},
		// Every sender is done: a last notification, committed after all
		// of theirs, reaches each listener after all of theirs.
		drain: func(listeners []*actor) {
			p.sendEnd()
			r.await(listeners, o.OpTimeout)
		},
		long:        p.long,
		shortWorker: p.shortWorker,
		pair:        p.cancelPair,
		verify:      p.verify,
	})
}

// Cleanup drops the run's tables.
func (p *Postgres) Cleanup(ctx context.Context) error {
	return dropTables(ctx, p.r, p.connect, p.rows, p.blobs)
}

// sendEnd sends the end marker every listener waits for.
func (p *Postgres) sendEnd() {
	ctx, cancel := p.r.opCtx()
	defer cancel()
	s, err := p.connect(ctx, p.r.id+"_end")
	if err != nil {
		p.r.fail("end marker", "connect", err)
		return
	}
	defer s.close()
	if _, err := s.conn.Exec(ctx, "SELECT pg_notify($1, $2)", p.notify, endMarker); err != nil {
		p.r.fail("end marker", "notify", err)
	}
}

// pgSumSQL is the table's checksum: the sum of rowHash over its rows.
const pgSumSQL = `SELECT count(*), coalesce(sum(('x' || substr(md5(session || ':' || seq || ':' || payload), 1, 15))::bit(60)::bigint), 0)::text FROM %s`

// verify compares the tables, notifications and cancels with what the run
// did, and fills rep.
func (p *Postgres) verify(rep *Report) {
	st := &p.r.st
	p.r.workChecks(rep, readTables(p.r, p.connect, pgSumSQL, p.rows, p.blobs), checkWords{
		bulk:           "COPY FROM STDIN + TO STDOUT batches, byte-equal",
		bulkBytes:      "COPY bytes in / out",
		largeUp:        "large values up (bytea) and back",
		multiStmt:      "multi-statement simple queries",
		cancels:        "cancels sent",
		cancelled:      "statements cancelled (57014) = cancels sent",
		cancelMissed:   "cancelled statements that finished anyway",
		terminated:     "sessions ended by pg_terminate_backend",
		terminatedSeen: "of them, the next query got FATAL 57P01",
	})
	rep.atLeast("pipelined batches of prepared INSERTs", st.pipelines.Load(), 1)
	p.notes.check(rep)
	rep.info("cancel requests with unknown keys (ignored)", "%d", st.bogusCancels.Load())
	rep.CancelRequests = st.cancelsSent.Load() + st.bogusCancels.Load()
}

// pgLit is a string literal for the simple protocol
// (standard_conforming_strings is on: only quotes need doubling).
func pgLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
