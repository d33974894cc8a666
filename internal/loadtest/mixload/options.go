package mixload

import (
	"log/slog"
	"time"
)

// Options size a run. Zero fields take the defaults of withDefaults, which
// suit the bounded run in CI; the bench raises the sizes.
type Options struct {
	// Duration is how long sessions keep starting new work; in-flight work
	// then finishes and the run is checked.
	Duration time.Duration
	// LongSessions are held for the whole run.
	LongSessions int
	// ShortWorkers each open short sessions one after another.
	ShortWorkers int
	// Listeners are Postgres sessions that LISTEN for every notification
	// (ignored for MySQL).
	Listeners int
	// CopyRows is the number of rows in one bulk load: a COPY FROM STDIN
	// batch on Postgres, the rows of the multi-row INSERTs of one bulk
	// operation on MySQL. About 140 bytes a row.
	CopyRows int
	// InsertRows is how many rows one multi-row INSERT carries on MySQL.
	InsertRows int
	// LargeValue is the size in bytes of the large values sent up and
	// generated down.
	LargeValue int
	// ManyRows is the size of the many-row results.
	ManyRows int
	// KeepRows is how many rows a long session keeps in the table before it
	// deletes its oldest batches: it bounds the tables in long runs.
	KeepRows int
	// OpTimeout bounds one operation; an operation that takes longer is
	// reported as hung.
	OpTimeout time.Duration
	// Seed makes the choice of operations repeatable.
	Seed uint64
	// CLI is the path of psql (Postgres) or mariadb/mysql (MySQL); when set,
	// every CLIEvery-th short session is run by it, so libpq and the
	// MariaDB client library are in the mix. Empty: Go drivers only.
	CLI      string
	CLIEvery int
	// Logger hears progress and every failure as it happens; nil: silent.
	Logger *slog.Logger
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	def(&o.LongSessions, 4)
	def(&o.ShortWorkers, 3)
	def(&o.Listeners, 2)
	def(&o.CopyRows, 5000)
	def(&o.InsertRows, 500)
	def(&o.LargeValue, 2<<20)
	def(&o.ManyRows, 20000)
	def(&o.KeepRows, 30000)
	def(&o.CLIEvery, 6)
	if o.OpTimeout <= 0 {
		o.OpTimeout = 60 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
