package mysql

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Session reuse (proxy.Pool) for MySQL. A client must be greeted with the
// connection id of the session it ends up on (a KILL QUERY <id> from
// another connection goes by it), and the greeting goes out before the
// client says who it is. So a parked session is taken before the
// greeting, for the key the proxy's last client had (most deployments
// have one user and database per proxy), checked with COM_PING, and its
// recorded greeting mirrored; once the client has answered, its own key
// is compared. On a match the session is the client's, finished with the
// recorded OK and no IAM login. On a mismatch the session is closed (it
// cannot go back to the pool: this client knows its connection id, and a
// KILL of it must not reach a later client) and the client logs in on a
// fresh connection; a KILL by the id it was greeted with then says
// "Unknown thread id". A session whose client left cleanly (tracker) is
// reset with COM_RESET_CONNECTION and COM_INIT_DB to the key's database
// and parked. When none is parked for the guessed key, the client waits,
// before its greeting, for the first of a session another client leaves
// for it and its login's turn under the rate (takeParked).

// parkedWait is how long a client waits, before its greeting, for a
// session being reset for the guessed key rather than dialing.
const parkedWait = time.Second

// reuseKeys is the key of the proxy's last client, the guess for the
// next one's.
type reuseKeys struct{ last atomic.Pointer[string] }

// takeParked takes a parked session for the guessed key that is alive, or
// nil: one reset or logged in within proxy.QuietFor whose socket is quiet,
// else one that answers a COM_PING. When none is parked, it waits for the
// first of a session another client leaves for the key and a token of the
// login rate (for the instance the router would choose, behind an Aurora
// cluster endpoint: proxy.Settings.AwaitParked), once: turn is then that
// token, for the handshake's login (TakenTurn); err is the guard's
// refusal, or the client gone meanwhile.
func (p *Proxy) takeParked(l *proxy.Login) (s *session, turn *proxy.Turn, err error) {
	guess := p.keys.last.Load()
	if p.cfg.Pool == nil || guess == nil {
		return nil, nil, nil
	}
	key, guardKey := *guess, proxy.GuardKey(p.Target())
	if r := p.cfg.Router; r != nil {
		// Behind an Aurora cluster endpoint: one parked on the instance
		// the router would send this client to now (its login checks
		// that it still does, see Held), and the turn of a login to it.
		d, ok := r.Peek()
		if !ok {
			return nil, nil, nil
		}
		key, guardKey = proxy.InstanceKey(key, d.HostPort()), d.HostPort()
	}
	awaited := false
	for range 3 {
		ps := p.cfg.Pool.Get(l.Ctx, key, parkedWait)
		if ps == nil && !awaited {
			// None parked: wait for one to be left, or for the turn of
			// the login this client would make otherwise (once: after a
			// session that died parked, the client is greeted and logs
			// in as before, within its wait).
			awaited = true
			if ps, turn, err = p.cfg.AwaitParked(l, key, guardKey); err != nil {
				return nil, nil, err
			}
		}
		if ps == nil {
			return nil, turn, nil
		}
		if s := p.alive(l, ps.(*session)); s != nil {
			return s, nil, nil
		}
		if l.Ctx.Err() != nil {
			break
		}
	}
	return nil, turn, nil
}

// alive returns s when it is alive to be handed over, else discards it;
// one taken for a client gone meanwhile goes back to the pool unused
// (Put: reset once more, then parked or handed to a claim).
func (p *Proxy) alive(l *proxy.Login, s *session) *session {
	if l.Ctx.Err() != nil {
		p.cfg.Pool.Put(proxy.InstanceKey(s.key, s.at), s)
		return nil
	}
	// Reset or logged in a moment ago: a look at its socket proves it
	// alive, as for Postgres (proxy.QuietFor).
	if decided, err := proxy.LookParked(s.s.Conn, s.answered); err != nil {
		l.Log.Info("parked session not reused", "err", err)
		s.Discard()
		return nil
	} else if decided {
		return s
	}
	// A parked session that does not answer (its server stopped, its
	// address black-holed by a failover) costs the client the adoption
	// bound, not the connect timeout.
	ctx, cancel := context.WithTimeout(l.Ctx, p.cfg.AdoptTimeout())
	err := mywire.Ping(ctx, s.s.Conn)
	cancel()
	if err == nil {
		return s
	}
	l.Log.Info("parked session not reused", "err", err)
	s.Discard()
	return nil
}

// poolKey names the sessions a client may take over: the endpoint, the
// user and database, the character set and the capabilities that frame
// the session (see mywire.SessionCaps); "" when sessions are not reused,
// or the client named no database (COM_RESET_CONNECTION keeps the last
// USE, and there is no command to leave a database).
func (p *Proxy) poolKey(user string, resp *mywire.HandshakeResponse, g *mywire.Greeting) string {
	if p.cfg.Pool == nil || resp.Database == "" {
		return ""
	}
	caps, ext := mywire.SessionCaps(resp, g, p.cfg.AllowLocalInfile)
	charset := resp.Charset
	if charset == 0 {
		charset = g.Charset
	}
	up := p.cfg.Upstream
	return fmt.Sprintf("%q %q %q %d %x %x", net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), user, resp.Database, charset, caps, ext)
}

// settleHeld keeps the session taken before the greeting when the
// client's key is the one it was parked under; otherwise it closes it and
// dials a fresh connection for the login.
func (h *handshake) settleHeld(l *proxy.Login, user string) error {
	h.key = h.p.poolKey(user, h.resp, h.greeting)
	if key := h.key; key != "" {
		h.p.keys.last.Store(&key) // a copy: the handshake is not kept alive
	}
	if h.held == nil || h.held.key == h.key {
		return nil
	}
	l.Log.Info("parked session not reused: this client's user, database, character set or capabilities differ from its own; the client logs in anew, and a KILL by the connection id it was greeted with finds no such thread",
		"greeted_connection_id", h.greeting.ConnectionID)
	h.held.Discard()
	h.held = nil
	dctx, cancel := context.WithTimeout(l.Ctx, h.p.cfg.ConnectTimeout)
	defer cancel()
	dialStart := time.Now()
	pending, err := h.p.dial(dctx) // routed to an Aurora instance where there is a router
	l.AddUpstream(time.Since(dialStart))
	if err != nil {
		return l.Explain(user, err)
	}
	h.pending = pending
	h.greeting = pending.Greeting
	return nil
}

// TakenTurn hands over, once, the login-rate token taken before the
// greeting (takeParked), or nil. It implements proxy.TurnHolder.
func (h *handshake) TakenTurn() *proxy.Turn {
	t := h.turn
	h.turn = nil
	return t
}

// releaseHeld lets go of a parked session taken for a client that did
// not log in on it. One that never answered its greeting (a health
// check, a port scan) did nothing with it: it goes back to the pool, so
// probes do not use up the parked sessions. Any other is closed, since
// the client knows its connection id.
func (h *handshake) releaseHeld() {
	s := h.held
	h.held = nil
	if h.resp == nil && h.p.cfg.Pool != nil {
		h.p.cfg.Pool.Put(proxy.InstanceKey(s.key, s.at), s)
		return
	}
	s.Discard()
}

// PoolKey is the key the client's session parks under ("" : it does
// not). It implements proxy.Reuser.
func (h *handshake) PoolKey() string { return h.key }

// Adopt is not used: a MySQL client's session is taken before its
// greeting (Held). It implements proxy.Reuser.
func (h *handshake) Adopt(context.Context, proxy.Pooled) (proxy.Session, error) {
	return nil, failure.New(failure.Protocol, "a MySQL session is taken before the greeting", "report this as a bug")
}

// Held hands the client the session taken before its greeting, followed
// by a tracker of its own, when it is on the instance the router chose
// (at; "" and "" when not routed). It implements proxy.Holder.
func (h *handshake) Held(at string) proxy.Session {
	old := h.held
	if old == nil {
		return nil
	}
	h.held = nil
	if old.at != at {
		// The router chose another instance since the session was taken
		// (a writer change, or a reader with fewer sessions now): the
		// client logs in there, greeted with this session's id as on a
		// key mismatch (settleHeld).
		old.Discard()
		return nil
	}
	s := *old
	s.park = proxy.NewParkConn(s.s.Conn, newTracker(s.caps, s.ext, s.status))
	return &s
}

// reusable records what a session needs to be parked and handed over,
// and follows it with a tracker; a no-op when sessions are not reused.
func (h *handshake) reusable(s *session) {
	if h.key == "" {
		return
	}
	s.key, s.greeting, s.db, s.born, s.p = h.key, h.greeting, h.resp.Database, time.Now(), h.p
	s.answered = s.born
	s.caps, s.ext = mywire.SessionCaps(h.resp, h.greeting, h.p.cfg.AllowLocalInfile)
	s.status, _ = okStatus(s.s.OK)
	s.park = proxy.NewParkConn(s.s.Conn, newTracker(s.caps, s.ext, s.status))
}

// Clean says whether the client left the session cleanly; it implements
// proxy.Parkable.
func (s *session) Clean() bool { return s.park != nil && s.park.Clean() }

// Reset runs COM_RESET_CONNECTION, then COM_INIT_DB to the key's
// database (a reset keeps the last USE), in one round trip. It implements
// proxy.Pooled.
//
// A KILL by this session's connection id that another connection of the
// last client's sends after its COM_QUIT could reach the next client: the
// proxy relays KILL as any statement, unread, so it cannot wait for one.
// A client library sends KILL QUERY while its own query is running, and
// such a session is not left cleanly (the tracker sees the answer owed),
// so only a KILL sent after the client quit can do this.
func (s *session) Reset(ctx context.Context) error {
	if err := mywire.ResetSession(ctx, s.s.Conn, s.db); err != nil {
		return err
	}
	s.answered = time.Now()
	return nil
}

// Discard says COM_QUIT (so the server counts no aborted connection) and
// closes the session. It implements proxy.Pooled.
func (s *session) Discard() {
	c := s.s.Conn
	c.SetWriteDeadline(time.Now().Add(time.Second))
	mywire.WritePacket(c, 0, []byte{comQuit})
	c.Close()
}

// Born is when the session logged in. It implements proxy.Pooled.
func (s *session) Born() time.Time { return s.born }

// Hosts are the endpoint the session signed for and the address it is
// connected to. It implements proxy.Pooled.
func (s *session) Hosts() []string {
	up := s.p.cfg.Upstream
	hosts := []string{net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), s.s.Conn.RemoteAddr().String()}
	if s.at != "" {
		hosts = append(hosts, s.at) // the Aurora instance: a writer change drops it (Router.onView)
	}
	return hosts
}

// quitFarewell says nothing once the client has quit cleanly: the relay
// then ends as if the server had closed, and no error is due.
type quitFarewell struct {
	*farewell
	park *proxy.ParkConn
}

func (f *quitFarewell) Message(err error) []byte {
	if f.park.Quit() {
		return nil
	}
	return f.farewell.Message(err)
}

// Relogin is a login as this client's (its user, database, character set,
// capabilities and connection attributes) on a connection of its own, for
// the pool's minimum. The session keeps the greeting of its connection, so
// the client that takes it is greeted with its own connection id, as with
// any parked session. It implements proxy.Relogger.
func (h *handshake) Relogin() func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	return h.relogin(nil)
}

// ReloginAt is Relogin to the Aurora instance d; the session is parked
// under it. It implements proxy.InstanceRelogger.
func (h *handshake) ReloginAt(d proxy.Destination) func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	return h.relogin(&d)
}

// relogin is Relogin to the endpoint (at nil) or the instance at.
func (h *handshake) relogin(at *proxy.Destination) func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	resp := *h.resp // the handshake is done with it; a copy keeps it out of the pool's reach
	p, key := h.p, h.key
	return func(ctx context.Context, user, token string) (proxy.Pooled, error) {
		var pending *Pending
		var err error
		if at == nil {
			pending, err = Dial(ctx, p.cfg.Upstream)
		} else {
			pending, err = dialAt(ctx, p.cfg.Upstream, *at)
		}
		if err != nil {
			return nil, err
		}
		again := &handshake{p: p, resp: &resp, key: key, greeting: pending.Greeting}
		s, err := pending.Login(ctx, again.login(user, token))
		if err != nil {
			return nil, err
		}
		sess := &session{s: s}
		if at != nil {
			sess.at = at.HostPort()
		}
		again.reusable(sess)
		return sess, nil
	}
}
