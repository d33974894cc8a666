package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Settings are what every engine's proxy needs besides its upstream: who
// signs, for which region and user, the limits and timeouts, logging and
// metrics. Each engine's Config embeds them.
type Settings struct {
	Region string // the DB's region, for signing
	// Follow, when set, is a region that can move (a global database's
	// primary): it replaces Region at every login, and hears of every
	// token the upstream refused so it can look again at once.
	Follow RegionFollower
	// DBUser, when set, is the upstream user for every client whatever
	// user the client names.
	DBUser string
	Tokens TokenSource
	// Limits cap client connections: this upstream's own and any shared
	// with other upstreams. A client over one is told so in its protocol
	// ("too many connections") rather than closed silently, and no token
	// is signed for it.
	Limits []*Limit
	// Resume, when set, holds logins while the upstream resumes from a
	// pause (resume_wait); nil: off.
	Resume *Resume
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
	// Pool, when set, turns on session reuse: sessions their clients
	// left cleanly are reset and parked there for the next client with
	// the same key (see Reuser); nil: every client logs in.
	Pool *Pool
	// Router, when set, picks an Aurora cluster's instance for each new
	// connection (the writer, or a reader) instead of the endpoint's DNS;
	// see route.go.
	Router *Router
	// Guard paces new upstream logins per endpoint (see LoginGuard);
	// nil: none. One guard is shared by every upstream of a process.
	Guard *LoginGuard
	// Prewarm is how many upstream connections to keep ready (see Warm);
	// 0: none. PrewarmMaxAge replaces each before the server's handshake
	// timeout; 0: the engine's default (half the server's default).
	Prewarm       int
	PrewarmMaxAge time.Duration
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

// RegionFollower is a DB region that can change while the proxy runs.
type RegionFollower interface {
	// Region is the region to sign for now.
	Region() string
	// Rejected says the upstream refused a token signed for Region.
	Rejected()
}

// SigningRegion is the region tokens are signed for now: Follow's, else
// Region.
func (s *Settings) SigningRegion() string {
	if s.Follow != nil {
		if r := s.Follow.Region(); r != "" {
			return r
		}
	}
	return s.Region
}
