package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Observer == nil {
		s.Observer = NopObserver{}
	}
	if s.HandshakeTimeout < 0 || s.ConnectTimeout < 0 || s.IdleTimeout < 0 {
		return errors.New(engine + " proxy: negative timeout")
	}
	return nil
}

// Login is one client connection's login in progress, as both engines run
// it: counted, bounded by the handshake timeout, and cut short (reads
// only, so the client can still be told why) when the drain starts.
type Login struct {
	Start time.Time
	// Ctx bounds the login: the handshake timeout, and the hard cut.
	Ctx context.Context
	// Drain is done when the server starts shutting down; failures are
	// explained against it (see HandshakeContext).
	Drain   context.Context
	cancel  context.CancelFunc
	stopCut func() bool
	client  net.Conn
	obs     Observer
}

// BeginLogin starts a client's login: ctx is the handler's.
func (s *Settings) BeginLogin(ctx context.Context, client net.Conn) *Login {
	s.Observer.Accepted()
	l := &Login{Start: time.Now(), client: client, obs: s.Observer, Drain: HandshakeContext(ctx)}
	l.Ctx, l.cancel = context.WithTimeout(ctx, s.HandshakeTimeout)
	client.SetDeadline(l.Start.Add(s.HandshakeTimeout))
	l.stopCut = context.AfterFunc(l.Drain, func() { client.SetReadDeadline(time.Unix(1, 0)) })
	return l
}

// Relaying ends the login's limits on conn and upstream: the session's
// bytes then flow without deadlines.
func (l *Login) Relaying(conn, upstream net.Conn) {
	l.stopCut()
	conn.SetDeadline(time.Time{})
	upstream.SetDeadline(time.Time{})
}

// End releases what BeginLogin took; defer it.
func (l *Login) End() {
	l.stopCut()
	l.cancel()
	l.obs.Ended()
}
