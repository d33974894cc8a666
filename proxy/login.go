package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/conncut"
)

// Login is one client connection's login in progress, as both engines run
// it: counted, bounded by the handshake timeout (and the first-packet
// timeout until the client's first packet), holding its place in the
// server's handshake cap until it relays, and cut short (reads only, so
// the client can still be told why) when the drain starts or when it is
// evicted to make room.
//
// The client's deadlines belong to the Login until Relaying, and every
// change to them goes through one conncut.Cut: a drain or an eviction
// that races the end of the login either lands before Relaying clears the
// deadlines or not at all, never after (the session would die at its
// first read).
type Login struct {
	Start time.Time
	// Ctx bounds the login: the handshake timeout, and the hard cut. It is
	// also cancelled when the login is evicted.
	Ctx context.Context
	// Drain is done when the server starts shutting down; failures are
	// explained against it (see HandshakeContext).
	Drain    context.Context
	cancel   context.CancelFunc
	reads    *conncut.Cut // the client's reads: cut by the drain or an eviction
	obs      Observer
	pass     *Pass
	deadline time.Time // the handshake deadline

	mu      sync.Mutex
	evicted string // why it was evicted, for the client; "" if it was not
}

// BeginLogin starts a client's login: ctx is the handler's.
func (s *Settings) BeginLogin(ctx context.Context, client net.Conn) *Login {
	s.Observer.Accepted()
	l := &Login{Start: time.Now(), obs: s.Observer, Drain: HandshakeContext(ctx), pass: passFrom(ctx)}
	l.deadline = l.Start.Add(s.HandshakeTimeout)
	l.Ctx, l.cancel = context.WithTimeout(ctx, s.HandshakeTimeout)
	client.SetDeadline(l.deadline)
	client.SetReadDeadline(l.Start.Add(min(s.FirstPacketTimeout, s.HandshakeTimeout)))
	l.reads = conncut.Reads(l.Drain, client)
	if l.pass != nil {
		max, grace := l.pass.g.max, l.pass.g.grace
		l.pass.OnEvict(func() {
			l.Evict(fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes) and this one had sent no complete login packet %s after connecting, so it was closed to make room. Fix: send the login at once after connecting; if many real clients connect at the same moment, raise --max-handshakes", max, grace))
		})
	}
	return l
}

// Evict ends the login to make room for another connection: reads from
// the client fail and Ctx ends. why is what the client is told, with the
// fix. Only the first call counts.
func (l *Login) Evict(why string) {
	l.mu.Lock()
	if l.evicted == "" {
		l.evicted = why
	}
	l.mu.Unlock()
	l.reads.Now()
	l.cancel()
}

// Evicted says why the login was evicted ("" if it was not).
func (l *Login) Evicted() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

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
// finishes first; none lands afterwards.
func (l *Login) Relaying(conn, upstream net.Conn) {
	l.reads.Stop()
	l.pass.Leave()
	conn.SetDeadline(time.Time{})
	upstream.SetDeadline(time.Time{})
}

// End releases what BeginLogin took; defer it.
func (l *Login) End() {
	l.reads.Stop()
	l.cancel()
	l.pass.Leave()
	l.obs.Ended()
}

// HandshakeLimitMessage is what a client refused at accept is told: the
// cap on connections logging in is full of connections that are all
// busy logging in.
func HandshakeLimitMessage(max int) string {
	return fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes). Fix: connect again in a moment; if many real clients connect at the same moment, raise --max-handshakes", max)
}

// ShutdownMessage is what a client still logging in is told when the proxy
// shuts down.
const ShutdownMessage = "the proxy is shutting down; connect again (to its replacement)"

// Unexplained sorts out a handshake that failed without an engine error
// to show: during a shutdown the client is told so (shutdown true); a
// client that was too slow or went away is only logged, and reason labels
// it.
func Unexplained(ctx context.Context, log *slog.Logger, err error, start time.Time) (shutdown bool, reason string) {
	switch {
	case ctx.Err() != nil:
		return true, ReasonShutdown
	case IsTimeout(err):
		log.Info("handshake timed out", "after", time.Since(start).Round(time.Millisecond))
		return false, ReasonTimeout
	default:
		log.Info("client went away during handshake", "err", err)
		return false, ReasonClientGone
	}
}
