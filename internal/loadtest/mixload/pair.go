package mixload

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pair is two long sessions of one engine that stop each other's
// statements from outside, as a client's cancel or an administrator's
// KILL does: the victim runs a long sleep, the watcher sees it sleeping
// on the server and has it stopped.
type pair[S session] struct {
	name   string // the actor's name, in failures
	failOp string // what failed, in failures
	doing  string // one round, for a hung actor
	tags   [2]string
	// round stops one sleep of victim v, watched by w.
	round func(ctx context.Context, v, w S, i int) error
	// extra is more work after round i (bogus cancels, ending a third
	// session): it names itself to a.
	extra func(ctx context.Context, a *actor, w S, i int) error
}

// runPair connects the victim and the watcher and runs rounds until the
// run's time is up; after each, both sessions must still be who they
// were.
func runPair[S session](r *run, a *actor, p pair[S], connect func(context.Context, string) (S, error)) {
	ctx, cancel := r.opCtx()
	victim, err := connect(ctx, p.tags[0])
	var watcher S
	if err == nil {
		watcher, err = connect(ctx, p.tags[1])
		if err != nil {
			victim.close()
		}
	}
	cancel()
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail(p.name, "connect", err)
		}
		return
	}
	defer victim.close()
	defer watcher.close()
	for i := 0; !r.stopping(); i++ {
		a.doing(p.doing)
		ctx, cancel := r.opCtx()
		err := p.round(ctx, victim, watcher, i)
		if err == nil {
			err = victim.identity(ctx)
		}
		if err == nil {
			err = watcher.identity(ctx)
		}
		if err == nil {
			err = p.extra(ctx, a, watcher, i)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail(p.name, p.failOp, err)
			}
			return
		}
		pause(r, time.Duration(100+victim.core().rng.IntN(400))*time.Millisecond)
	}
}

// pause sleeps unless the run ends first.
func pause(r *run, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.stop:
	}
}

// sleepSeconds is how long a statement to cancel would run: long enough
// that one that finishes by itself is a cancel that went astray.
const sleepSeconds = 20

// interruption is one engine's way of stopping a running statement from
// another connection, with the words its failures are told in.
type interruption struct {
	stmt    string // the sleeping statement: "SLEEP"
	where   string // where the watcher sees it: "the processlist"
	done    string // what stopping it is called, in the past: "killed"
	by      string // what stops it: "KILL QUERY"
	wrongOp string // the operation, in a wrong answer: "kill"
	// sleep is the victim's statement, run on a goroutine of its own.
	sleep func(ctx context.Context) error
	// watcher runs sleepingSQL, with the victim's backend id, to count
	// the victim's statements in the sleep itself, not merely running: a
	// stop that lands while the server still reads the statement is
	// rightly ignored.
	watcher     querier
	sleepingSQL string
	victimID    int64
	// stop sends the cancel or the KILL.
	stop func(ctx context.Context) error
	// stopped says whether err is the error a stopped statement ends with.
	stopped func(err error) bool
}

// interrupt runs one sleep of victim v and stops it: the sleep must end
// with the engine's error at once, not finish by itself and not hang.
func (r *run) interrupt(ctx context.Context, v *sessionCore, in interruption) error {
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	done := make(chan error, 1)
	go func() { done <- in.sleep(vctx) }()
	abandon := func(err error) error {
		vcancel() // the driver closes the victim's connection: it is lost anyway
		<-done
		return err
	}
	running := false
	for start := time.Now(); time.Since(start) < 15*time.Second; {
		var n int
		if err := in.watcher.queryRow(ctx, in.sleepingSQL, in.victimID).Scan(&n); err != nil {
			return abandon(fmt.Errorf("watch %s: %w", in.where, err))
		}
		if n == 1 {
			running = true
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("%s ended before it was %s: %v", in.stmt, in.done, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !running {
		return abandon(fmt.Errorf("%s did not show up sleeping in %s within 15s", in.stmt, in.where))
	}
	r.st.cancelsSent.Add(1)
	sent := time.Now()
	if err := in.stop(ctx); err != nil {
		return abandon(err)
	}
	select {
	case err := <-done:
		switch {
		case in.stopped(err):
			r.st.cancelled.Add(1)
			return nil
		case err == nil:
			r.st.cancelMissed.Add(1)
			return v.wrong(in.wrongOp, "%s(%d) finished %s after %s", in.stmt, sleepSeconds, time.Since(sent).Round(time.Millisecond), in.by)
		default:
			return fmt.Errorf("%s %s: %w", in.done, in.stmt, err)
		}
	case <-ctx.Done():
		return abandon(fmt.Errorf("%s %s: no answer: %w", in.done, in.stmt, ctx.Err()))
	}
}

// endSession has watcher w end a third session, whose backend is tID, as
// an administrator (or a failover) would, with end; once w, running
// countSQL with tID, sees the backend gone from the server, next must see
// the session's next query fail at once, not hang. what names end in
// failures ("KILL CONNECTION").
func (r *run) endSession(ctx context.Context, w querier, tID int64, what string,
	end func(ctx context.Context) error, countSQL string, next func(ctx context.Context) error) error {
	if err := end(ctx); err != nil {
		return err
	}
	r.st.terminated.Add(1)
	for start := time.Now(); ; {
		var n int
		if err := w.queryRow(ctx, countSQL, tID).Scan(&n); err != nil {
			return fmt.Errorf("watch backend %d after %s: %w", tID, what, err)
		}
		if n == 0 {
			break
		}
		if time.Since(start) > 15*time.Second {
			return fmt.Errorf("backend %d still there 15s after %s", tID, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := next(ctx); err != nil {
		return err
	}
	r.st.terminatedSeen.Add(1)
	return nil
}
