package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Engine names the database engine a query is for.
type Engine string

const (
	Postgres Engine = "postgres"
	MySQL    Engine = "mysql"
)

// Queries are what an Aurora engine is asked to learn its topology.
type Queries struct {
	// Topology lists the members: server id, whether it is the writer,
	// when its row was last updated.
	Topology string
	// Self is the server id of the instance the connection is on.
	Self string
	// ReadOnly says whether the connection's instance refuses writes.
	ReadOnly string
}

// SQL is every engine's topology SQL, in one table: the proxy's monitor
// runs exactly these, and the emulator's MySQL shim (when it has one)
// must answer exactly these.
var SQL = map[Engine]Queries{
	Postgres: {
		Topology: "SELECT server_id, session_id = 'MASTER_SESSION_ID' AS is_writer, last_update_timestamp FROM aurora_replica_status()",
		Self:     "SELECT aurora_db_instance_identifier()",
		ReadOnly: "SHOW transaction_read_only",
	},
	MySQL: {
		Topology: "SELECT server_id, session_id = 'MASTER_SESSION_ID', last_update_timestamp FROM information_schema.replica_host_status",
		Self:     "SELECT @@aurora_server_id",
		ReadOnly: "SELECT @@innodb_read_only",
	},
}

// StaleAfter is how old a member's row may be before it is left out
// (the writer's never is), as the AWS drivers do: a reader whose row has
// not been updated for that long is down or gone.
const StaleAfter = 5 * time.Minute

// Row is one member as the topology query returns it.
type Row struct {
	ServerID string
	Writer   bool
	Updated  time.Time
}

// Members reads rows into the claimed writer ("" when no row claims it)
// and the live readers, sorted. Rows older than StaleAfter at now are
// dropped unless the writer's.
func Members(rows []Row, now time.Time) (writer string, readers []string) {
	for _, r := range rows {
		switch {
		case r.Writer:
			writer = r.ServerID
		case !r.Updated.IsZero() && now.Sub(r.Updated) > StaleAfter:
		default:
			readers = append(readers, r.ServerID)
		}
	}
	slices.Sort(readers)
	readers = slices.DeleteFunc(slices.Compact(readers), func(id string) bool { return id == writer })
	return writer, readers
}

// Probe is what one connection to one instance says.
type Probe struct {
	Self     string // the instance's server id
	ReadOnly bool   // it refuses writes
	Rows     []Row  // the topology it reports
}

// ProbePostgres asks an Aurora PostgreSQL instance, on a logged-in
// connection, who it is, whether it is writable and what its topology is.
func ProbePostgres(ctx context.Context, c *pgconn.PgConn) (Probe, error) {
	q := SQL[Postgres]
	var p Probe
	results, err := c.Exec(ctx, q.Self+"; "+q.ReadOnly+"; "+q.Topology).ReadAll()
	if err != nil {
		return p, fmt.Errorf("topology query: %w", err)
	}
	if len(results) != 3 {
		return p, fmt.Errorf("topology query: %d results for 3 queries", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			return p, fmt.Errorf("topology query: %w", r.Err)
		}
	}
	if len(results[0].Rows) != 1 || len(results[1].Rows) != 1 {
		return p, fmt.Errorf("topology query: no server id or read-only state")
	}
	p.Self = string(results[0].Rows[0][0])
	p.ReadOnly = strings.EqualFold(string(results[1].Rows[0][0]), "on")
	for _, row := range results[2].Rows {
		if len(row) != 3 {
			return p, fmt.Errorf("topology query: a row of %d columns, want 3", len(row))
		}
		r := Row{ServerID: string(row[0]), Writer: string(row[1]) == "t"}
		if row[2] != nil {
			r.Updated, _ = parsePGTime(string(row[2]))
		}
		p.Rows = append(p.Rows, r)
	}
	return p, nil
}

// parsePGTime reads a timestamptz in PostgreSQL's default text output
// (ISO, with the session's offset).
func parsePGTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("topology: timestamp %q", s)
}

// MySQLQuery runs one SQL text on a logged-in MySQL connection and
// returns its rows as text, nil for NULL (mywire.Query on a session).
type MySQLQuery func(ctx context.Context, query string) ([][][]byte, error)

// ProbeMySQL asks an Aurora MySQL instance, through query, who it is,
// whether it is writable and what its topology is: the three
// SQL[MySQL] queries, each on its own (no multi-statement).
func ProbeMySQL(ctx context.Context, query MySQLQuery) (Probe, error) {
	q := SQL[MySQL]
	var p Probe
	one := func(sql string) (string, error) {
		rows, err := query(ctx, sql)
		if err != nil {
			return "", fmt.Errorf("topology query %q: %w", sql, err)
		}
		if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil {
			return "", fmt.Errorf("topology query %q: %d rows, want one value", sql, len(rows))
		}
		return string(rows[0][0]), nil
	}
	var err error
	if p.Self, err = one(q.Self); err != nil {
		return p, err
	}
	ro, err := one(q.ReadOnly)
	if err != nil {
		return p, err
	}
	switch ro {
	case "1", "ON":
		p.ReadOnly = true
	case "0", "OFF":
	default:
		return p, fmt.Errorf("topology query %q: %q is not 1 or 0", q.ReadOnly, ro)
	}
	rows, err := query(ctx, q.Topology)
	if err != nil {
		return p, fmt.Errorf("topology query: %w", err)
	}
	for _, row := range rows {
		if len(row) != 3 || row[0] == nil {
			return p, fmt.Errorf("topology query: a row of %d columns or without a server id, want 3", len(row))
		}
		r := Row{ServerID: string(row[0]), Writer: string(row[1]) == "1"}
		if row[2] != nil {
			// A row whose time does not parse is kept as one without a
			// time (as PostgreSQL's): better than dropping a live member.
			r.Updated, _ = parseMySQLTime(string(row[2]))
		}
		p.Rows = append(p.Rows, r)
	}
	return p, nil
}

// parseMySQLTime reads a DATETIME in MySQL's text output, which
// replica_host_status gives in UTC.
func parseMySQLTime(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("topology: timestamp %q", s)
	}
	return t, nil
}
