package mixload

import (
	"context"
	"fmt"
	"time"
)

// workload is what one engine puts into the run that Run drives.
type workload struct {
	engine   string // in the log
	title    string // of the report
	pairName string // the actor that stops statements (cancel or kill pair)
	// helpers, when set, starts actors that must be running before any
	// session starts (Postgres's listeners); drain ends them once the
	// sessions are done.
	helpers     func() []*actor
	drain       func(helpers []*actor)
	long        func(a *actor, i int)
	shortWorker func(a *actor, w int)
	pair        func(a *actor)
	verify      func(rep *Report)
}

// runWorkload runs w for Options.Duration (or until ctx ends), then checks
// everything it did. It returns once every session has ended (or has been
// reported hung and cut).
func (r *run) runWorkload(ctx context.Context, w workload) *Report {
	o := r.opts
	start := time.Now()
	// ctx ending stops new work early, as the duration's end does; what
	// is in flight still finishes (or is reported hung) under the run's
	// own limit, so the checks run either way.
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Duration+3*o.OpTimeout+time.Minute)
	defer cancel()
	r.ctx = hard
	setupConnects := r.st.connects.Load() // made before the caller's baseline
	rep := &Report{Title: w.title}
	var helpers []*actor
	if w.helpers != nil {
		helpers = w.helpers()
	}
	var workers []*actor
	for i := range o.LongSessions {
		workers = append(workers, r.spawn(fmt.Sprintf("long session %d", i), func(a *actor) { w.long(a, i) }))
	}
	for i := range o.ShortWorkers {
		workers = append(workers, r.spawn(fmt.Sprintf("short-session worker %d", i), func(a *actor) { w.shortWorker(a, i) }))
	}
	workers = append(workers, r.spawn(w.pairName, w.pair))

	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(r.stop)
	r.log.Info("mixload: time is up; waiting for sessions to finish", "engine", w.engine)
	r.await(workers, 2*o.OpTimeout)
	if w.drain != nil {
		w.drain(helpers)
	}
	if r.st.hung.Load() > 0 {
		cancel() // cut what hangs, so that the checks below can run
		r.await(append(workers, helpers...), 30*time.Second)
	}

	w.verify(rep)
	rep.Connections = r.st.connects.Load() - setupConnects
	rep.info("connections made (after setup)", "%d", rep.Connections)
	r.finish(rep, start)
	return rep
}

// tables is what the run's tables hold at the end.
type tables struct {
	rows, dups, blobsLeft int64
	sum                   string
}

// readTables reads the run's tables: the row count and checksum (sumSQL,
// the engine's spelling of the sum of row hashes the ledger keeps, with
// %s for the table), the (session, seq) keys present twice, and the large
// values left behind. A failure is recorded and shows as rows -1.
func readTables[S querier](r *run, connect func(context.Context, string) (S, error), sumSQL, rows, blobs string) tables {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.OpTimeout)
	defer cancel()
	var t tables
	s, err := connect(ctx, r.id+"_verify")
	if err == nil {
		err = s.queryRow(ctx, fmt.Sprintf(sumSQL, rows)).Scan(&t.rows, &t.sum)
		if err == nil {
			err = s.queryRow(ctx, fmt.Sprintf(
				`SELECT count(*) FROM (SELECT 1 FROM %s GROUP BY session, seq HAVING count(*) > 1) d`, rows)).Scan(&t.dups)
		}
		if err == nil {
			err = s.queryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, blobs)).Scan(&t.blobsLeft)
		}
		s.close()
	}
	if err != nil {
		r.fail("verify", "read the tables", err)
		t.rows, t.sum = -1, "unread"
	}
	return t
}

// createTables checks that the server suits the run (check), then creates
// the run's tables with ddl.
func createTables[S querier](ctx context.Context, r *run, connect func(context.Context, string) (S, error), check func(context.Context, S) error, ddl ...string) error {
	s, err := connect(ctx, r.id+"_setup")
	if err != nil {
		return fmt.Errorf("mixload: connect: %w", err)
	}
	defer s.close()
	if err := check(ctx, s); err != nil {
		return err
	}
	for _, sql := range ddl {
		if _, err := s.exec(ctx, sql); err != nil {
			return fmt.Errorf("mixload: set up tables: %w", err)
		}
	}
	return nil
}

// dropTables drops the run's tables, for Cleanup.
func dropTables[S querier](ctx context.Context, r *run, connect func(context.Context, string) (S, error), rows, blobs string) error {
	s, err := connect(ctx, r.id+"_cleanup")
	if err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	defer s.close()
	if _, err := s.exec(ctx, fmt.Sprintf("DROP TABLE %s, %s", rows, blobs)); err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	return nil
}

// checkWords are what an engine calls its kinds of work in a report.
type checkWords struct {
	bulk, bulkBytes, largeUp, multiStmt string
	cancels, cancelled, cancelMissed    string
	terminated, terminatedSeen          string
}

// workChecks are the report lines both engines share: the sessions, the
// tables against the ledger, and the work done, named in w.
func (r *run) workChecks(rep *Report, t tables, w checkWords) {
	st := &r.st
	wantRows, wantSum := r.ledger.totals()
	r.sessionChecks(rep)
	rep.equal("rows in the table = rows committed", t.rows, wantRows)
	rep.equal("(session, seq) keys present twice", t.dups, 0)
	rep.equalStr("checksum of the table = of the rows committed", t.sum, wantSum.String())
	rep.info("rows rolled back", "%d", st.rolledBack.Load())
	rep.equal("rolled-back rows visible afterwards", st.rolledBackSeen.Load(), 0)
	rep.atLeast(w.bulk, st.bulkBatches.Load(), 1)
	rep.info(w.bulkBytes, "%s / %s", mib(st.bulkBytesUp.Load()), mib(st.bulkBytesDown.Load()))
	rep.atLeast(w.largeUp, st.largeUp.Load(), 1)
	rep.atLeast("large values generated down", st.largeDown.Load(), 1)
	rep.info("large-value bytes", "%s", mib(st.largeBytes.Load()))
	rep.equal("large values left behind", t.blobsLeft, 0)
	rep.atLeast("many-row results", st.manyResults.Load(), 1)
	rep.info("rows in many-row results", "%d", st.manyRows.Load())
	rep.atLeast(w.multiStmt, st.multiStmt.Load(), 1)
	rep.info("batches deleted to bound the table", "%d", st.trims.Load())
	rep.atLeast(w.cancels, st.cancelsSent.Load(), 1)
	rep.equal(w.cancelled, st.cancelled.Load(), st.cancelsSent.Load())
	rep.equal(w.cancelMissed, st.cancelMissed.Load(), 0)
	rep.atLeast(w.terminated, st.terminated.Load(), 1)
	rep.equal(w.terminatedSeen, st.terminatedSeen.Load(), st.terminated.Load())
}
