package proxy

import (
	"context"
	"log/slog"
	"net"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Engine is what one wire protocol adds to the core (see Serve): how a
// client's handshake is read and finished, how the upstream login goes,
// and the failures only it can explain. Everything else (admission,
// tokens, deadlines, the drain, the refusal sink, the relay, the log line
// and metrics) is the core's, the same for every engine.
//
// The seam is cut where an upstream session could come from elsewhere: a
// Handshake finishes the client's side from any Session of its engine, so
// a pool of sessions already logged in can hand one over in place of
// Login; and a further engine on the same wire (another Postgres-wire
// database with its own token and trust) reuses a Handshake with its own
// Target and token source.
type Engine interface {
	// Target is the upstream, for tokens and for messages.
	Target() Target
	// Open reads the client's handshake up to where the client has said
	// who it is, calling l.Admit where the connection starts to cost
	// something and l.FirstPacket once the client has spoken. It always
	// returns a Handshake, which can tell the client of a failure in
	// whatever state the protocol is in. A *Handled error says the
	// engine has finished the connection itself (a Postgres cancel
	// request).
	Open(l *Login) (Handshake, error)
	// Explain turns a failed login into a failure for the errors only
	// this engine knows (its server's errors, its protocol's), or nil. It
	// runs after ExplainLoginFailure.
	Explain(ctx context.Context, user string, err error) *failure.Failure
	// Refusing reads what the protocol needs before a client refused at
	// accept can be told why (Postgres: the opening, to answer an
	// SSLRequest; a cancel request is forwarded and Handled). The
	// client's deadline is already set.
	Refusing(ctx context.Context, c net.Conn, log *slog.Logger) (Handshake, error)
}

// Handshake is one client's handshake with an engine, after Open.
type Handshake interface {
	// Who the client is, for the token and the log.
	Who() Who
	// Login logs in upstream as user with the token.
	Login(ctx context.Context, user, token string) (Session, error)
	// Finish completes the client's handshake from s (Postgres: the
	// parameters, a cancel key of the proxy's own and ReadyForQuery;
	// MySQL: the server's OK). A *failure.Failure is told to the client;
	// any other error means the client went away.
	Finish(s Session) error
	// Client is the client's connection as the relay uses it.
	Client() net.Conn
	// Fail tells the client f in its protocol, after letting go of any
	// upstream connection held for it.
	Fail(f *failure.Failure) error
	// Close releases what the handshake holds (an upstream connection
	// not logged in, a cancel key); the core defers it.
	Close()
}

// Who is who a client says it is, after the proxy's --db-user.
type Who struct {
	User, Database string
	Attrs          []any // more for the log: a MySQL connection id
}

// Session is an upstream connection logged in, ready to relay.
type Session interface {
	Upstream() net.Conn
	// Farewell follows the session for a message to the client when the
	// upstream breaks it off (nil: none).
	Farewell() Farewell
}

// Handled is returned by Engine.Open when the engine has dealt with the
// connection itself and nothing failed: it is counted under Reason.
type Handled struct{ Reason failure.Reason }

func (h *Handled) Error() string { return "handled: " + string(h.Reason) }
