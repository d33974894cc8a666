package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// Resume holds logins to an upstream that may be paused (Aurora
// Serverless v2 at 0 ACU): while it refuses or resets connections in the
// way a resuming cluster does, a login is retried with backoff instead of
// failing, for up to Wait from its first attempt. The client's handshake
// waits meanwhile (its timeouts are raised for such upstreams: see
// internal/launch). A nil *Resume is off: one attempt.
//
// It is opt-in (resume_wait) because it makes a dead database look like a
// slow one: without it a refused connect fails at once with its cause;
// with it the client learns only after Wait.
type Resume struct {
	wait time.Duration

	mu   sync.Mutex
	woke chan struct{} // closed when a login gets through; nil: nobody waits
}

// NewResume holds logins for up to wait; nil (off) for wait <= 0.
func NewResume(wait time.Duration) *Resume {
	if wait <= 0 {
		return nil
	}
	return &Resume{wait: wait}
}

// Wait is how long a login is held (0: off).
func (r *Resume) Wait() time.Duration {
	if r == nil {
		return 0
	}
	return r.wait
}

// The backoff between attempts: from resumeFirst, doubling, capped at
// resumeCap, each sleep jittered to between half and all of it so that a
// crowd of held logins does not retry in step. With the cap at a second,
// no login waits much more than a second past the resume, and the first
// login through wakes the others at once (see woken).
const (
	resumeFirst = 100 * time.Millisecond
	resumeCap   = time.Second
)

// Resumer is implemented by an engine that can tell a failed login
// attempt that means "the upstream is resuming" (refused, reset, closed
// before its first answer, "starting up") from any other: only those are
// retried. Each engine has one such function.
type Resumer interface {
	Resuming(err error) bool
}

// Held is what Hold needs besides the attempt: the upstream's Resume
// (nil: off), the upstream and log for messages, the engine's
// classification of a failed attempt, and Stop, the drain: it ends the
// holding between attempts with ShutdownFailure, so that a held client is
// told the proxy is shutting down rather than holding up the shutdown.
type Held struct {
	Resume   *Resume
	Target   Target
	Log      *slog.Logger
	Resuming func(error) bool
	Stop     <-chan struct{}
}

// Hold runs attempt, and while h.Resume is on and it fails in a way
// h.Resuming says is a resume, runs it again with backoff until it
// succeeds, fails otherwise, ctx ends, Stop closes or the wait from the
// first attempt is over. A wait that runs out gives a *failure.Failure
// naming the wait and the setting, Stop a ShutdownFailure; any other
// error is attempt's own.
func Hold[T any](ctx context.Context, h Held, attempt func(context.Context) (T, error)) (T, error) {
	r := h.Resume
	v, err := attempt(ctx)
	if r == nil || err == nil || h.Resuming == nil || !h.Resuming(err) {
		if err == nil && r != nil {
			r.wake()
		}
		return v, err
	}
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	deadline := start.Add(r.wait)
	log.Info("the upstream refuses connections as a resuming cluster does; holding the login (resume_wait)", "err", err, "resume_wait", r.wait)
	tries := 1
	for delay := resumeFirst; ; delay = min(2*delay, resumeCap) {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		sleep := min(delay/2+rand.N(delay/2+1), left)
		timer := time.NewTimer(sleep)
		select {
		case <-timer.C:
		case <-r.woken():
			timer.Stop()
		case <-h.Stop:
			timer.Stop()
			return v, ShutdownFailure(err)
		case <-ctx.Done():
			timer.Stop()
			return v, err
		}
		tries++
		v, err = attempt(ctx)
		if err == nil {
			r.wake()
			log.Info("the upstream resumed: logged in after holding the login", "waited", time.Since(start).Round(time.Millisecond), "attempts", tries)
			return v, nil
		}
		if ctx.Err() != nil || !h.Resuming(err) {
			return v, err
		}
	}
	t := h.Target
	return v, failure.Wrap(failure.UpstreamDial, err,
		fmt.Sprintf("the upstream %s at %s still refused connections after the proxy held this login %s for it to resume (resume_wait, %d attempts; last: %s)", t.Host, t.DialAddr, r.wait, tries, err),
		"if the DB is an Aurora Serverless v2 cluster that was paused a long time, it can take longer to resume: raise resume_wait (--resume-wait); otherwise check that the DB is running and reachable from here, and its status and events")
}

// woken is closed when the next login gets through: an upstream that
// lets one login in has resumed, so the others held for it try again at
// once rather than at their next backoff.
func (r *Resume) woken() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.woke == nil {
		r.woke = make(chan struct{})
	}
	return r.woke
}

// wake wakes the logins held for the upstream (see woken).
func (r *Resume) wake() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.woke != nil {
		close(r.woke)
		r.woke = nil
	}
}

// holdLogin runs a login attempt as user through s.Resume with the
// engine's own classification (see Resumer), each attempt within the
// connect timeout. With resume_wait off, a login turned away as a
// resuming cluster turns it away is explained with PauseHint.
func (s *Settings) holdLogin(l *Login, user string, attempt func(ctx context.Context) (Session, error)) (Session, error) {
	var resuming func(error) bool
	if r, ok := l.engine.(Resumer); ok {
		resuming = r.Resuming
	}
	sess, err := Hold(l.Ctx, Held{Resume: s.Resume, Target: l.target, Log: l.Log, Resuming: resuming, Stop: l.Drain.Done()}, func(ctx context.Context) (Session, error) {
		cctx, cancel := context.WithTimeout(ctx, s.ConnectTimeout)
		defer cancel()
		return attempt(cctx)
	})
	if err != nil && s.Resume == nil && resuming != nil && resuming(err) && l.Ctx.Err() == nil && l.Evicted() == nil {
		return nil, PauseHint(s.explain(l.Ctx, l.engine, user, err))
	}
	return sess, err
}

// PauseHint adds to f, a login turned away the way a paused Aurora
// Serverless v2 cluster turns logins away while it resumes, what to set
// when the upstream is such a cluster: without resume_wait the proxy
// fails such a login at once, and the person reading the error may not
// know the cluster pauses.
func PauseHint(f *failure.Failure) *failure.Failure {
	hinted := *f
	hinted.Fix = strings.TrimSuffix(hinted.Fix, ".")
	if hinted.Fix != "" {
		hinted.Fix += "; "
	}
	hinted.Fix += "if it is an Aurora Serverless v2 cluster that pauses (0 ACU), set resume_wait (--resume-wait 60s) so that logins wait while it resumes"
	return &hinted
}

// ConnectionTurnedAway says err is an upstream turning a connection away
// before it answered anything: the connect refused, or the connection
// reset or closed (EOF) during the dial, TLS or the first read. It is
// what the engines' Resuming functions share.
func ConnectionTurnedAway(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
