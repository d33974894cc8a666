package mixload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// stats are the run's counters, shared by all sessions.
type stats struct {
	connects       atomic.Int64 // TCP connections made to the proxy (sessions, cancels, CLI)
	opened, closed atomic.Int64 // sessions logged in, and closed by us
	shortSessions  atomic.Int64
	cliSessions    atomic.Int64
	ops            atomic.Int64
	identity       atomic.Int64 // identity checks passed
	rolledBack     atomic.Int64 // rows inserted then rolled back
	rolledBackSeen atomic.Int64 // of those, rows still visible afterwards
	bulkBatches    atomic.Int64 // COPY batches / bulk INSERT operations
	bulkBytesUp    atomic.Int64
	bulkBytesDown  atomic.Int64
	multiStmt      atomic.Int64 // multi-statement queries
	pipelines      atomic.Int64 // pgx batches: many statements before any answer
	largeUp        atomic.Int64
	largeDown      atomic.Int64
	largeBytes     atomic.Int64
	manyResults    atomic.Int64
	manyRows       atomic.Int64
	trims          atomic.Int64
	cancelsSent    atomic.Int64 // CancelRequests / KILL QUERYs sent
	cancelled      atomic.Int64 // statements that ended with the cancel's error
	cancelMissed   atomic.Int64 // statements that finished although cancelled
	bogusCancels   atomic.Int64 // CancelRequests with keys nobody holds
	terminated     atomic.Int64 // sessions ended by the server (pg_terminate_backend, KILL CONNECTION)
	terminatedSeen atomic.Int64 // of those, sessions whose next query failed as it should

	errors atomic.Int64 // driver, network and server errors nobody asked for
	wrong  atomic.Int64 // answers that were not this session's or not right
	hung   atomic.Int64 // sessions still busy when the run had to end
}

// run is the state every session of one run shares.
type run struct {
	id     string // unique per run: names tables, tags and the channel
	opts   Options
	log    *slog.Logger
	ctx    context.Context // hard limit: the caller's, plus the run's own cap
	stop   chan struct{}   // closed when no new work may start
	st     stats
	ledger *ledger
	live   *liveSessions

	mu       sync.Mutex
	problems []string
}

// newRunID is short, unique and safe in names: lower-case hex.
func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "m" + hex.EncodeToString(b)
}

func newRun(o Options) *run {
	o = o.withDefaults()
	return &run{id: newRunID(), opts: o, log: o.Logger, stop: make(chan struct{}), ledger: newLedger(), live: newLiveSessions()}
}

// stopping says whether the run's time is up.
func (r *run) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// opCtx bounds one operation.
func (r *run) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.opts.OpTimeout)
}

const maxProblems = 30

func (r *run) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Error("mixload: " + msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < maxProblems {
		r.problems = append(r.problems, msg)
	}
}

// fail records an error nobody asked for: the session cannot trust its
// connection any more and stops.
func (r *run) fail(who, op string, err error) {
	r.st.errors.Add(1)
	if errors.Is(err, context.DeadlineExceeded) {
		r.problem("%s: %s: no answer within %s (hung?): %v", who, op, r.opts.OpTimeout, err)
		return
	}
	r.problem("%s: %s: %v", who, op, err)
}

// wrongAnswer records an answer that was not right for this session.
func (r *run) wrongAnswer(who, op, format string, args ...any) {
	r.st.wrong.Add(1)
	r.problem("%s: %s: wrong answer: %s", who, op, fmt.Sprintf(format, args...))
}

// actor is one goroutine of the run (a session, or a worker opening short
// sessions). op says what it is doing, to name a hung one.
type actor struct {
	name string
	op   atomic.Value // string
	done chan struct{}
}

func (a *actor) doing(op string) { a.op.Store(op) }

// spawn starts f as an actor.
func (r *run) spawn(name string, f func(a *actor)) *actor {
	a := &actor{name: name, done: make(chan struct{})}
	a.doing("starting")
	go func() {
		defer close(a.done)
		f(a)
	}()
	return a
}

// await waits for actors until limit, and reports the ones still running
// as hung.
func (r *run) await(actors []*actor, limit time.Duration) {
	deadline := time.After(limit)
	for _, a := range actors {
		select {
		case <-a.done:
		case <-deadline:
			for _, b := range actors {
				select {
				case <-b.done:
				default:
					r.st.hung.Add(1)
					r.problem("%s hung in %q at the end of the run", b.name, b.op.Load())
				}
			}
			return
		}
	}
}

// liveSessions maps backend ids (Postgres pid, MySQL connection id) of
// open sessions to their tags: two open sessions may never share one, or
// one session's traffic is going to another's backend.
type liveSessions struct {
	mu   sync.Mutex
	byID map[int64]string
}

func newLiveSessions() *liveSessions { return &liveSessions{byID: map[int64]string{}} }

// open registers id for tag; it fails if another open session has it.
func (l *liveSessions) open(id int64, tag string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if other, taken := l.byID[id]; taken {
		return fmt.Errorf("backend id %d is already the backend of open session %s", id, other)
	}
	l.byID[id] = tag
	return nil
}

func (l *liveSessions) close(id int64, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID[id] == tag {
		delete(l.byID, id)
	}
}

// openTags lists sessions still registered, for a report.
func (l *liveSessions) openTags() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var tags []string
	for _, t := range l.byID {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return tags
}

// sessionChecks are the report lines every engine shares.
func (r *run) sessionChecks(rep *Report) {
	st := &r.st
	rep.equal("sessions opened = closed", st.closed.Load(), st.opened.Load())
	rep.equal("sessions hung at the end", st.hung.Load(), 0)
	rep.equal("sessions still registered open", int64(len(r.live.openTags())), 0)
	rep.atLeast("short sessions", st.shortSessions.Load(), 1)
	rep.info("of them through the CLI", "%d", st.cliSessions.Load())
	rep.info("operations", "%d", st.ops.Load())
	rep.atLeast("identity checks passed", st.identity.Load(), 1)
	rep.equal("wrong answers (other session's, changed bytes)", st.wrong.Load(), 0)
	rep.equal("errors nobody asked for", st.errors.Load(), 0)
}

// finish fills a report's common parts.
func (r *run) finish(rep *Report, start time.Time) {
	rep.Elapsed = time.Since(start)
	r.mu.Lock()
	rep.Problems = append(rep.Problems, r.problems...)
	r.mu.Unlock()
}

// mib formats bytes.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
