package mixload

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL is a MySQL run whose tables exist and whose sessions have not
// started yet: the caller can take its baseline of the proxy between
// NewMySQL and Run.
type MySQL struct {
	r     *run
	cfg   *mysql.Config
	rows  string
	blobs string
}

// maxManyRowsMySQL is what the many-row query can make (five digit tables
// cross-joined: no recursive CTE, whose depth MySQL and MariaDB cap at
// 1000 by default).
const maxManyRowsMySQL = 100000

// NewMySQL prepares a run against the server (or proxy) that cfg reaches.
// Statements with arguments run as server-side prepared statements
// (interpolateParams stays off); multi-statements are enabled for the
// multi-statement queries. The user needs CREATE and DROP in cfg's
// database, and max_allowed_packet must hold a large value.
func NewMySQL(ctx context.Context, cfg *mysql.Config, o Options) (*MySQL, error) {
	cfg = cfg.Clone()
	cfg.InterpolateParams = false
	cfg.MultiStatements = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	r := newRun(o)
	r.ctx = ctx
	// The driver prints connection losses (the run's own KILL CONNECTION)
	// to stderr by default; they belong in the run's log.
	cfg.Logger = driverLog{r.log}
	if r.opts.ManyRows > maxManyRowsMySQL {
		r.opts.ManyRows = maxManyRowsMySQL
	}
	m := &MySQL{r: r, cfg: cfg, rows: r.id + "_rows", blobs: r.id + "_blobs"}
	s, err := m.connect(ctx, r.id+"_setup")
	if err != nil {
		return nil, fmt.Errorf("mixload: connect: %w", err)
	}
	defer s.close()
	var packet int64
	if err := s.conn.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		return nil, fmt.Errorf("mixload: max_allowed_packet: %w", err)
	}
	if need := int64(r.opts.LargeValue) + 1<<20; packet < need {
		return nil, fmt.Errorf("mixload: the server's max_allowed_packet is %d; large values of %d bytes need at least %d", packet, r.opts.LargeValue, need)
	}
	// No unique key on purpose: a row relayed twice must show up as two
	// rows.
	for _, sql := range []string{
		fmt.Sprintf("CREATE TABLE %s (session VARCHAR(64) NOT NULL, seq INT NOT NULL, payload BLOB NOT NULL, KEY (session, seq)) ENGINE=InnoDB", m.rows),
		fmt.Sprintf("CREATE TABLE %s (session VARCHAR(64) NOT NULL, seq INT NOT NULL, v LONGBLOB NOT NULL, KEY (session, seq)) ENGINE=InnoDB", m.blobs),
	} {
		if _, err := s.conn.ExecContext(ctx, sql); err != nil {
			return nil, fmt.Errorf("mixload: set up tables: %w", err)
		}
	}
	return m, nil
}

// Run runs the workload for Options.Duration (or until ctx ends), then
// checks everything it did.
func (m *MySQL) Run(ctx context.Context) *Report {
	r := m.r
	o := r.opts
	start := time.Now()
	// ctx ending stops new work early, as the duration's end does; what
	// is in flight still finishes (or is reported hung) under the run's
	// own limit, so the checks run either way.
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Duration+3*o.OpTimeout+time.Minute)
	defer cancel()
	r.ctx = hard
	setupConnects := r.st.connects.Load()
	rep := &Report{Title: fmt.Sprintf("mixload mysql: %d long sessions, %d short-session workers, a KILL QUERY pair",
		o.LongSessions, o.ShortWorkers)}
	var workers []*actor
	for i := range o.LongSessions {
		workers = append(workers, r.spawn(fmt.Sprintf("long session %d", i), func(a *actor) { m.long(a, i) }))
	}
	for i := range o.ShortWorkers {
		workers = append(workers, r.spawn(fmt.Sprintf("short-session worker %d", i), func(a *actor) { m.shortWorker(a, i) }))
	}
	workers = append(workers, r.spawn("kill pair", m.killPair))
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
	}
	close(r.stop)
	r.log.Info("mixload: time is up; waiting for sessions to finish", "engine", "mysql")
	r.await(workers, 2*o.OpTimeout)
	if r.st.hung.Load() > 0 {
		cancel()
		r.await(workers, 30*time.Second)
	}
	m.verify(rep)
	rep.Connections = r.st.connects.Load() - setupConnects
	rep.info("connections made (after setup)", "%d", rep.Connections)
	r.finish(rep, start)
	return rep
}

// Cleanup drops the run's tables.
func (m *MySQL) Cleanup(ctx context.Context) error {
	s, err := m.connect(ctx, m.r.id+"_cleanup")
	if err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	defer s.close()
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("DROP TABLE %s, %s", m.rows, m.blobs)); err != nil {
		return fmt.Errorf("mixload: cleanup: %w", err)
	}
	return nil
}

func (m *MySQL) verify(rep *Report) {
	r := m.r
	st := &r.st
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.OpTimeout)
	defer cancel()
	wantRows, wantSum := r.ledger.totals()
	var gotRows, dups, blobsLeft int64
	var gotSum string
	s, err := m.connect(ctx, r.id+"_verify")
	if err == nil {
		err = s.conn.QueryRowContext(ctx, fmt.Sprintf(
			`SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT(session, ':', seq, ':', payload)), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR) FROM %s`,
			m.rows)).Scan(&gotRows, &gotSum)
		if err == nil {
			err = s.conn.QueryRowContext(ctx, fmt.Sprintf(
				`SELECT COUNT(*) FROM (SELECT 1 FROM %s GROUP BY session, seq HAVING COUNT(*) > 1) d`, m.rows)).Scan(&dups)
		}
		if err == nil {
			err = s.conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %s`, m.blobs)).Scan(&blobsLeft)
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
	rep.atLeast("bulk loads (multi-row INSERTs) read back byte-equal", st.bulkBatches.Load(), 1)
	rep.info("bulk bytes up / down", "%s / %s", mib(st.bulkBytesUp.Load()), mib(st.bulkBytesDown.Load()))
	rep.atLeast("large values up (LONGBLOB) and back", st.largeUp.Load(), 1)
	rep.atLeast("large values generated down", st.largeDown.Load(), 1)
	rep.info("large-value bytes", "%s", mib(st.largeBytes.Load()))
	rep.equal("large values left behind", blobsLeft, 0)
	rep.atLeast("many-row results", st.manyResults.Load(), 1)
	rep.info("rows in many-row results", "%d", st.manyRows.Load())
	rep.atLeast("multi-statement queries", st.multiStmt.Load(), 1)
	rep.info("batches deleted to bound the table", "%d", st.trims.Load())
	rep.atLeast("KILL QUERY sent", st.cancelsSent.Load(), 1)
	rep.equal("statements killed (1317) = KILL QUERY sent", st.cancelled.Load(), st.cancelsSent.Load())
	rep.equal("killed statements that finished anyway", st.cancelMissed.Load(), 0)
	rep.atLeast("sessions ended by KILL CONNECTION", st.terminated.Load(), 1)
	rep.equal("of them, the next query failed at once", st.terminatedSeen.Load(), st.terminated.Load())
}

// driverLog takes go-sql-driver's messages into the run's log.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) { d.log.Debug("mixload: go-sql-driver: " + fmt.Sprint(v...)) }
