package mixload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
	s, err := p.connect(ctx, r.id+"_setup")
	if err != nil {
		return nil, fmt.Errorf("mixload: connect: %w", err)
	}
	defer s.close()
	var enc, scs string
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('server_encoding'), current_setting('standard_conforming_strings')").Scan(&enc, &scs); err != nil {
		return nil, fmt.Errorf("mixload: server settings: %w", err)
	}
	if enc != "UTF8" || scs != "on" {
		return nil, fmt.Errorf("mixload: the server has server_encoding %s and standard_conforming_strings %s; the workload needs UTF8 and on", enc, scs)
	}
	// No unique key on purpose: a row relayed twice must show up as two
	// rows, not as an error that hides what happened.
	// EXTERNAL storage: the large values are random and would not compress.
	for _, sql := range []string{
		fmt.Sprintf("CREATE TABLE %s (session text NOT NULL, seq integer NOT NULL, payload text NOT NULL)", p.rows),
		fmt.Sprintf("CREATE INDEX ON %s (session, seq)", p.rows),
		fmt.Sprintf("CREATE TABLE %s (session text NOT NULL, seq integer NOT NULL, v bytea NOT NULL)", p.blobs),
		fmt.Sprintf("ALTER TABLE %s ALTER COLUMN v SET STORAGE EXTERNAL", p.blobs),
	} {
		if _, err := s.conn.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("mixload: set up tables: %w", err)
		}
	}
	return p, nil
}

// Run runs the workload for Options.Duration (or until ctx ends), then
// checks everything it did. It returns once every session has ended (or
// has been reported hung and cut).
func (p *Postgres) Run(ctx context.Context) *Report {
	r := p.r
	o := r.opts
	start := time.Now()
	// ctx ending stops new work early, as the duration's end does; what
	// is in flight still finishes (or is reported hung) under the run's
	// own limit, so the checks run either way.
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Duration+3*o.OpTimeout+time.Minute)
	defer cancel()
	r.ctx = hard
	setupConnects := r.st.connects.Load() // made before the caller's baseline
	rep := &Report{Title: fmt.Sprintf("mixload postgres: %d long sessions, %d short-session workers, %d listeners, a cancel pair",
		o.LongSessions, o.ShortWorkers, o.Listeners)}

	// Listeners first: a notification sent before a LISTEN would be
	// rightly missed, and counted as lost.
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
	var workers []*actor
	for i := range o.LongSessions {
		workers = append(workers, r.spawn(fmt.Sprintf("long session %d", i), func(a *actor) { p.long(a, i) }))
	}
	for i := range o.ShortWorkers {
		workers = append(workers, r.spawn(fmt.Sprintf("short-session worker %d", i), func(a *actor) { p.shortWorker(a, i) }))
	}
	workers = append(workers, r.spawn("cancel pair", p.cancelPair))

	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(r.stop)
	r.log.Info("mixload: time is up; waiting for sessions to finish", "engine", "postgres")
	r.await(workers, 2*o.OpTimeout)
	// Every sender is done: a last notification, committed after all of
	// theirs, reaches each listener after all of theirs.
	p.sendEnd()
	r.await(listeners, o.OpTimeout)
	if r.st.hung.Load() > 0 {
		cancel() // cut what hangs, so that the checks below can run
		r.await(append(workers, listeners...), 30*time.Second)
	}

	p.verify(rep)
	rep.Connections = r.st.connects.Load() - setupConnects
	rep.info("connections made (after setup)", "%d", rep.Connections)
	r.finish(rep, start)
	return rep
}

// Cleanup drops the run's tables.
func (p *Postgres) Cleanup(ctx context.Context) error {
	s, err := p.connect(ctx, p.r.id+"_cleanup")
	if err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	defer s.close()
	_, err = s.conn.Exec(ctx, fmt.Sprintf("DROP TABLE %s, %s", p.rows, p.blobs))
	if err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	return nil
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

// verify compares the tables, notifications and cancels with what the run
// did, and fills rep.
func (p *Postgres) verify(rep *Report) {
	r := p.r
	st := &r.st
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.OpTimeout)
	defer cancel()
	wantRows, wantSum := r.ledger.totals()
	var gotRows, dups, blobsLeft int64
	var gotSum string
	s, err := p.connect(ctx, r.id+"_verify")
	if err == nil {
		err = s.conn.QueryRow(ctx, fmt.Sprintf(
			`SELECT count(*), coalesce(sum(('x' || substr(md5(session || ':' || seq || ':' || payload), 1, 15))::bit(60)::bigint), 0)::text FROM %s`,
			p.rows)).Scan(&gotRows, &gotSum)
		if err == nil {
			err = s.conn.QueryRow(ctx, fmt.Sprintf(
				`SELECT count(*) FROM (SELECT 1 FROM %s GROUP BY session, seq HAVING count(*) > 1) d`, p.rows)).Scan(&dups)
		}
		if err == nil {
			err = s.conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, p.blobs)).Scan(&blobsLeft)
		}
		s.close()
	}
	if err != nil {
		r.fail("verify", "read the tables", err)
		gotRows, gotSum = -1, "unread"
	}

	r.sessionChecks(rep)
	rep.equal("rows in the table = rows committed", gotRows, wantRows)
	rep.equal("(session, seq) keys present twice", dups, 0)
	rep.equalStr("checksum of the table = of the rows committed", gotSum, wantSum.String())
	rep.info("rows rolled back", "%d", st.rolledBack.Load())
	rep.equal("rolled-back rows visible afterwards", st.rolledBackSeen.Load(), 0)
	rep.atLeast("COPY FROM STDIN + TO STDOUT batches, byte-equal", st.bulkBatches.Load(), 1)
	rep.info("COPY bytes in / out", "%s / %s", mib(st.bulkBytesUp.Load()), mib(st.bulkBytesDown.Load()))
	rep.atLeast("large values up (bytea) and back", st.largeUp.Load(), 1)
	rep.atLeast("large values generated down", st.largeDown.Load(), 1)
	rep.info("large-value bytes", "%s", mib(st.largeBytes.Load()))
	rep.equal("large values left behind", blobsLeft, 0)
	rep.atLeast("many-row results", st.manyResults.Load(), 1)
	rep.info("rows in many-row results", "%d", st.manyRows.Load())
	rep.atLeast("multi-statement simple queries", st.multiStmt.Load(), 1)
	rep.atLeast("pipelined batches of prepared INSERTs", st.pipelines.Load(), 1)
	rep.info("batches deleted to bound the table", "%d", st.trims.Load())
	p.notes.check(rep)
	rep.atLeast("cancels sent", st.cancelsSent.Load(), 1)
	rep.equal("statements cancelled (57014) = cancels sent", st.cancelled.Load(), st.cancelsSent.Load())
	rep.equal("cancelled statements that finished anyway", st.cancelMissed.Load(), 0)
	rep.info("cancel requests with unknown keys (ignored)", "%d", st.bogusCancels.Load())
	rep.atLeast("sessions ended by pg_terminate_backend", st.terminated.Load(), 1)
	rep.equal("of them, the next query got FATAL 57P01", st.terminatedSeen.Load(), st.terminated.Load())
	rep.CancelRequests = st.cancelsSent.Load() + st.bogusCancels.Load()
}

// errWrong ends a session after a wrong answer (already recorded).
var errWrong = errors.New("wrong answer")

// pgLit is a string literal for the simple protocol
// (standard_conforming_strings is on: only quotes need doubling).
func pgLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
