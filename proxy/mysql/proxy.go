package mysql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Config configures a MySQL proxy for one upstream.
type Config struct {
	Upstream Upstream // Trust (or TLS) must be set: IAM tokens only travel over TLS
	// MaxUnansweredGreetings caps the upstream connections held for
	// clients that have not answered the greeting yet: the proxy dials the
	// server as soon as a client connects, to show it the server's
	// greeting, so without a cap a flood of clients that connect and say
	// nothing would use up the server's max_connections for everyone.
	// Over it a client waits for a place (newest first), taking the place
	// of one silent for GreetingGrace since its greeting. 0
	// means DefaultMaxUnansweredGreetings; negative, no cap.
	MaxUnansweredGreetings int
	// AllowLocalInfile lets clients use LOAD DATA LOCAL INFILE: the proxy
	// then offers CLIENT_LOCAL_FILES to clients and passes it upstream.
	// Off by default: with it, the server can ask the client for any file
	// the client can read, and a client library that honours such a
	// request sends it whatever query it ran.
	AllowLocalInfile bool
	proxy.Settings
}

// DefaultMaxUnansweredGreetings is Config.MaxUnansweredGreetings's
// default: less than a small RDS instance's max_connections (about 80 for
// a db.t4g.micro), and room for a storm of real clients on a loaded
// machine, where answering a greeting can take a second or more (with 32,
// a 300-client storm under a CPU hog had clients evicted).
const DefaultMaxUnansweredGreetings = 64

// GreetingGrace is how long a client may leave the server's greeting
// unanswered before a client waiting for a place may take its place.
// Answering takes a client more work than speaking first does (read the
// greeting, hash the scramble), and in a 300-client storm under a CPU hog
// go-sql-driver clients were measured taking over two seconds: five
// seconds leaves real clients that room, and still frees the places a
// flood of silent ones holds.
const GreetingGrace = 5 * time.Second

// Proxy accepts MySQL clients in plaintext and logs them in upstream with
// IAM tokens over verify-full TLS.
type Proxy struct {
	cfg       Config
	greetings *proxy.Gate
	warm      *proxy.Warm[*Pending] // nil: none
	// warmAt: behind an Aurora cluster endpoint with --prewarm, the
	// connections made ready per instance (nil: none; see newWarm).
	warmAt *proxy.WarmSet[*Pending]
	keys   reuseKeys // session reuse: see reuse.go
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if _, conf := cfg.Upstream.currentTLS(); conf == nil {
		// mysql_clear_password must never cross a network in clear, and
		// RDS requires TLS for it: --tls-mode disable is Postgres-only.
		return nil, errors.New("mysql proxy: upstream TLS is required (the IAM token goes in clear inside it): --tls-mode disable is not supported for mysql")
	}
	if err := cfg.Settings.Check("mysql"); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if cfg.MaxUnansweredGreetings == 0 {
		cfg.MaxUnansweredGreetings = DefaultMaxUnansweredGreetings
	}
	cfg.Logger = log.With("engine", "mysql", "upstream", cfg.Upstream.Host)
	p := &Proxy{cfg: cfg,
		greetings: proxy.NewGate(cfg.MaxUnansweredGreetings, GreetingGrace)}
	p.warm, p.warmAt = newWarm(cfg)
	return p, nil
}

// Greetings is the cap on upstream connections held for clients that have
// not answered the greeting (nil: none).
func (p *Proxy) Greetings() *proxy.Gate { return p.greetings }

// ServeConn serves one client connection; it implements proxy.Handler.
func (p *Proxy) ServeConn(ctx context.Context, client net.Conn) {
	p.cfg.Serve(ctx, client, p)
}

// Target is the upstream; it implements proxy.Engine.
func (p *Proxy) Target() proxy.Target {
	up := p.cfg.Upstream
	tlsUp, _ := up.currentTLS()
	return proxy.Target{Host: up.Host, Port: up.Port, DialAddr: up.DialAddr(), Tunnel: up.DialAddress != "", TLS: tlsUp}
}

// handshake is one MySQL client's login: the upstream dialed for its
// greeting, the greeting mirrored to the client, its answer read, then the
// upstream login and its OK passed on. It implements proxy.Handshake.
type handshake struct {
	p       *Proxy
	conn    net.Conn // the client
	pos     position // where an ERR goes now
	pending *Pending // the upstream, until it logs in
	place   *proxy.Pass
	resp    *mywire.HandshakeResponse
	who     proxy.Who
	// Session reuse (reuse.go): the greeting the client got, a parked
	// session taken for it before that greeting, its key.
	greeting *mywire.Greeting
	held     *session
	key      string
	// turn: the login-rate token taken before the greeting while waiting
	// for a parked session (takeParked), for the login (TakenTurn).
	turn *proxy.Turn
}

// session is an upstream login: the connection and the server's OK, and
// with session reuse what parks it (see reuse.go).
type session struct {
	s *mywire.Session
	// park follows the client's use of the session when sessions are
	// reused (nil: they are not).
	park      *proxy.ParkConn
	key, db   string
	greeting  *mywire.Greeting
	caps, ext uint32
	status    uint16 // the OK's status
	born      time.Time
	answered  time.Time // when the server last answered the proxy on it (login, reset): see takeParked
	p         *Proxy
	// at is the Aurora instance (host:port) the router sent the login
	// to; "": not routed.
	at string
}

func (s *session) Upstream() net.Conn {
	if s.park != nil {
		return s.park
	}
	return s.s.Conn
}

func (s *session) Farewell() proxy.Farewell {
	if s.park != nil {
		return &quitFarewell{farewell: newFarewell(), park: s.park}
	}
	return newFarewell()
}
func (h *handshake) Who() proxy.Who   { return h.who }
func (h *handshake) Client() net.Conn { return h.conn }

// Fail tells the client f, then drops the upstream connection held for
// it before the core lingers: a slow client does not hold one meanwhile.
func (h *handshake) Fail(f *failure.Failure) error {
	// The client hears first: ending the upstream login (Abandon) is a
	// round trip to the server, which may be the slow part.
	err := writeFailure(h.conn, f, h.pos)
	h.Close()
	return err
}

// Close ends an upstream connection that will not log in with a failed
// login rather than a broken handshake (see Pending.Abandon), then frees
// its place among the unanswered greetings.
func (h *handshake) Close() {
	if h.pending != nil {
		h.pending.Abandon()
		h.pending = nil
	}
	if h.held != nil {
		h.releaseHeld()
	}
	h.turn.Drop() // unused: no login
	h.turn = nil
	h.place.Leave()
}

// Open takes the connection limits, dials the upstream for its greeting,
// mirrors it to the client with the proxy's own scramble and reads the
// client's answer, which names the user. It implements proxy.Engine.
func (p *Proxy) Open(l *proxy.Login) (proxy.Handshake, error) {
	h := &handshake{p: p, conn: l.Client}
	// Until the greeting goes out the client waits on the proxy (a place,
	// the dial): its first-packet clock has not started.
	l.Waiting()
	if f := l.Admit(); f != nil {
		return h, f
	}
	// The upstream's greeting comes first: the client must see the
	// server's version, capabilities and connection id. The connection
	// dialed for it takes a place among the unanswered greetings until
	// the client answers.
	// With session reuse a parked session may be the one (reuse.go).
	held, turn, err := p.takeParked(l)
	h.held, h.turn = held, turn
	if err != nil {
		return h, err
	}
	if h.held != nil {
		h.greeting = h.held.greeting
	} else {
		pending, place, err := p.dialForGreeting(l)
		if err != nil {
			return h, err
		}
		h.pending, h.place, h.greeting = pending, place, pending.Greeting
	}
	place := h.place
	scramble, err := mywire.NewScramble()
	if err != nil {
		return h, failure.Wrap(failure.Protocol, err, "cannot make a scramble (the system's random source failed)", "connect again; if it persists, see the proxy's log")
	}
	greeting := mywire.Mirror(h.greeting, scramble, mywire.PluginNativePassword, false)
	if !p.cfg.AllowLocalInfile {
		greeting.Caps &^= mywire.CapLocalFiles
	}
	hello, err := mywire.Greet(l.Client, greeting, mywire.GreetOptions{Greeted: func() {
		place.Expose()
		l.Greeted()
	}})
	h.conn, h.pos = hello.Conn, position{seq: 1, greeted: true}
	if err != nil {
		if proxy.IsTimeout(err) && l.Evicted() == nil && l.Drain.Err() == nil {
			// Silent past the first-packet timeout (or the handshake
			// timeout, when it comes first): a client that is still
			// there is told why it is closed.
			return h, &failure.Failure{Reason: failure.Timeout, Code: failure.Code{Errno: mywire.ErHandshake}, Err: err,
				Cause: fmt.Sprintf("the client did not answer the server's greeting within %s (the proxy's first-packet timeout)", l.FirstPacketTimeout()),
				Fix:   "answer the greeting at once after connecting; if clients are slow to answer (a loaded machine), raise --first-packet-timeout"}
		}
		return h, h.clientError(err)
	}
	l.FirstPacket()
	place.Leave()
	h.resp = hello.Response
	seq, err := settleClientAuth(hello, mywire.PluginNativePassword, scramble)
	h.pos.seq = seq
	if err != nil {
		h.pos.seq = 1
		return h, h.clientError(err)
	}
	user := h.resp.User
	if p.cfg.DBUser != "" {
		user = p.cfg.DBUser
	}
	if user == "" {
		return h, failure.New(failure.Protocol, "no user name", "pass the database user (mysql -u USER), or start the proxy with --db-user")
	}
	if err := h.settleHeld(l, user); err != nil {
		return h, err
	}
	h.who = proxy.Who{User: user, Database: h.resp.Database, Attrs: []any{"connection_id", h.greeting.ConnectionID}}
	return h, nil
}

// clientError turns a client's broken handshake into what it is told
// (see clientError), at the position the codec names.
func (h *handshake) clientError(err error) error {
	f, pos := clientError(err)
	if f == nil {
		return err
	}
	h.pos = pos
	return f
}

// Login upgrades the upstream to TLS and logs in as user with token over
// mysql_clear_password, with the client's capabilities where they change
// framing.
func (h *handshake) Login(ctx context.Context, user, token string) (proxy.Session, error) {
	pending := h.pending
	h.pending = nil // Login closes it on failure, and owns it on success
	if pending == nil {
		// A second try after a throttled login (the first connection
		// ended with it): a fresh connection. Its connection id is not
		// the one the client was greeted with.
		var err error
		if pending, err = Dial(ctx, h.p.cfg.Upstream); err != nil {
			return nil, err
		}
	}
	s, err := loginOrRedial(ctx, pending, h.login(user, token), h.p.warm.Stale, func(ctx context.Context) (*Pending, error) { return Dial(ctx, h.p.cfg.Upstream) })
	if err != nil {
		return nil, err
	}
	sess := &session{s: s}
	h.reusable(sess)
	return sess, nil
}

// loginOrRedial logs in on pending; when it was a pre-warmed connection
// the server has closed since (a restart), stale hears of it and the
// login goes once more on a fresh connection from redial, whose connection
// id is not the one the client was greeted with.
func loginOrRedial(ctx context.Context, pending *Pending, login mywire.Login, stale func(error), redial func(context.Context) (*Pending, error)) (*mywire.Session, error) {
	s, err := pending.Login(ctx, login)
	if err == nil || !pending.warm || !proxy.WarmConnGone(err) || ctx.Err() != nil {
		return s, err
	}
	stale(err)
	if pending, err = redial(ctx); err != nil {
		return nil, err
	}
	return pending.Login(ctx, login)
}

// login is the upstream login for the client: user with token over
// mysql_clear_password, with the client's capabilities where they change
// framing.
func (h *handshake) login(user, token string) mywire.Login {
	return mywire.Login{User: user, Database: h.resp.Database, Password: token, Plugin: mywire.PluginClearPassword,
		OnlyPlugin: true, Client: h.resp, LocalInfile: h.p.cfg.AllowLocalInfile}
}

// Finish passes the server's OK on with the client's sequence id.
func (h *handshake) Finish(s proxy.Session) error {
	return mywire.WritePacket(proxy.ClientWriter(h.conn), h.pos.seq, s.(*session).s.OK)
}

// dialForGreeting takes a place among the unanswered greetings, waiting
// at most the first-packet timeout from now (plus the resume wait for a
// pausable upstream), then dials the upstream and reads its
// greeting, held while the upstream resumes (see proxy.Resume). An evicted place ends the login (see
// Login.Evict). On error nothing is held.
func (p *Proxy) dialForGreeting(l *proxy.Login) (*Pending, *proxy.Pass, error) {
	// Places held by dials waiting for a resuming upstream free only when
	// it resumes: a client waits for one as long, from now, after any
	// wait for its turn or a parked session (takeParked).
	wctx, cancel := context.WithTimeout(l.Ctx, p.cfg.FirstPacketTimeout+p.cfg.Resume.Wait())
	place, err := p.greetings.Enter(wctx)
	cancel()
	if err != nil {
		// A client waiting for a place waits on the proxy, not the other way
		// round: even when its handshake time ran out meanwhile, it is told
		// why below. Only an eviction or a drain has its own words.
		if l.Evicted() != nil || l.Drain.Err() != nil {
			return nil, nil, err
		}
		if p.greetings.Exposed() == 0 {
			// No place is held for a silent client: they all wait for
			// the upstream's greeting, which is what is slow.
			up := p.cfg.Upstream
			if wait := p.cfg.Resume.Wait(); wait > 0 {
				return nil, nil, failure.Wrap(failure.Timeout, err,
					fmt.Sprintf("the upstream %s at %s is not answering yet: all %d upstream connections the proxy may hold for logins (--max-unanswered-greetings) are held by logins waiting up to %s for it to resume (resume_wait), and none freed within %s", up.Host, up.DialAddr(), p.greetings.Max(), wait, p.cfg.FirstPacketTimeout+wait),
					"connect again in a moment; if the DB takes longer to resume from a pause, raise resume_wait (--resume-wait); if many clients connect while it resumes, raise --max-unanswered-greetings")
			}
			return nil, nil, failure.Wrap(failure.Timeout, err,
				fmt.Sprintf("the upstream %s at %s is slow to answer: all %d upstream connections the proxy may hold for logins (--max-unanswered-greetings) are still waiting for the server's greeting, and none freed within %s", up.Host, up.DialAddr(), p.greetings.Max(), p.cfg.FirstPacketTimeout),
				"check that the DB is reachable from here (security groups, VPC, tunnel) and not overloaded; then connect again")
		}
		return nil, nil, failure.Wrap(failure.Limit, err,
			fmt.Sprintf("too many clients are connecting without answering the server's greeting (the proxy's limit of %d upstream connections waiting for an answer, --max-unanswered-greetings), and no place freed within %s", p.greetings.Max(), p.cfg.FirstPacketTimeout),
			"connect again in a moment; if many real clients connect at the same moment, raise --max-unanswered-greetings")
	}
	max := p.greetings.Max()
	place.OnEvict(func() {
		l.Evict(failure.New(failure.Evicted,
			fmt.Sprintf("too many clients are connecting without answering the server's greeting (the proxy's limit of %d, --max-unanswered-greetings) and this one had not answered %s after getting it, so it was closed to make room", max, GreetingGrace),
			"answer the greeting at once; if many real clients connect at the same moment, raise --max-unanswered-greetings"))
	})
	dialStart := time.Now()
	held := proxy.Held{Resume: p.cfg.Resume, Target: p.Target(), Log: l.Log, Resuming: Resuming, Stop: l.Drain.Done()}
	pending, err := proxy.Hold(l.Ctx, held, func(ctx context.Context) (*Pending, error) {
		dctx, dcancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
		defer dcancel()
		return p.dial(dctx) // a pre-warmed connection when there is one
	})
	l.AddUpstream(time.Since(dialStart))
	if err != nil {
		place.Leave()
		if p.cfg.Resume == nil && Resuming(err) && l.Evicted() == nil {
			if f, ok := failure.As(l.Explain("", err)); ok {
				return nil, nil, proxy.PauseHint(f)
			}
		}
		return nil, nil, l.Explain("", err)
	}
	return pending, place, nil
}

// RefuseConn turns away a client the handshake cap has no place for
// (see proxy.Settings.Refuse); it implements proxy.Refuser.
func (p *Proxy) RefuseConn(ctx context.Context, client net.Conn, r proxy.Refusal) {
	p.cfg.Refuse(ctx, client, r, p)
}

// Refusing reads nothing: a client refused at accept is told as a server
// tells one over its max_connections, with an ERR in place of the
// greeting. It implements proxy.Engine.
func (p *Proxy) Refusing(_ context.Context, c net.Conn, _ *slog.Logger) (proxy.Handshake, error) {
	return &handshake{p: p, conn: c}, nil
}
