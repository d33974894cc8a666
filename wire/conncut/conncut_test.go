package conncut

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/netpair"
)

// readOne reads one byte from c, bounded so that a hang fails the test.
func readOne(t *testing.T, c net.Conn) error {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		got <- err
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("read hangs")
		return nil
	}
}

func TestReadsCutOnCancelWritesStillWork(t *testing.T) {
	a, b := netpair.TCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	k := Reads(ctx, b)
	defer k.Stop()
	cancel()
	if err := readOne(t, b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the cut: %v, want a timeout", err)
	}
	if !k.Happened() {
		t.Fatal("Happened is false after the cut")
	}
	if _, err := b.Write([]byte("why")); err != nil {
		t.Fatalf("write after a cut of reads: %v", err)
	}
	if err := readOne(t, a); err != nil {
		t.Fatalf("peer: %v", err)
	}
}

func TestAllCutsWritesToo(t *testing.T) {
	_, b := netpair.TCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	k := All(ctx, b)
	defer k.Stop()
	cancel()
	waitFor(t, k.Happened)
	if _, err := b.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after the cut: %v, want a timeout", err)
	}
}

// TestSetDoesNotUndoACut: a deadline moved after the cut (the client's
// first packet arriving just after a drain began) stays in the past.
func TestSetDoesNotUndoACut(t *testing.T) {
	a, b := netpair.TCP(t)
	k := Reads(context.Background(), b)
	defer k.Stop()
	k.Now()
	k.Set(time.Now().Add(time.Hour))
	a.Write([]byte("x"))
	if err := readOne(t, b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a timeout", err)
	}
}

// TestNoCutAfterStop: once Stop has returned, neither the context nor Now
// touches the deadlines the caller sets.
func TestNoCutAfterStop(t *testing.T) {
	a, b := netpair.TCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	k := Reads(ctx, b)
	if k.Stop() {
		t.Fatal("Stop reports a cut that did not happen")
	}
	b.SetReadDeadline(time.Time{})
	cancel()
	k.Now()
	k.Stop()
	a.Write([]byte("x"))
	if err := readOne(t, b); err != nil {
		t.Fatalf("read after Stop: %v", err)
	}
}

// heldConn holds a cut (a deadline set in the past) half way, after it
// has started and before it takes effect, until the test lets it go on.
type heldConn struct {
	net.Conn
	started, goOn, finished chan struct{}
}

func (c *heldConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		close(c.started)
		<-c.goOn
		defer close(c.finished)
	}
	return c.Conn.SetReadDeadline(t)
}

// TestStopWaitsForACutInProgress: the race this package exists for. The
// cut's callback has started when Stop is called; as soon as Stop returns
// the caller clears the deadline (as proxy.Login.Relaying does), and that
// must stick: the cut may not land afterwards. The interleaving is forced:
// the cut goes on only once Stop has returned or has waited a while.
func TestStopWaitsForACutInProgress(t *testing.T) {
	a, b := netpair.TCP(t)
	c := &heldConn{Conn: b, started: make(chan struct{}), goOn: make(chan struct{}), finished: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	k := Reads(ctx, c)
	cancel()
	waitClosed(t, c.started, "the cut never started")
	stopped := make(chan bool, 1)
	go func() {
		wasCut := k.Stop()
		c.SetReadDeadline(time.Time{}) // the caller's own deadline, after Stop
		stopped <- wasCut
	}()
	var wasCut, done bool
	select {
	case wasCut = <-stopped: // Stop did not wait for the cut in progress
		done = true
	case <-time.After(300 * time.Millisecond): // it waits, as it should
	}
	close(c.goOn)
	waitClosed(t, c.finished, "the cut never finished")
	if !done {
		select {
		case wasCut = <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("Stop hangs")
		}
	}
	if !wasCut {
		t.Fatal("Stop does not report the cut that happened")
	}
	a.Write([]byte("x"))
	if err := readOne(t, b); err != nil {
		t.Fatalf("read after Stop and a cleared deadline: %v (the cut landed after Stop)", err)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
