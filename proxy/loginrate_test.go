package proxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

// The tests run in synctest bubbles: time is the bubble's fake clock, so
// waits of seconds take none and every figure below is exact.

// arrive starts n logins to key one after the other (each is waiting
// before the next starts), each reporting its index and fake time when let
// through (or refused).
type outcome struct {
	i    int
	at   time.Duration
	err  error
	done func()
}

func arrive(t *testing.T, g *LoginGuard, key string, n int, hold bool) []outcome {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	var out []outcome
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			release, _, err := g.Wait(context.Background(), key)
			mu.Lock()
			out = append(out, outcome{i: i, at: time.Since(start), err: err, done: release})
			mu.Unlock()
			if err == nil && !hold {
				release()
			}
		})
		synctest.Wait() // i waits (or went) before i+1 arrives
	}
	if !hold {
		wg.Wait()
	}
	return out
}

func TestLoginGuardRateFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 10, Burst: 2}, 10*time.Second)
		out := arrive(t, g, "db:5432", 6, false)
		// Burst 2 at once, then one every 100 ms, in arrival order.
		want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}
		for n, o := range out {
			if o.err != nil || o.i != n || o.at != want[n] {
				t.Errorf("login #%d: index %d at %v err %v, want index %d at %v", n, o.i, o.at, o.err, n, want[n])
			}
		}
	})
}

func TestLoginGuardRefusesPastMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1}, 2*time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		got := make([]error, 5)
		at := make([]time.Duration, 5)
		for i := range 5 {
			wg.Go(func() {
				release, _, err := g.Wait(context.Background(), "db:5432")
				got[i], at[i] = err, time.Since(start)
				if err == nil {
					release()
				}
			})
			synctest.Wait()
		}
		wg.Wait()
		// 0 s, 1 s, 2 s go; the fourth and fifth would wait 3 s: refused
		// at once, and their cancelled reservations do not push anyone back.
		for i, wantErr := range []bool{false, false, false, true, true} {
			var rerr *LoginRateError
			if wantErr != errors.As(got[i], &rerr) {
				t.Errorf("login %d: err %v, want refused %v", i, got[i], wantErr)
			}
		}
		if at[1] != time.Second || at[2] != 2*time.Second || at[3] != 0 || at[4] != 0 {
			t.Errorf("times %v, want [0 1s 2s 0 0]", at)
		}
		// The bucket is as if the refused had never come: the next token
		// is due one second after the last taken (at 2 s).
		if _, waited, err := g.Wait(context.Background(), "db:5432"); err != nil || waited != time.Second {
			t.Errorf("after: waited %v err %v, want 1s", waited, err)
		}
	})
}

func TestLoginGuardContextDeadlineRefusesEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1}, 10*time.Second)
		if _, _, err := g.Wait(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		// A MySQL upstream greeted already may wait 500 ms at most.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := g.Wait(ctx, "k")
		var rerr *LoginRateError
		if !errors.As(err, &rerr) || time.Since(start) != 0 {
			t.Fatalf("err %v after %v, want a LoginRateError at once", err, time.Since(start))
		}
	})
}

func TestLoginGuardInProgressCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{MaxInProgress: 2}, 3*time.Second)
		out := arrive(t, g, "k", 4, true)
		if len(out) != 2 || out[0].i != 0 || out[1].i != 1 {
			t.Fatalf("let through %+v, want logins 0 and 1 only", out)
		}
		if n, waiting := g.InProgress("k"); n != 2 || waiting != 2 {
			t.Fatalf("in progress %d waiting %d, want 2 and 2", n, waiting)
		}
		// Leaving hands the place to the first in line.
		time.Sleep(time.Second)
		out[0].done()
		out[0].done() // a second release gives back nothing more
		synctest.Wait()
		if n, waiting := g.InProgress("k"); n != 2 || waiting != 1 {
			t.Fatalf("after one left: in progress %d waiting %d, want 2 and 1", n, waiting)
		}
		// The last one's wait ends 3 s after it came: refused.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n, waiting := g.InProgress("k"); n != 2 || waiting != 0 {
			t.Fatalf("after the wait: in progress %d waiting %d, want 2 and 0", n, waiting)
		}
	})
}

func TestLoginGuardInProgressFIFOAndRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{MaxInProgress: 1}, 5*time.Second)
		first, _, err := g.Wait(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []int
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				release, _, err := g.Wait(context.Background(), "k")
				errs[i] = err
				if err != nil {
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(2 * time.Second) // a login that takes 2 s
				release()
			})
			synctest.Wait()
		}
		time.Sleep(time.Second)
		first()
		wg.Wait()
		// 0 goes at 1 s, 1 at 3 s; 2 would go at 5 s, its wait's end: refused.
		if len(order) != 2 || order[0] != 0 || order[1] != 1 {
			t.Errorf("order %v, want [0 1]", order)
		}
		var rerr *LoginRateError
		if !errors.As(errs[2], &rerr) || !rerr.InProgress {
			t.Errorf("third: %v, want an in-progress refusal", errs[2])
		}
		f := LoginRateFailure(rerr)
		if f.Reason != failure.LoginRate || f.Code.SQLState != "53300" || f.Code.Errno != 1040 ||
			!strings.Contains(f.Cause, "--max-logins-in-progress") || !strings.Contains(f.Fix, "--max-logins-in-progress") {
			t.Errorf("failure %+v", f)
		}
	})
}

func TestLoginGuardCancelledWaiterLeavesLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{MaxInProgress: 1}, time.Minute)
		first, _, _ := g.Wait(context.Background(), "k")
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, _, err := g.Wait(ctx, "k")
			errc <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		first()
		if n, waiting := g.InProgress("k"); n != 0 || waiting != 0 {
			t.Fatalf("in progress %d waiting %d, want 0 and 0", n, waiting)
		}
	})
}

func TestLoginGuardPerKeyLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1}, time.Minute)
		g.Limit("cluster.dsql", LoginLimits{Rate: 90, Burst: 90})
		// Keys do not share a budget, and a key's own limits apply.
		for range 90 {
			if _, waited, err := g.Wait(context.Background(), "cluster.dsql"); err != nil || waited != 0 {
				t.Fatalf("dsql: waited %v err %v", waited, err)
			}
		}
		if _, waited, _ := g.Wait(context.Background(), "a:5432"); waited != 0 {
			t.Fatalf("a: waited %v", waited)
		}
		if _, waited, _ := g.Wait(context.Background(), "b:5432"); waited != 0 {
			t.Fatalf("b: waited %v", waited)
		}
		if _, waited, _ := g.Wait(context.Background(), "a:5432"); waited != time.Second {
			t.Fatalf("a again: waited %v, want 1s", waited)
		}
	})
}

func TestLoginGuardOffAndBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{}, 0)
		for range 1000 {
			release, waited, err := g.Wait(context.Background(), "k")
			if err != nil || waited != 0 {
				t.Fatalf("off: waited %v err %v", waited, err)
			}
			release()
		}
		// 1000 logins in no time, with no rate set: over half the default.
		if !g.Busy("k") {
			t.Error("not busy after 1000 logins in a second")
		}
		time.Sleep(2500 * time.Millisecond)
		if g.Busy("k") {
			t.Error("still busy 2.5 s later")
		}
		g2 := NewLoginGuard(LoginLimits{Rate: 100, Burst: 100}, time.Second)
		for range 40 {
			g2.Wait(context.Background(), "k")
		}
		if g2.Busy("k") {
			t.Error("40 logins at a rate of 100/s: busy")
		}
		for range 20 {
			g2.Wait(context.Background(), "k")
		}
		if !g2.Busy("k") {
			t.Error("60 logins at a rate of 100/s: not busy")
		}
	})
}

// The topology monitor's logins are counted at once and push the clients'
// turns later; they never wait themselves.
func TestLoginGuardCountTakesATokenWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 10, Burst: 1}, 0)
		start := time.Now()
		g.Count("i:5432")
		g.Count("i:5432") // over the burst: counted, not waited for
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Fatalf("Count waited %s", d)
		}
		// The bucket is in debt: a client that may not wait is refused.
		if _, _, err := g.Wait(context.Background(), "i:5432"); err == nil {
			t.Fatal("a client login went at once right after the monitor took the tokens")
		} else if _, ok := errors.AsType[*LoginRateError](err); !ok {
			t.Fatalf("want a *LoginRateError, got %v", err)
		}
		// Another instance's budget is its own.
		release, _, err := g.Wait(context.Background(), "other:5432")
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
}

// A login that leaves the line for a token (its client gone, or served by
// a session another client left) lets those behind it move up at once:
// only the head of the line holds a reservation.
func TestLoginGuardLeaversLetLineMoveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 10, Burst: 1}, 10*time.Second)
		start := time.Now()
		at := make([]time.Duration, 6)
		errs := make([]error, 6)
		cancels := make([]context.CancelFunc, 6)
		var wg sync.WaitGroup
		for i := range 6 {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			wg.Go(func() {
				release, _, err := g.Wait(ctx, "k")
				at[i], errs[i] = time.Since(start), err
				if err == nil {
					release()
				}
			})
			synctest.Wait()
		}
		for i := 1; i <= 3; i++ { // the head (1) and two behind it leave
			cancels[i]()
		}
		wg.Wait()
		for _, c := range cancels {
			c()
		}
		want := []time.Duration{0, 0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
		for i := range 6 {
			if left := i >= 1 && i <= 3; left != errors.Is(errs[i], context.Canceled) || at[i] != want[i] {
				t.Errorf("login %d: at %v err %v, want at %v, cancelled %v", i, at[i], errs[i], want[i], left)
			}
		}
	})
}

// WaitInLine (a login a Claim may serve meanwhile) is not refused at once
// when its token would come after MaxWait: it waits in line and goes if
// those ahead leave in time, else it is refused at MaxWait.
func TestLoginGuardWaitInLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1}, 2*time.Second)
		start := time.Now()
		at := make([]time.Duration, 5)
		errs := make([]error, 5)
		cancels := make([]context.CancelFunc, 5)
		var wg sync.WaitGroup
		for i := range 5 {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			wg.Go(func() {
				release, _, err := g.WaitInLine(ctx, "k")
				at[i], errs[i] = time.Since(start), err
				if err == nil {
					release()
				}
			})
			synctest.Wait()
		}
		// 0 went at once, 1 is due at 1 s, 2 at 2 s, 3 and 4 later than
		// MaxWait: they wait. At 0.5 s, 1 and 2 leave.
		time.Sleep(500 * time.Millisecond)
		cancels[1]()
		cancels[2]()
		wg.Wait()
		for _, c := range cancels {
			c()
		}
		var rerr *LoginRateError
		if errs[0] != nil || at[0] != 0 || errs[3] != nil || at[3] != time.Second || errs[4] != nil || at[4] != 2*time.Second {
			t.Errorf("0: %v %v; 3: %v %v; 4: %v %v; want 0 at 0, 3 at 1s, 4 at 2s", at[0], errs[0], at[3], errs[3], at[4], errs[4])
		}
		// With nobody leaving, the one behind a full line is refused at
		// MaxWait, not at once.
		g2 := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1}, 2*time.Second)
		start = time.Now()
		for range 3 {
			go func() {
				if release, _, err := g2.WaitInLine(context.Background(), "k"); err == nil {
					release()
				}
			}()
			synctest.Wait()
		}
		_, _, err := g2.WaitInLine(context.Background(), "k")
		if !errors.As(err, &rerr) || time.Since(start) != 2*time.Second {
			t.Errorf("behind a full line: %v after %v, want a LoginRateError at 2s", err, time.Since(start))
		}
	})
}

// Logins that may leave the line (claims) are not counted ahead of a
// login that may not (a retry, a fill): a long line of claims does not
// get it refused at once.
func TestLoginGuardClaimsNotCountedAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 5, Burst: 1}, 5*time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 40 { // 8 s of tokens, if none of them left
			go func() {
				if release, _, err := g.WaitInLine(ctx, "k"); err == nil {
					release()
				}
			}()
			synctest.Wait()
		}
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- g.WaitRate(context.Background(), "k") }()
		synctest.Wait()
		cancel() // the claims were served otherwise
		if err := <-errc; err != nil || time.Since(start) > time.Second {
			t.Fatalf("behind 40 claims that left: %v after %v, want a token within a second", err, time.Since(start))
		}
	})
}

// TryWait takes a free turn at once and nothing otherwise: not past the
// rate, not past a waiting line, not past the cap on logins in progress
// (which a rate-only turn does not take).
func TestLoginGuardTryWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewLoginGuard(LoginLimits{Rate: 1, Burst: 1, MaxInProgress: 1}, 10*time.Second)
		release, ok := g.TryWait("k", false)
		if !ok {
			t.Fatal("a free turn was not taken")
		}
		if n, _ := g.InProgress("k"); n != 1 {
			t.Fatalf("%d in progress, want 1", n)
		}
		if _, ok := g.TryWait("k", true); ok {
			t.Fatal("a second turn within the same second (burst 1)")
		}
		time.Sleep(time.Second)
		if _, ok := g.TryWait("k", false); ok {
			t.Fatal("a turn past the cap on logins in progress")
		}
		if _, ok := g.TryWait("k", true); !ok {
			t.Fatal("a rate-only turn was refused with a token free")
		}
		release()
		time.Sleep(time.Second)
		go func() {
			if release, _, err := g.Wait(context.Background(), "k"); err == nil {
				release()
			}
		}()
		go func() {
			if release, _, err := g.Wait(context.Background(), "k"); err == nil {
				release()
			}
		}()
		synctest.Wait() // one went, one waits in line for the next token
		if _, ok := g.TryWait("k", true); ok {
			t.Fatal("a turn taken ahead of a login waiting in line")
		}
		time.Sleep(2 * time.Second) // the one in line goes
		synctest.Wait()
	})
}

// lineLen is how many wait in the rate's line (the head included).
func (e *endpointGuard) lineLen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.line)
}
