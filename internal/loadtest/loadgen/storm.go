package loadgen

import (
	"context"
	"fmt"
	"time"
)

// Kind is a client implementation. Each is what real applications use, so
// a storm meets the proxy the way they do (their timing, their packet
// boundaries, their TLS and auth choices).
type Kind string

// The client kinds.
const (
	// PGX is github.com/jackc/pgx/v5/pgconn, one goroutine per client.
	PGX Kind = "pgx"
	// Psycopg2 is libpq through psycopg2, threads of one python3 process.
	Psycopg2 Kind = "psycopg2"
	// MySQLdb is libmariadb (the library of the mariadb/mysql command-line
	// client) through python3-mysqldb, threads of one python3 process.
	MySQLdb Kind = "mysqldb"
	// GoMySQL is github.com/go-sql-driver/mysql, one goroutine per client.
	GoMySQL Kind = "go-mysql"
)

// Kinds lists every kind, Postgres first.
func Kinds() []Kind { return []Kind{PGX, Psycopg2, MySQLdb, GoMySQL} }

// Engine is "postgres" or "mysql".
func (k Kind) Engine() string {
	switch k {
	case MySQLdb, GoMySQL:
		return "mysql"
	default:
		return "postgres"
	}
}

// Target is where a storm's clients connect.
type Target struct {
	// Name labels the target in results ("proxy", "direct").
	Name string
	Host string
	// HostAddr, when set, is the IP address dialed instead of Host's
	// (libpq's hostaddr; PostgreSQL clients only), Host still naming the
	// server for TLS: an RDS name served on loopback.
	HostAddr string
	Port     int
	// User and Password log in; the proxy's listeners need no password.
	User, Password string
	Database       string
	// CAFile, when set, makes clients use TLS and verify the server's
	// certificate against these CAs, for Host (libpq and pgx verify-full;
	// go-sql-driver verifies chain and name; MySQLdb is given the CA, and
	// libmariadb checks the chain). Empty: plaintext, as to the proxy's
	// loopback listeners.
	CAFile string
}

// Storm is one storm: Rounds rounds, each of Clients clients started at the
// same moment; a round ends when every client has ended or hung.
type Storm struct {
	Kind    Kind
	Target  Target
	Clients int
	Rounds  int
	// Limit is how long one client may take, connect to close, before it
	// counts as hung and is abandoned. Default 45s: far above any healthy
	// login, even on a loaded machine, and below a test's patience.
	Limit time.Duration
	// Base is the first of the numbers the clients select: client i of
	// round r selects Base + r*Clients + i, so every answer is unique and
	// an answer delivered to the wrong session is seen. Default 1,000,000.
	Base int64
	// Python is the interpreter for the C library kinds; default
	// /usr/bin/python3 (Debian's, where python3-psycopg2 and
	// python3-mysqldb install).
	Python string
}

// DefaultLimit is Storm.Limit's default.
const DefaultLimit = 45 * time.Second

// grace is how long past its limit a Go client is waited for before it is
// abandoned as hung; its context ends at the limit, so a client still
// running past the grace ignored its context.
const grace = 5 * time.Second

func (s Storm) withDefaults() Storm {
	if s.Limit <= 0 {
		s.Limit = DefaultLimit
	}
	if s.Base == 0 {
		s.Base = 1_000_000
	}
	if s.Python == "" {
		s.Python = "/usr/bin/python3"
	}
	if s.Rounds <= 0 {
		s.Rounds = 1
	}
	return s
}

// Run runs the storm. An error means the storm could not run at all (a
// client library missing, a bad target); what the clients met is in the
// Result. ctx ending stops it between rounds, and abandons a round in
// flight (its clients are then counted as hung only if they were).
func Run(ctx context.Context, s Storm) (*Result, error) {
	s = s.withDefaults()
	if s.Clients <= 0 {
		return nil, fmt.Errorf("loadgen: %d clients", s.Clients)
	}
	var round func(ctx context.Context, r int) ([]Client, error)
	switch s.Kind {
	case PGX, GoMySQL:
		c, err := goClientFor(s)
		if err != nil {
			return nil, err
		}
		round = func(ctx context.Context, r int) ([]Client, error) { return goRound(ctx, s, r, c, grace), nil }
	case Psycopg2, MySQLdb:
		round = func(ctx context.Context, r int) ([]Client, error) { return pythonRound(ctx, s, r) }
	default:
		return nil, fmt.Errorf("loadgen: unknown client kind %q", s.Kind)
	}
	res := &Result{Storm: s}
	start := time.Now()
	for r := range s.Rounds {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("loadgen: stopped before round %d: %w", r+1, err)
		}
		cs, err := round(ctx, r)
		if err != nil {
			return res, err
		}
		res.Clients = append(res.Clients, cs...)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// clientFunc is one client of a Go kind: connect, select n, close. It
// returns the connect time and the answer.
type clientFunc func(ctx context.Context, n int64) (connect time.Duration, got string, err error)

// goRound runs one round of a Go kind: Clients goroutines released
// together, each bounded by Limit, and abandoned past Limit plus grace.
func goRound(ctx context.Context, s Storm, r int, c clientFunc, grace time.Duration) []Client {
	gate := make(chan struct{})
	results := make([]chan Client, s.Clients) // buffered: an abandoned client's send never blocks
	for i := range s.Clients {
		n := s.Base + int64(r*s.Clients+i)
		results[i] = make(chan Client, 1)
		go func() {
			<-gate
			cctx, cancel := context.WithTimeout(ctx, s.Limit)
			defer cancel()
			start := time.Now()
			connect, got, err := c(cctx, n)
			res := Client{Round: r, Index: i, Want: fmt.Sprint(n), Got: got, Connect: connect, Total: time.Since(start)}
			res.classify(err, cctx.Err() != nil && ctx.Err() == nil, s.Limit)
			results[i] <- res
		}()
	}
	start := time.Now()
	close(gate)
	deadline := time.NewTimer(s.Limit + grace)
	defer deadline.Stop()
	out := make([]Client, s.Clients)
	expired := false
	for i := range s.Clients {
		if !expired {
			select {
			case out[i] = <-results[i]:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		// Past the deadline, a client not done has ignored its context:
		// it is abandoned (its goroutine may end later; nobody reads it).
		select {
		case out[i] = <-results[i]:
		default:
			out[i] = Client{Round: r, Index: i, Want: fmt.Sprint(s.Base + int64(r*s.Clients+i)), Outcome: Hung,
				Total: time.Since(start), Err: "still running past its limit and its context; abandoned"}
		}
	}
	return out
}
