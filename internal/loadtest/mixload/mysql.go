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
	sql   statements
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
	m.sql = statements{
		insertBlob: fmt.Sprintf("INSERT INTO %s (session, seq, v) VALUES (?, ?, ?)", m.blobs),
		blobWhere:  fmt.Sprintf(" FROM %s WHERE session = ? AND seq = ?", m.blobs),
		repeat:     "SELECT ?, REPEAT(?, ?)",
		// Five digit tables cross-joined: see maxManyRowsMySQL.
		manyRows: fmt.Sprintf("SELECT ?, n, MD5(CONCAT(?, ':', n)) FROM (SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 1 AS n FROM %[1]s a, %[1]s b, %[1]s c, %[1]s e, %[1]s f) g WHERE n <= ? ORDER BY n", digits),
		trim:     fmt.Sprintf("DELETE FROM %s WHERE session = ? AND seq BETWEEN ? AND ?", m.rows),
	}
	// No unique key on purpose: a row relayed twice must show up as two
	// rows.
	err := createTables(ctx, r, m.connect, func(ctx context.Context, s *mySession) error {
		var packet int64
		if err := s.conn.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
			return fmt.Errorf("mixload: max_allowed_packet: %w", err)
		}
		if need := int64(r.opts.LargeValue) + 1<<20; packet < need {
			return fmt.Errorf("mixload: the server's max_allowed_packet is %d; large values of %d bytes need at least %d", packet, r.opts.LargeValue, need)
		}
		return nil
	},
		fmt.Sprintf("CREATE TABLE %s (session VARCHAR(64) NOT NULL, seq INT NOT NULL, payload BLOB NOT NULL, KEY (session, seq)) ENGINE=InnoDB", m.rows),
		fmt.Sprintf("CREATE TABLE %s (session VARCHAR(64) NOT NULL, seq INT NOT NULL, v LONGBLOB NOT NULL, KEY (session, seq)) ENGINE=InnoDB", m.blobs),
	)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Run runs the workload for Options.Duration (or until ctx ends), then
// checks everything it did.
func (m *MySQL) Run(ctx context.Context) *Report {
	o := m.r.opts
	return m.r.runWorkload(ctx, workload{
		engine:      "mysql",
		title:       fmt.Sprintf("mixload mysql: %d long sessions, %d short-session workers, a KILL QUERY pair", o.LongSessions, o.ShortWorkers),
		pairName:    "kill pair",
		long:        m.long,
		shortWorker: m.shortWorker,
		pair:        m.killPair,
		verify:      m.verify,
	})
}

// Cleanup drops the run's tables.
func (m *MySQL) Cleanup(ctx context.Context) error {
	return dropTables(ctx, m.r, m.connect, m.rows, m.blobs)
}

// mySumSQL is the table's checksum: the sum of rowHash over its rows.
const mySumSQL = `SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT(session, ':', seq, ':', payload)), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR) FROM %s`

// verify compares the tables and the kills with what the run did, and
// fills rep.
func (m *MySQL) verify(rep *Report) {
	m.r.workChecks(rep, readTables(m.r, m.connect, mySumSQL, m.rows, m.blobs), checkWords{
		bulk:           "bulk loads (multi-row INSERTs) read back byte-equal",
		bulkBytes:      "bulk bytes up / down",
		largeUp:        "large values up (LONGBLOB) and back",
		multiStmt:      "multi-statement queries",
		cancels:        "KILL QUERY sent",
		cancelled:      "statements killed (1317) = KILL QUERY sent",
		cancelMissed:   "killed statements that finished anyway",
		terminated:     "sessions ended by KILL CONNECTION",
		terminatedSeen: "of them, the next query failed at once",
	})
}

// driverLog takes go-sql-driver's messages into the run's log.
type driverLog struct{ log *slog.Logger }

func (d driverLog) Print(v ...any) { d.log.Debug("mixload: go-sql-driver: " + fmt.Sprint(v...)) }
