package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/conncut"
)

// Login is one client connection's login in progress, as the core runs it
// for every engine: counted, bounded by the handshake timeout (and the
// first-packet timeout until the client's first packet), holding its place
// in the server's handshake cap until it relays, and cut short (reads
// only, so the client can still be told why) when the drain starts or when
// it is evicted to make room. The engine gets it in Open and uses it at
// its protocol's points: Admit when the connection is about to cost
// something, FirstPacket when the client has spoken.
//
// The client's deadlines belong to the Login until Relaying, and every
// change to them goes through one conncut.Cut: a drain or an eviction
// that races the end of the login either lands before Relaying clears the
// deadlines or not at all, never after (the session would die at its
// first read).
type Login struct {
	Start time.Time
	// Client is the accepted connection.
	Client net.Conn
	// Ctx bounds the login: the handshake timeout, and the hard cut. It is
	// also cancelled when the login is evicted.
	Ctx context.Context
	// Drain is done when the server starts shutting down; failures are
	// explained against it (see HandshakeContext).
	Drain context.Context
	// Log names the upstream and the client.
	Log *slog.Logger

	cancel   context.CancelFunc
	reads    *conncut.Cut // the client's reads: cut by the drain or an eviction
	obs      Observer
	pass     *Pass
	limits   []*Limit
	release  func()        // gives back what Admit took
	deadline time.Time     // the handshake deadline
	first    time.Duration // the first-packet timeout
	upstream time.Duration
	settings *Settings
	engine   Engine
	target   Target
	route    *routeTicket // the Aurora instance this connection is on (Settings.Router), or nil
	// routedTo is that instance's host:port once the router chose it:
	// session reuse then parks and takes sessions of that instance only.
	routedTo string
	// guardBusy: the endpoint was busy when this login went (see
	// Settings.retryReason).
	guardBusy bool

	mu      sync.Mutex
	evicted *failure.Failure // why it was evicted, for the client; nil if it was not
}

// BeginLogin starts a client's login: ctx is the handler's.
func (s *Settings) BeginLogin(ctx context.Context, client net.Conn) *Login {
	s.Observer.Accepted()
	l := &Login{Start: time.Now(), Client: client, obs: s.Observer, Drain: HandshakeContext(ctx), pass: passFrom(ctx), limits: s.Limits, Log: s.Logger}
	l.deadline = l.Start.Add(s.HandshakeTimeout)
	l.first = min(s.FirstPacketTimeout, s.HandshakeTimeout)
	l.Ctx, l.cancel = context.WithTimeout(ctx, s.HandshakeTimeout)
	client.SetDeadline(l.deadline)
	client.SetReadDeadline(l.Start.Add(l.first))
	l.reads = conncut.Reads(l.Drain, client)
	if l.pass != nil {
		max, grace := l.pass.g.max, l.pass.g.grace
		l.pass.OnEvict(func() {
			l.Evict(failure.New(failure.Evicted,
				fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes) and this one had sent no complete login packet %s after connecting, so it was closed to make room", max, grace),
				"send the login at once after connecting; if many real clients connect at the same moment, raise --max-handshakes"))
		})
	}
	return l
}

// Admit takes a place in every connection limit (--max-connections, this
// upstream's and any shared), or returns the failure to tell the client.
// The engine calls it where the connection starts to cost something (a
// Postgres cancel request never does); End gives the places back.
func (l *Login) Admit() *failure.Failure {
	release, refused := TakeAll(l.limits...)
	if refused != nil {
		return refused
	}
	l.release = release
	return nil
}

// AddUpstream counts d as time spent on the upstream (dial, TLS, login)
// before the login proper: MySQL dials for the server's greeting first.
func (l *Login) AddUpstream(d time.Duration) { l.upstream += d }

// Evict ends the login to make room for another connection: reads from
// the client fail and Ctx ends. why is what the client is told. Only the
// first call counts.
func (l *Login) Evict(why *failure.Failure) {
	l.mu.Lock()
	if l.evicted == nil {
		l.evicted = why
	}
	l.mu.Unlock()
	l.reads.Now()
	l.cancel()
}

// Evicted says why the login was evicted (nil if it was not).
func (l *Login) Evicted() *failure.Failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

// Waiting records that the client waits on the proxy, not the other way
// round: MySQL's login waits for a place among the unanswered greetings
// and dials the upstream before the client is greeted. Until Greeted, the
// client's first-packet clock does not run and the handshake cap cannot
// evict it (it is not silent: it has not been asked anything yet).
func (l *Login) Waiting() {
	l.pass.Shield()
	l.reads.Set(l.deadline)
}

// Greeted records that the server spoke first and the client has been
// greeted (MySQL): its first-packet clock starts now, and the handshake
// cap may evict it once it has been silent for the grace.
func (l *Login) Greeted() {
	first := time.Now().Add(l.first)
	if first.After(l.deadline) {
		first = l.deadline
	}
	l.reads.Set(first)
	if l.pass == nil {
		return
	}
	max, grace := l.pass.g.max, l.pass.g.grace
	l.pass.OnEvict(func() {
		l.Evict(failure.New(failure.Evicted,
			fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes) and this one had not answered the server's greeting %s after getting it, so it was closed to make room", max, grace),
			"answer the greeting at once; if many real clients connect at the same moment, raise --max-handshakes"))
	})
	l.pass.Expose()
}

// FirstPacketTimeout is how long the client may take to send its first
// packet.
func (l *Login) FirstPacketTimeout() time.Duration { return l.first }

// FirstPacket records that the client's first packet has arrived: the
// login can no longer be evicted, and reads get the rest of the handshake
// timeout instead of the first-packet timeout (unless they were cut).
func (l *Login) FirstPacket() {
	l.pass.Shield()
	l.reads.Set(l.deadline)
}

// Relaying ends the login's limits on conn and upstream: the session's
// bytes then flow without deadlines, and its place in the handshake cap
// goes to the next connection. A drain or eviction cut still in progress
// finishes first; none lands afterwards. Ctx ends here, with the login:
// its timer and its place among the server context's children would
// otherwise be held for the whole session (issue 15: an idle session's
// memory).
func (l *Login) Relaying(conn, upstream net.Conn) {
	l.reads.Stop()
	l.pass.Leave()
	l.cancel()
	conn.SetDeadline(time.Time{})
	upstream.SetDeadline(time.Time{})
}

// End releases what BeginLogin and Admit took; defer it.
func (l *Login) End() {
	l.reads.Stop()
	l.cancel()
	l.pass.Leave()
	if l.release != nil {
		l.release()
	}
	l.obs.Ended()
}

// HandshakeLimit is what a client refused at accept is told: the cap on
// connections logging in is full of connections that are all busy
// logging in.
func HandshakeLimit(max int) *failure.Failure {
	return failure.New(failure.HandshakeLimit, fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes)", max),
		"connect again in a moment; if many real clients connect at the same moment, raise --max-handshakes")
}

// ShutdownFailure is what a client still logging in is told when the
// proxy shuts down; err is what ended its login.
func ShutdownFailure(err error) *failure.Failure {
	return failure.Wrap(failure.Shutdown, err, "the proxy is shutting down", "connect again (to its replacement)")
}

// Unexplained sorts out a handshake that failed without a failure to
// show: during a shutdown the client is told so (shutdown true); a client
// that was too slow or went away is only logged, and reason labels it.
func Unexplained(ctx context.Context, log *slog.Logger, err error, start time.Time) (shutdown bool, reason failure.Reason) {
	switch {
	case ctx.Err() != nil:
		return true, failure.Shutdown
	case IsTimeout(err):
		log.Info("handshake timed out", "after", time.Since(start).Round(time.Millisecond))
		return false, failure.Timeout
	default:
		log.Info("client went away during handshake", "err", err)
		return false, failure.ClientGone
	}
}
