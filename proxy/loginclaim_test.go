package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// awaitSetup is Settings with a guard (rate per second, burst 1, wait)
// and a pool, and a Login for a client on a real socket (peer: the
// client's end).
func awaitSetup(t *testing.T, rate float64, wait time.Duration) (*Settings, *Login, func() error) {
	t.Helper()
	peer, conn := netpair.TCP(t)
	s := &Settings{HandshakeTimeout: 20 * time.Second, FirstPacketTimeout: 20 * time.Second, Observer: NopObserver{},
		Guard: NewLoginGuard(LoginLimits{Rate: rate, Burst: 1, MaxInProgress: 1}, wait), Pool: NewPool(PoolOptions{})}
	t.Cleanup(s.Pool.Close)
	l := s.BeginLogin(context.Background(), conn)
	t.Cleanup(l.End)
	return s, l, peer.Close
}

// AwaitParked (a MySQL client before its greeting): a turn when the rate
// has a token, a session left meanwhile when it comes first (the turn's
// token given back to the line), the guard's refusal past its wait, and
// an early end when the client goes. Its turn takes no place among the
// logins in progress (MaxInProgress 1 here: a second would wait).
func TestAwaitParked(t *testing.T) {
	// A token every 2 s: the bounds below leave a second or more to a
	// loaded machine's stalls either way.
	s, l, _ := awaitSetup(t, 0.5, 10*time.Second)
	p, tt, err := s.AwaitParked(l, "k", "db:3306")
	if err != nil || p != nil || tt == nil {
		t.Fatalf("first: session %v turn %v err %v, want a turn at once", p, tt, err)
	}
	if n, _ := s.Guard.InProgress("db:3306"); n != 0 {
		t.Fatalf("%d logins in progress after a turn before the greeting, want 0: only the rate", n)
	}
	tt.Drop()

	// The next token is due in 2 s; a session left after 100 ms wins.
	left := newFake("left")
	go func() {
		time.Sleep(100 * time.Millisecond)
		s.Pool.Put("k", left)
	}()
	start := time.Now()
	p, tt, err = s.AwaitParked(l, "k", "db:3306")
	if err != nil || p != left || tt != nil || time.Since(start) > 1800*time.Millisecond {
		t.Fatalf("second: session %v turn %v err %v after %v, want the left session before the token (2 s)", p, tt, err, time.Since(start))
	}
	// Its place in line went back: the next login takes the token that
	// was due then (at 2 s), not one after it (at 4 s).
	start = time.Now()
	if p, tt, err = s.AwaitParked(l, "k", "db:3306"); err != nil || tt == nil || p != nil {
		t.Fatalf("third: session %v turn %v err %v", p, tt, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("third waited %v, want under 2 s (the second's token back in line), not about 4 s", d)
	}
	tt.Drop()

	// Past the guard's wait with nothing left: refused as login_rate.
	s2, l2, _ := awaitSetup(t, 0.5, 300*time.Millisecond)
	if _, tt, err := s2.AwaitParked(l2, "k", "db:3306"); err != nil {
		t.Fatal(err)
	} else {
		tt.Drop()
	}
	_, _, err = s2.AwaitParked(l2, "k", "db:3306")
	if f, ok := failure.As(err); !ok || f.Reason != failure.LoginRate {
		t.Fatalf("past the wait: %v, want a login_rate failure", err)
	}

	// A client that hangs up while it waits leaves the line at once
	// (where its socket can be looked at: Quiet).
	s3, l3, hangUp := awaitSetup(t, 0.1, 20*time.Second)
	if _, known := Quiet(l3.Client); !known {
		t.Log("this system cannot look at a socket without reading it: the hang-up is not watched")
		return
	}
	if _, tt, err := s3.AwaitParked(l3, "k", "db:3306"); err != nil {
		t.Fatal(err)
	} else {
		tt.Drop()
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		hangUp()
	}()
	start = time.Now()
	_, tt, err = s3.AwaitParked(l3, "k", "db:3306")
	if err == nil || tt != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("client gone: turn %v err %v after %v, want an error within 2 s", tt, err, time.Since(start))
	}
	if waiting := s3.Guard.endpoint("db:3306").lineLen(); waiting != 0 {
		t.Fatalf("%d still in the rate's line after the client went", waiting)
	}
}

// turnHolder is a Handshake holding a turn taken before its greeting.
type turnHolder struct {
	Handshake
	tt *Turn
}

func (h *turnHolder) TakenTurn() *Turn {
	t := h.tt
	h.tt = nil
	return t
}

// A turn taken before the greeting serves its login when the login goes
// where the turn was taken for, with no second wait; a login the router
// sent elsewhere since waits its own turn there.
func TestTakenTurnServesItsKeyOnly(t *testing.T) {
	// A token every 5 s: a login that waited for one instead of using its
	// taken turn would take seconds, well past any stall.
	s, l, _ := awaitSetup(t, 0.2, 10*time.Second)
	_, tt, err := s.AwaitParked(l, "k", "writer-a:3306")
	if err != nil || tt == nil {
		t.Fatalf("turn: %v %v", tt, err)
	}
	start := time.Now()
	release, err := s.awaitLoginFor(l, &turnHolder{tt: tt}, "writer-a:3306")
	if err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("same key: err %v after %v, want the taken turn at once", err, time.Since(start))
	}
	release()
	// A turn taken for writer-c does not let a login to writer-b skip
	// writer-b's own guard (a place taken there).
	_, tt, err = s.AwaitParked(l, "k", "writer-c:3306")
	if err != nil || tt == nil {
		t.Fatalf("second turn: %v %v", tt, err)
	}
	release, err = s.awaitLoginFor(l, &turnHolder{tt: tt}, "writer-b:3306")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Guard.InProgress("writer-b:3306"); n != 1 {
		t.Errorf("writer-b: %d logins in progress, want 1: its own turn", n)
	}
	release()
}
