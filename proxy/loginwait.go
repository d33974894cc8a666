package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// LoginObserver hears how the login-rate guard treats one upstream's
// logins (metrics). An Observer that also implements it gets the calls.
type LoginObserver interface {
	// LoginWaited: a login waited d for its turn (0 when none) and went.
	LoginWaited(d time.Duration)
	// LoginWaitRefused: a login would have waited too long and was refused.
	LoginWaitRefused()
	// LoginRetried: a failed login was tried again with a fresh token,
	// for reason (RetryThrottled, RetryBusyAuth).
	LoginRetried(reason string)
	// LoginsInProgress: delta logins started (1) or finished (-1).
	LoginsInProgress(delta int)
}

// UpstreamWaiting is implemented by a Handshake whose upstream connection
// is open before the login and cannot wait past a time: a MySQL server
// closes a greeted connection left unanswered for its connect_timeout, so
// a login waiting in the guard must go, or be refused, before then. Such
// a login waits for the rate only, not for a place among the logins in
// progress. A zero time sets no limit.
type UpstreamWaiting interface {
	LoginBy() time.Time
}

// TurnHolder is implemented by a Handshake that may have waited for its
// login's turn in the guard before greeting its client (AwaitParked):
// TakenTurn hands that turn over once (nil: none taken), and the login
// then waits no more.
type TurnHolder interface {
	TakenTurn() *Turn
}

// TokenRejecter is implemented by an Engine that can tell its server's
// generic rejection of a token (Postgres "PAM authentication failed",
// MySQL "Access denied"): RDS may answer a throttled login with it, so
// while the endpoint is busy such a failure is tried once more.
type TokenRejecter interface {
	TokenRejected(err error) bool
}

// Reasons a login is tried again (the metric's label).
const (
	// RetryThrottled: the server said "too many competing requests".
	RetryThrottled = "throttled"
	// RetryBusyAuth: a generic token rejection while the endpoint ran
	// above half the guard's rate over the last second.
	RetryBusyAuth = "auth_failed_busy"
)

// ThrottleText is how RDS words its refusal of an IAM login over its rate
// ("The IAM authentication failed because of too many competing
// requests"); matched without regard to case in any server error.
const ThrottleText = "too many competing requests"

// GuardKey is the guard's key for t: the host:port tokens are signed for.
func GuardKey(t Target) string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// awaitLoginFor waits for the turn of a login to key in the guard (none:
// at once): the configured endpoint, or the Aurora instance a routed
// login goes to (RDS throttles IAM logins per instance). A login refused
// by it gets a login_rate failure.
func (s *Settings) awaitLoginFor(l *Login, h Handshake, key string) (func(), error) {
	if s.Guard == nil {
		return func() {}, nil
	}
	if th, ok := h.(TurnHolder); ok {
		if tt := th.TakenTurn(); tt != nil {
			if tt.key == key {
				return s.tookTurn(l, tt.t) // taken before the client was greeted
			}
			// Taken for another instance than the router chose since (a
			// writer change): a turn of this one's.
			tt.Drop()
		}
	}
	t := s.waitTurn(l.Ctx, l, h, key, false, false)
	return s.tookTurn(l, t)
}

// turn is how a login's wait in the guard ended (waitTurn).
type turn struct {
	leave  func() // the place to give back; nil on err
	waited time.Duration
	busy   bool // the key was busy when the login went (Guard.Busy)
	err    error
}

// waitTurn waits in the guard (not nil) for a login to key, within ctx;
// tookTurn then tells the client and the metrics. claimed: the login
// waits in line past a due time over --login-wait, as a Claim may serve
// it and those ahead of it meanwhile (LoginGuard.WaitInLine). rateOnly:
// for a token of the rate, not a place among the logins in progress (a
// MySQL login before its client's greeting: AwaitParked). It touches
// nothing of l's, so it may run beside l's goroutine (claimTurn).
func (s *Settings) waitTurn(ctx context.Context, l *Login, h Handshake, key string, claimed, rateOnly bool) turn {
	var by time.Time
	if uw, ok := h.(UpstreamWaiting); ok {
		by = uw.LoginBy()
	}
	if rateOnly || !by.IsZero() {
		// The rate only. A MySQL upstream connection is open and its
		// server's clock runs: the server counts this login in progress
		// since its greeting already (the cap on unanswered greetings
		// bounds those), and a wait in line for a place could outlast its
		// connect_timeout on a loaded machine; before the greeting, a
		// client that never answers it would hold the place.
		if !by.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, by)
			defer cancel()
		}
		start := time.Now()
		wait := s.Guard.WaitRate
		if claimed {
			wait = s.Guard.WaitRateInLine
		}
		err := wait(ctx, key)
		return turn{leave: func() {}, waited: time.Since(start), busy: err == nil && s.Guard.Busy(key), err: err}
	}
	wait := s.Guard.Wait
	if claimed {
		wait = s.Guard.WaitInLine
	}
	leave, waited, err := wait(ctx, key)
	// Busy now, when the login goes: its failure may come back seconds
	// later on a loaded machine, when the window has moved on.
	return turn{leave: leave, waited: waited, busy: err == nil && s.Guard.Busy(key), err: err}
}

// tookTurn ends a login's wait in the guard: refused (a login_rate
// failure), or going, counted in progress until the returned release.
func (s *Settings) tookTurn(l *Login, t turn) (func(), error) {
	lo, _ := s.Observer.(LoginObserver)
	if t.err != nil {
		if rerr, ok := errors.AsType[*LoginRateError](t.err); ok {
			if lo != nil {
				lo.LoginWaitRefused()
			}
			return nil, LoginRateFailure(rerr)
		}
		return nil, t.err
	}
	l.guardBusy = t.busy
	if t.waited > time.Millisecond {
		l.Log.Debug("login waited for its turn", "waited", t.waited.Round(time.Millisecond))
	}
	if lo != nil {
		lo.LoginWaited(t.waited)
		lo.LoginsInProgress(1)
		return func() { t.leave(); lo.LoginsInProgress(-1) }, nil
	}
	return t.leave, nil
}

// retryReason says why a failed login is worth one more try with a fresh
// token, or "" when it is not. A generic rejection counts when the
// endpoint was busy as the login went or is busy as it failed.
func (s *Settings) retryReason(l *Login, key string, err error) string {
	if err == nil || l.Ctx.Err() != nil || l.Evicted() != nil {
		return ""
	}
	if strings.Contains(strings.ToLower(err.Error()), ThrottleText) {
		return RetryThrottled
	}
	if tr, ok := l.engine.(TokenRejecter); ok && s.Guard != nil && tr.TokenRejected(err) && (l.guardBusy || s.Guard.Busy(key)) {
		return RetryBusyAuth
	}
	return ""
}

// loginWithRetry has h log in with tok, and once more with a fresh token
// (after a token of the guard's rate) when the server throttled it.
func (s *Settings) loginWithRetry(ctx context.Context, l *Login, h Handshake, user, tok string) (Session, error) {
	t := l.target
	return s.retryLogin(ctx, l, t.Host, t.Port, user, tok, func(ctx context.Context, tok string) (Session, error) { return h.Login(ctx, user, tok) })
}

// retryLogin runs login with tok, a login to host:port (the guard's key and
// what tokens are signed for), and once more with a fresh token (after a
// token of the guard's rate) when the server throttled it.
func (s *Settings) retryLogin(ctx context.Context, l *Login, host string, port int, user, tok string, login func(context.Context, string) (Session, error)) (Session, error) {
	key := net.JoinHostPort(host, strconv.Itoa(port))
	sess, err := login(ctx, tok)
	why := s.retryReason(l, key, err)
	if why == "" {
		return sess, err
	}
	l.Log.Info("upstream login failed; trying once more with a fresh token", "why", why, "host", host, "err", err)
	if lo, ok := s.Observer.(LoginObserver); ok {
		lo.LoginRetried(why)
	}
	if s.Guard != nil {
		if gerr := s.Guard.WaitRate(ctx, key); gerr != nil {
			return nil, err // no turn in time: the first failure is the story
		}
	}
	tok, terr := s.Tokens.Token(ctx, host, port, s.SigningRegion(), user)
	if terr != nil {
		return nil, terr
	}
	return login(ctx, tok)
}

// LoginRateFailure is what a client refused by the guard is told.
func LoginRateFailure(e *LoginRateError) *failure.Failure {
	var cause string
	fix := "connect again in a moment; RDS throttles IAM logins near 200 a second per instance, so open fewer new connections at once (keep them in a pool) or let logins wait longer (--login-wait)"
	if e.InProgress {
		fix = "connect again in a moment; the upstream is slow to answer logins (check its load), or raise --max-logins-in-progress if it can take more at once"
		cause = fmt.Sprintf("too many logins to %s at once: %d are in progress (the proxy's limit, --max-logins-in-progress) and no place freed within %s (the rest of the handshake timeout)",
			e.Key, e.Limits.MaxInProgress, e.Wait.Round(time.Millisecond))
	} else {
		cause = fmt.Sprintf("too many logins to %s: the proxy paces IAM logins to %g a second (burst %d, --login-rate, --login-burst) and this one would have waited more than %s (--login-wait)",
			e.Key, e.Limits.Rate, e.Limits.Burst, e.Wait.Round(time.Millisecond))
	}
	return &failure.Failure{Reason: failure.LoginRate, Code: failure.Code{SQLState: "53300", Errno: 1040}, Err: e, Cause: cause, Fix: fix}
}
