package postgres

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

// Session reuse (proxy.Pool) for Postgres: a session whose client left
// cleanly (tracker) is reset with DISCARD ALL, after the cancels in
// flight to its backend have been delivered, and parked under the key of
// everything its login set; the next client with that key gets it with
// its own application_name SET and a cancel key of its own.

// PoolKey names the sessions this client may take over: the endpoint,
// user and database, and every startup parameter but application_name
// (RESET ALL returns each to its value at connection start, so only a
// client that would have sent the same may have the session); "" when
// sessions are not reused. It implements proxy.Reuser.
func (h *handshake) PoolKey() string {
	if h.poolKey == nil {
		key := h.makePoolKey()
		h.poolKey = &key
	}
	return *h.poolKey
}

// makePoolKey is PoolKey, made once per client: the core asks for it at
// the take, the park and the minimum, and it formats every parameter.
func (h *handshake) makePoolKey() string {
	if h.p.cfg.Pool == nil || h.startup == nil || !printableASCII(h.startup.Params["application_name"]) || namesInOptions(h.startup.Params["options"]) {
		return ""
	}
	up := h.p.cfg.Upstream
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q", net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), h.who.User, h.who.Database)
	params := h.startup.RuntimeParams()
	delete(params, "application_name")
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if strings.EqualFold(name, "application_name") {
			return "" // PostgreSQL takes GUC names in any case; Adopt's SET would override it
		}
		fmt.Fprintf(&b, " %q=%q", name, params[name])
	}
	return b.String()
}

// printableASCII says whether v may be put into SQL (Adopt's SET) as
// it is: in a client-only multibyte encoding (SJIS, BIG5, GBK...) a
// backslash can be the second byte of a character, which takes an E”
// literal's doubled backslash apart, and bytes invalid in the client
// encoding fail the SET. A login keeps only printable ASCII of an
// application_name anyway; a client with anything else logs in.
func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// namesInOptions says whether a client's options (-c name=value ...)
// may set application_name: Adopt's SET (of the application_name
// parameter, or of "" for a client that sent none) would override it, so
// such a client logs in. GUC names are case-insensitive, and --name=value
// may spell an underscore as a dash.
func namesInOptions(options string) bool {
	o := strings.ToLower(options)
	return strings.Contains(o, "application_name") || strings.Contains(o, "application-name")
}

// Adopt readies a parked session for this client: its application_name
// is SET (to the empty string when it sent none, so the last client's never shows),
// which also proves the session is still alive. It implements
// proxy.Reuser.
//
// A parked session has been reset (DISCARD ALL) or never used, so its
// application_name is its login's: a client that wants that one (every
// pgbench client, every pool of one application) needs no SET, and is
// greeted without a round trip upstream. Its session is then proved alive
// by a look at the socket instead (proxy.Quiet): a server that ended it
// while it was parked has left its last message or its end there.
func (h *handshake) Adopt(ctx context.Context, p proxy.Pooled) (proxy.Session, error) {
	old := p.(*session)
	want := h.startup.Params["application_name"]
	changed, err := adoptApp(ctx, old, want)
	if err != nil {
		return nil, err
	}
	s := &session{raw: old.raw, params: maps.Clone(old.params), key: old.key, tx: 'I', born: old.born, p: h.p, age: old.age, host: old.host,
		resetApp: old.resetApp, resetAppKnown: old.resetAppKnown, answered: old.answered}
	maps.Copy(s.params, changed)
	s.park = proxy.NewParkConn(s.raw, newTracker(s.tx))
	return s, nil
}

// adoptApp gives a parked session the application_name want: nothing to
// do but look at the socket when it already has it and answered within
// proxy.QuietFor (see Adopt), else a SET, which proves it alive. It returns
// the ParameterStatus values to greet with.
func adoptApp(ctx context.Context, s *session, want string) (map[string]string, error) {
	if s.resetAppKnown && want == s.resetApp {
		if decided, err := proxy.LookParked(s.raw, s.answered); err != nil {
			return nil, err
		} else if decided {
			// A SET to the value it has would not be reported again,
			// so say it here: the last client's SET may still be in params.
			return map[string]string{"application_name": want}, nil
		}
	}
	return pgwire.SetParams(ctx, s.raw, map[string]string{"application_name": want})
}

// Clean says whether the client left the session cleanly; it implements
// proxy.Parkable.
func (s *session) Clean() bool { return s.park != nil && s.park.Clean() }

// Reset waits for the cancels in flight to the session's backend, then
// runs DISCARD ALL and keeps the parameters the server reported. It
// implements proxy.Pooled.
func (s *session) Reset(ctx context.Context) error {
	if err := s.p.cancels.inflight.wait(ctx, s.backend()); err != nil {
		return fmt.Errorf("a cancel request to the session is still being delivered: %w", err)
	}
	changed, err := pgwire.Reset(ctx, s.raw, pgwire.ResetQuery)
	if err != nil {
		return err
	}
	maps.Copy(s.params, changed)
	s.answered = time.Now()
	return nil
}

// Discard closes the session. It implements proxy.Pooled.
func (s *session) Discard() { s.raw.Close() }

// Born is when the session logged in. It implements proxy.Pooled.
func (s *session) Born() time.Time { return s.born }

// Hosts are the endpoint the session signed for and the address it is
// connected to. It implements proxy.Pooled.
func (s *session) Hosts() []string {
	up := s.p.cfg.Upstream
	hosts := []string{net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), s.raw.RemoteAddr().String()}
	if s.host != "" { // an Aurora instance the router chose
		hosts = append(hosts, net.JoinHostPort(s.host, strconv.Itoa(up.Port)))
	}
	return hosts
}

// backend is where the session's cancels go (see Finish).
func (s *session) backend() backendRef {
	return backendRef{addr: s.raw.RemoteAddr().String(), pid: s.key.PID}
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

// Relogin is a login as this client's (its user, database and startup
// parameters, application_name included) without its connection, for the
// pool's minimum. It implements proxy.Relogger.
func (h *handshake) Relogin() func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	return h.relogin(nil)
}

// ReloginAt is Relogin to the Aurora instance d. It implements
// proxy.InstanceRelogger.
func (h *handshake) ReloginAt(d proxy.Destination) func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	return h.relogin(&d)
}

// relogin is Relogin to the endpoint (at nil) or the instance at.
func (h *handshake) relogin(at *proxy.Destination) func(ctx context.Context, user, token string) (proxy.Pooled, error) {
	again := &handshake{p: h.p, startup: h.startup, who: h.who}
	return func(ctx context.Context, user, token string) (proxy.Pooled, error) {
		var s proxy.Session
		var err error
		if at == nil {
			s, err = again.Login(ctx, user, token)
		} else {
			s, err = again.LoginAt(ctx, *at, user, token)
		}
		if err != nil {
			return nil, err
		}
		return s.(*session), nil
	}
}
