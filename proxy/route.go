package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/topology"
)

// Destination is the instance one routed login goes to.
type Destination struct {
	Host     string // the instance endpoint: the token is signed and TLS verified for it
	Port     int
	DialAddr string // what is dialed: Host:Port, or the instance's dial address
}

// HostPort is d's host:port, as the login-rate guard, pool keys and
// DropHost name an instance.
func (d Destination) HostPort() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// Rerouter is implemented by the Handshake of an engine whose logins can
// go to another instance than its Target: an Aurora cluster's writer or a
// reader, by its instance endpoint.
type Rerouter interface {
	LoginAt(ctx context.Context, d Destination, user, token string) (Session, error)
}

// Prober is implemented by an engine that can read an Aurora cluster's
// topology: it logs in to d as user with token and runs the topology SQL.
type Prober interface {
	Probe(ctx context.Context, d Destination, user, database, token string) (topology.Probe, error)
}

// RouteObserver hears about the router's events (metrics); an Observer
// may implement it.
type RouteObserver interface {
	WriterChanged()
	DemotedCut()
	FailoverWait(d time.Duration)
}

// ErrDemoted ends a session whose instance was the writer when the
// session began and has been demoted by a failover: the relay's farewell
// tells the client (PostgreSQL FATAL 57P01, MySQL 1053), which reconnects.
var ErrDemoted = errors.New("the Aurora writer this session was on was demoted by a failover")

// DemotedFailure is what a session cut by a demotion is told.
func DemotedFailure() *failure.Failure {
	return failure.Wrap(failure.Upstream, ErrDemoted,
		"the Aurora cluster failed over: the instance this session was on is no longer the writer, so the proxy ended the session",
		"connect again: new connections go to the new writer")
}

// Router sends an Aurora cluster's new connections to the current writer's
// instance endpoint, or (Reader) to the reader with the fewest sessions,
// whatever the cluster's DNS says; it holds logins while no writer is
// confirmed, and ends the sessions on a writer once another is confirmed.
// Settings.Router set turns it on; Run must be running.
type Router struct {
	Cluster  string // the cluster endpoint (writer, reader or custom) configured
	Port     int
	Dial     string // where the cluster endpoint itself is dialed (its dial address)
	Reader   bool   // route to the readers (a -ro- endpoint, route: reader)
	Wait     time.Duration
	Refresh  time.Duration     // the normal topology cadence; 0: 30 s
	Fast     time.Duration     // the cadence while suspecting; 0: 100 ms
	DialAddr map[string]string // instance endpoint -> host:port dialed
	Tokens   TokenSource
	Region   string
	Prober   Prober
	// Guard, when set, counts the monitor's logins against each
	// instance's login rate (LoginGuard.Count): they never wait.
	Guard *LoginGuard
	// Pool, when set (session reuse), loses the sessions parked on a
	// writer when it is demoted.
	Pool     *Pool
	Log      *slog.Logger
	Observer RouteObserver // nil: none

	once     sync.Once
	mon      *topology.Monitor
	mu       sync.Mutex
	user, db string // the monitor's login: db_user or the first client's, and the first client's database
	userSet  chan struct{}
	writer   string                          // the last confirmed writer's server id
	sessions map[string]map[*routedConn]bool // instance host -> open sessions (true: on it as the writer)
	counts   map[string]int                  // instance host -> sessions open or logging in
	fallback string                          // the last writer logged as the readers' fallback
	// downHost is a writer instance a login to which the network broke
	// off at downAt: it is not used again until a view taken after that
	// confirms it (else every held login would hammer a restarting host).
	downHost string
	downAt   time.Time
	lastErr  atomic.Pointer[error]
	// unreadOnce logs the fall back to the endpoint's DNS once.
	unreadOnce sync.Once
}

// ReadOnlySession is a Session that knows from its login whether its
// server refuses writes (PostgreSQL 14 and later report
// default_transaction_read_only and in_hot_standby as it starts).
type ReadOnlySession interface {
	ReadOnly() bool
}

// errWriterReadOnly: a login routed to the writer found its instance
// read-only, as the old writer is once a failover has demoted it.
var errWriterReadOnly = errors.New("the instance the topology names the writer answered read-only: a failover is under way")

// errTopologyUnread says the cluster's topology has never been read and
// the last try failed: Settings.login then logs in to the endpoint by its
// DNS name, as without routing.
var errTopologyUnread = errors.New("the Aurora topology has not been read")

func (r *Router) init() {
	r.once.Do(func() {
		if r.Log == nil {
			r.Log = slog.New(slog.DiscardHandler)
		}
		r.Log = r.Log.With("cluster", r.Cluster)
		if r.Wait <= 0 {
			r.Wait = 10 * time.Second
		}
		// The monitor waits for the first client: its user (db_user when
		// set, as every client's) and database are the monitor's login.
		r.userSet = make(chan struct{})
		r.sessions = map[string]map[*routedConn]bool{}
		r.counts = map[string]int{}
		r.mon = &topology.Monitor{Poll: r.poll, Normal: r.Refresh, Fast: r.Fast, Log: r.Log, OnView: r.onView}
	})
}

// Run keeps the topology current until ctx ends.
func (r *Router) Run(ctx context.Context) {
	r.init()
	r.mon.Run(ctx)
}

// instance is the destination of server id.
func (r *Router) instance(id string) (Destination, error) {
	host, err := topology.InstanceHost(r.Cluster, id)
	if err != nil {
		return Destination{}, err
	}
	d := Destination{Host: host, Port: r.Port, DialAddr: r.DialAddr[host]}
	if d.DialAddr == "" {
		d.DialAddr = net.JoinHostPort(host, strconv.Itoa(r.Port))
	}
	return d, nil
}

// probeTimeout bounds one look at one instance.
const probeTimeout = 3 * time.Second

// poll looks at the topology through the first instance that answers
// (the writer, the readers, then the cluster endpoint itself), and
// confirms the writer it names: it must say it is that instance and be
// writable.
func (r *Router) poll(ctx context.Context) (topology.View, error) {
	select {
	case <-r.userSet: // the monitor logs in as db_user, else the first client's user
	case <-ctx.Done():
		return topology.View{}, ctx.Err()
	}
	r.mu.Lock()
	user, db := r.user, r.db
	r.mu.Unlock()
	view, _, _ := r.mon.Current()
	var tries []Destination
	for _, id := range append([]string{view.Writer}, view.Readers...) {
		if d, err := r.instance(id); id != "" && err == nil {
			tries = append(tries, d)
		}
	}
	tries = append(tries, Destination{Host: r.Cluster, Port: r.Port, DialAddr: r.Dial})
	var lastErr error
	for _, d := range tries {
		p, err := r.probe(ctx, d, user, db)
		if err != nil {
			lastErr = err
			continue
		}
		now := time.Now()
		w, readers := topology.Members(p.Rows, now)
		v := topology.View{Readers: readers, At: now}
		switch {
		case w == "":
		case w == p.Self:
			if !p.ReadOnly {
				v.Writer = w
			}
		default:
			wd, err := r.instance(w)
			if err != nil {
				return v, err
			}
			if wp, err := r.probe(ctx, wd, user, db); err == nil && wp.Self == w && !wp.ReadOnly {
				v.Writer = w
			}
		}
		return v, nil
	}
	r.lastErr.Store(&lastErr)
	return topology.View{}, lastErr
}

func (r *Router) probe(ctx context.Context, d Destination, user, db string) (topology.Probe, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	tok, err := r.Tokens.Token(ctx, d.Host, d.Port, r.Region, user)
	if err != nil {
		return topology.Probe{}, err
	}
	if r.Guard != nil {
		r.Guard.Count(d.HostPort())
	}
	p, err := r.Prober.Probe(ctx, d, user, db, tok)
	if err != nil {
		return p, fmt.Errorf("topology of %s through %s: %w", r.Cluster, d.Host, err)
	}
	return p, nil
}

// onView follows the monitor's views: a confirmed writer other than the
// last one demotes the last one, whose writer sessions are cut.
func (r *Router) onView(_, cur topology.View) {
	if cur.Writer == "" {
		return
	}
	r.mu.Lock()
	old := r.writer
	r.writer = cur.Writer
	var cut []*routedConn
	if old != "" && old != cur.Writer {
		if d, err := r.instance(old); err == nil {
			for c, asWriter := range r.sessions[d.Host] {
				if asWriter {
					cut = append(cut, c)
				}
			}
		}
	}
	r.mu.Unlock()
	if old == cur.Writer {
		return
	}
	if old != "" {
		r.Log.Warn("Aurora writer changed; new connections go to the new writer", "writer", cur.Writer, "was", old, "sessions_cut", len(cut))
		if r.Observer != nil {
			r.Observer.WriterChanged()
		}
	}
	for _, c := range cut {
		c.demote()
		if r.Observer != nil {
			r.Observer.DemotedCut()
		}
	}
	if r.Pool != nil && old != "" {
		// Parked on the demoted writer or on the promoted reader (Aurora
		// restarts both): closed now, not handed over dead, nor kept until
		// their idle timeout.
		for _, id := range []string{old, cur.Writer} {
			if d, err := r.instance(id); err == nil {
				if n := r.Pool.DropHost(d.HostPort()); n > 0 {
					r.Log.Info("parked sessions closed after the writer changed", "instance", d.Host, "sessions", n)
				}
			}
		}
	}
}

// isWriter reports whether host is the confirmed writer's instance.
func (r *Router) isWriter(host string) bool {
	r.mu.Lock()
	w := r.writer
	r.mu.Unlock()
	d, err := r.instance(w)
	return err == nil && d.Host == host
}

// routesTo reports whether new connections routed as writer (else as
// readers) go to host now: the pool keeps a routed key's minimum only
// there.
func (r *Router) routesTo(host string, writer bool) bool {
	if writer {
		return r.isWriter(host)
	}
	v, _, _ := r.mon.Current()
	readers := 0
	for _, id := range v.Readers {
		d, err := r.instance(id)
		if err != nil {
			continue
		}
		if d.Host == host {
			return true
		}
		readers++
	}
	// No reader: reader connections go to the writer (targetLocked).
	return readers == 0 && r.isWriter(host)
}

// routeTicket is one routed connection's place on an instance.
type routeTicket struct {
	r      *Router
	dest   Destination // the instance
	writer bool
	conn   *routedConn
	once   sync.Once
}

// pick chooses the destination for a new connection of user's, waiting
// until deadline while no writer is confirmed.
func (r *Router) pick(ctx context.Context, who Who, deadline time.Time) (Destination, *routeTicket, error) {
	r.init()
	r.mu.Lock()
	if r.user == "" {
		r.user = who.User
		close(r.userSet)
	}
	if r.db == "" {
		r.db = who.Database
	}
	r.mu.Unlock()
	start := time.Now()
	waited := false
	for {
		v, have, changed := r.mon.Current()
		if !have && r.lastErr.Load() != nil {
			// Never read, and reading failed: not Aurora after all (an RDS
			// Multi-AZ DB cluster has cluster- names too), or the user may
			// not run the topology query. The endpoint's DNS, as without
			// routing, rather than holding every login.
			r.unreadOnce.Do(func() {
				r.Log.Warn("cannot read the Aurora cluster's topology: new connections go to the endpoint by its DNS name until it can be read (doctor's aurora topology step says why)", "err", *r.lastErr.Load())
			})
			return Destination{}, nil, errTopologyUnread
		}
		v = r.usable(v)
		if have && (v.Writer != "" || r.Reader && len(v.Readers) > 0) {
			d, t, err := r.choose(v)
			if waited && r.Observer != nil {
				r.Observer.FailoverWait(time.Since(start))
			}
			return d, t, err
		}
		waited = true
		wait := time.Until(deadline)
		if wait <= 0 {
			return Destination{}, nil, r.noWriter(have)
		}
		// A view that only confirms again a writer that was down is no
		// change: look again every so often.
		tm := time.NewTimer(min(wait, 100*time.Millisecond))
		select {
		case <-changed:
			tm.Stop()
		case <-ctx.Done():
			tm.Stop()
			return Destination{}, nil, ctx.Err()
		case <-tm.C:
		}
	}
}

// usable is v without a writer that is down (see downHost) and that no
// view since has confirmed.
func (r *Router) usable(v topology.View) topology.View {
	r.mu.Lock()
	down, at := r.downHost, r.downAt
	r.mu.Unlock()
	if down == "" || v.Writer == "" || v.At.After(at) {
		return v
	}
	if d, err := r.instance(v.Writer); err == nil && d.Host == down {
		v.Writer = ""
	}
	return v
}

// choose takes a place on the writer, or the reader with the fewest
// sessions.
func (r *Router) choose(v topology.View) (Destination, *routeTicket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, writer := r.targetLocked(v)
	if r.Reader {
		if writer && r.fallback != v.Writer {
			r.fallback = v.Writer
			r.Log.Warn("no reader in the Aurora cluster: reader connections go to the writer", "writer", v.Writer)
		} else if !writer {
			r.fallback = ""
		}
	}
	d, err := r.instance(id)
	if err != nil {
		return d, nil, err
	}
	r.counts[d.Host]++
	return d, &routeTicket{r: r, dest: d, writer: writer && !r.Reader}, nil
}

// targetLocked is the instance a new connection goes to in v: the
// writer, or (Reader) the reader with the fewest sessions, the writer
// when there is none; writer says which. r.mu is held.
func (r *Router) targetLocked(v topology.View) (id string, writer bool) {
	id, writer = v.Writer, true
	if !r.Reader {
		return id, writer
	}
	best := -1
	for _, rid := range v.Readers {
		d, err := r.instance(rid)
		if err != nil {
			continue
		}
		if n := r.counts[d.Host]; best < 0 || n < best {
			best, id, writer = n, rid, false
		}
	}
	return id, writer
}

func (r *Router) noWriter(have bool) error {
	why := "the cluster's topology has not been read yet"
	if have {
		why = "no instance reports itself writer and writable (a failover is under way)"
	}
	if p := r.lastErr.Load(); p != nil && *p != nil {
		why += "; the last topology query failed: " + (*p).Error()
	}
	return failure.New(failure.Upstream,
		fmt.Sprintf("no writer of the Aurora cluster %s was confirmed within %s: %s", r.Cluster, r.Wait, why),
		"connect again in a few seconds; if it persists, check the cluster's events, and that the IAM user can log in to its instances and read the topology (aurora_replica_status() on PostgreSQL, information_schema.replica_host_status on MySQL; rds-iam-proxy doctor checks both)")
}

// failed says a login to the ticket's instance failed with err: when the
// connection itself failed (not the login's words), a failover may be
// under way.
func (t *routeTicket) failed(err error) bool {
	if !connectionLevel(err) && !errors.Is(err, errWriterReadOnly) {
		return false
	}
	if t.writer {
		t.r.mu.Lock()
		t.r.downHost, t.r.downAt = t.dest.Host, time.Now()
		t.r.mu.Unlock()
	}
	t.r.mon.Suspect()
	return true
}

// connectionLevel reports whether err is the network's (a refused or
// reset connection, an end of stream) rather than the server's answer.
func connectionLevel(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// follow registers a logged-in session's upstream with the router: a
// session on the writer is cut when the writer is demoted.
func (t *routeTicket) follow(up net.Conn) net.Conn {
	if t == nil {
		return up
	}
	c := &routedConn{Conn: up, t: t}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.r.sessions[t.dest.Host] == nil {
		t.r.sessions[t.dest.Host] = map[*routedConn]bool{}
	}
	t.r.sessions[t.dest.Host][c] = t.writer
	t.conn = c
	return c
}

// done gives the ticket's place back; safe on nil and more than once.
func (t *routeTicket) done() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.r.mu.Lock()
		defer t.r.mu.Unlock()
		t.r.counts[t.dest.Host]--
		if t.conn != nil {
			delete(t.r.sessions[t.dest.Host], t.conn)
		}
	})
}

// routedConn is a routed session's upstream: a demotion ends its reads
// with ErrDemoted (the relay's farewell tells the client), and a session
// on the writer that the upstream breaks off raises a suspicion of
// failover.
type routedConn struct {
	net.Conn
	t       *routeTicket
	demoted atomic.Bool
}

func (c *routedConn) Read(p []byte) (int, error) {
	if c.demoted.Load() {
		return 0, ErrDemoted // demoted before the relay cleared the deadline
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		if c.demoted.Load() {
			return n, ErrDemoted
		}
		if c.t.writer && !errors.Is(err, net.ErrClosed) && !IsTimeout(err) && connectionLevel(err) && !errors.Is(err, io.EOF) {
			c.t.r.mon.Suspect()
		}
	}
	return n, err
}

// demote ends the session's reads now: the relay's down direction sees
// ErrDemoted.
func (c *routedConn) demote() {
	c.demoted.Store(true)
	c.Conn.SetReadDeadline(time.Now())
}

// routedLogin is Settings.login for a cluster: pick the instance, sign for
// it, log in there; a login the network broke (the writer going down) is
// retried on the writer the topology confirms next, within the failover
// wait.
func (s *Settings) routedLogin(l *Login, h Handshake, user string) (Session, error) {
	r := s.Router
	r.init()
	rh, ok := h.(Rerouter)
	if !ok {
		return nil, errors.New("this engine cannot log in to an Aurora cluster's instances")
	}
	deadline := time.Now().Add(r.Wait)
	for {
		d, t, err := r.pick(l.Ctx, Who{User: user, Database: h.Who().Database}, deadline)
		if err != nil {
			return nil, err
		}
		l.routedTo = d.HostPort()
		sess := s.reuse(l, h) // a session parked on that very instance
		if sess == nil {
			sess, err = s.loginAt(l, h, rh, d, user)
		}
		if err == nil && t.writer {
			if ro, ok := sess.(ReadOnlySession); ok && ro.ReadOnly() {
				// The topology is behind: the writer it names was demoted
				// (and came back read-only) while this login waited its
				// turn. As a broken login: wait for the next view.
				sess.Upstream().Close()
				sess, err = nil, errWriterReadOnly
			}
		}
		if err == nil && t.writer && !r.isWriter(d.Host) {
			// Demoted while this login went on: another try, on the new writer.
			sess.Upstream().Close()
			t.done()
			continue
		}
		if err == nil {
			l.route = t
			return sess, nil
		}
		t.done()
		if !t.failed(err) || time.Now().After(deadline) || l.Ctx.Err() != nil {
			if errors.Is(err, errWriterReadOnly) {
				return nil, r.noWriter(true)
			}
			return nil, explainAt(l.target, d, user, err)
		}
		l.Log.Info("login to the Aurora writer broke off; waiting for the topology", "instance", d.Host, "err", err)
		_, _, changed := r.mon.Current()
		tm := time.NewTimer(min(250*time.Millisecond, time.Until(deadline)))
		select {
		case <-changed:
		case <-tm.C:
		case <-l.Ctx.Done():
		}
		tm.Stop()
	}
}

// loginAt logs in to the instance d, in turn: RDS throttles IAM logins
// per instance, so the guard's key is the instance endpoint, and a
// throttled login gets one retry as an unrouted one does.
func (s *Settings) loginAt(l *Login, h Handshake, rh Rerouter, d Destination, user string) (Session, error) {
	release, sess, err := s.awaitTurn(l, h, d.HostPort())
	if err != nil || sess != nil {
		return sess, err
	}
	defer release()
	tok, err := s.Tokens.Token(l.Ctx, d.Host, d.Port, s.SigningRegion(), user)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(l.Ctx, s.ConnectTimeout)
	defer cancel()
	return s.retryLogin(cctx, l, d.Host, d.Port, user, tok, func(ctx context.Context, tok string) (Session, error) { return rh.LoginAt(ctx, d, user, tok) })
}

// explainAt explains a failed login to the instance d as Serve would
// explain one to the endpoint, but naming the instance (the host dialed,
// its address, the name TLS verified); what it does not know is left to
// Serve (the engine's own explanations).
func explainAt(t Target, d Destination, user string, err error) error {
	if _, ok := failure.As(err); ok {
		return err
	}
	t.Host, t.Port, t.DialAddr, t.User = d.Host, d.Port, d.DialAddr, user
	t.TLS.Host, t.TLS.ServerName, t.TLS.DialAddress = d.Host, "", d.DialAddr
	if f := ExplainLoginFailure(err, t); f != nil {
		return f
	}
	return err
}
