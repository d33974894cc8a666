package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Settings are what every engine's proxy needs besides its upstream: who
// signs, for which region and user, the limits and timeouts, logging and
// metrics. Each engine's Config embeds them.
type Settings struct {
	Region string // the DB's region, for signing
	// DBUser, when set, is the upstream user for every client whatever
	// user the client names.
	DBUser string
	Tokens TokenSource
	// Limits cap client connections: this upstream's own and any shared
	// with other upstreams. A client over one is told so in its protocol
	// ("too many connections") rather than closed silently, and no token
	// is signed for it.
	Limits []*Limit
	// IdleTimeout ends a session idle (no bytes either way) this long;
	// 0: never.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds everything before the relay: reading the
	// client's login, building the token, the upstream login. Default 30s.
	HandshakeTimeout time.Duration
	// FirstPacketTimeout bounds the wait for the client's first packet
	// (Postgres: its startup message; MySQL: its answer to the greeting),
	// from accept. Real clients send it at once; a client silent this
	// long holds a place in the handshake cap for nothing. Default 10s,
	// never more than HandshakeTimeout.
	FirstPacketTimeout time.Duration
	// ConnectTimeout bounds the upstream dial, TLS and login. Default 15s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
	// Observer hears about connections (metrics); default none.
	Observer Observer
}

// Check fills the defaults and refuses settings an engine cannot serve
// with; engine names the engine in messages.
func (s *Settings) Check(engine string) error {
	if s.Tokens == nil {
		return fmt.Errorf("%s proxy: no token source", engine)
	}
	if s.Region == "" {
		return fmt.Errorf("%s proxy: no region", engine)
	}
	if s.HandshakeTimeout == 0 {
		s.HandshakeTimeout = 30 * time.Second
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = 15 * time.Second
	}
	if s.FirstPacketTimeout == 0 {
		s.FirstPacketTimeout = DefaultFirstPacketTimeout
	}
	s.FirstPacketTimeout = min(s.FirstPacketTimeout, s.HandshakeTimeout)
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Observer == nil {
		s.Observer = NopObserver{}
	}
	if s.HandshakeTimeout < 0 || s.ConnectTimeout < 0 || s.IdleTimeout < 0 || s.FirstPacketTimeout < 0 {
		return errors.New(engine + " proxy: negative timeout")
	}
	return nil
}

// DefaultFirstPacketTimeout is Settings.FirstPacketTimeout's default.
const DefaultFirstPacketTimeout = 10 * time.Second

// Login is one client connection's login in progress, as both engines run
// it: counted, bounded by the handshake timeout (and the first-packet
// timeout until the client's first packet), holding its place in the
// server's handshake cap until it relays, and cut short (reads only, so
// the client can still be told why) when the drain starts or when it is
// evicted to make room.
type Login struct {
	Start time.Time
	// Ctx bounds the login: the handshake timeout, and the hard cut. It is
	// also cancelled when the login is evicted.
	Ctx context.Context
	// Drain is done when the server starts shutting down; failures are
	// explained against it (see HandshakeContext).
	Drain    context.Context
	cancel   context.CancelFunc
	stopCut  func() bool
	client   net.Conn
	obs      Observer
	pass     *Pass
	deadline time.Time // the handshake deadline

	mu      sync.Mutex
	cut     bool   // reads are cut (drain or eviction): deadlines stay in the past
	evicted string // why it was evicted, for the client; "" if it was not
}

// BeginLogin starts a client's login: ctx is the handler's.
func (s *Settings) BeginLogin(ctx context.Context, client net.Conn) *Login {
	s.Observer.Accepted()
	l := &Login{Start: time.Now(), client: client, obs: s.Observer, Drain: HandshakeContext(ctx), pass: passFrom(ctx)}
	l.deadline = l.Start.Add(s.HandshakeTimeout)
	l.Ctx, l.cancel = context.WithTimeout(ctx, s.HandshakeTimeout)
	client.SetDeadline(l.deadline)
	client.SetReadDeadline(l.Start.Add(min(s.FirstPacketTimeout, s.HandshakeTimeout)))
	l.stopCut = context.AfterFunc(l.Drain, l.cutReads)
	if l.pass != nil {
		max, grace := l.pass.g.max, l.pass.g.grace
		l.pass.OnEvict(func() {
			l.Evict(fmt.Sprintf("too many connections are logging in at once (the proxy's limit of %d, --max-handshakes) and this one had sent no complete login packet %s after connecting, so it was closed to make room. Fix: send the login at once after connecting; if many real clients connect at the same moment, raise --max-handshakes", max, grace))
		})
	}
	return l
}

// cutReads makes every read from the client fail now and from here on.
func (l *Login) cutReads() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	l.client.SetReadDeadline(time.Unix(1, 0))
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
	l.cutReads()
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
// timeout instead of the first-packet timeout.
func (l *Login) FirstPacket() {
	l.pass.Shield()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		l.client.SetReadDeadline(l.deadline)
	}
}

// Relaying ends the login's limits on conn and upstream: the session's
// bytes then flow without deadlines, and its place in the handshake cap
// goes to the next connection.
func (l *Login) Relaying(conn, upstream net.Conn) {
	l.stopCut()
	l.pass.Leave()
	conn.SetDeadline(time.Time{})
	upstream.SetDeadline(time.Time{})
}

// End releases what BeginLogin took; defer it.
func (l *Login) End() {
	l.stopCut()
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
