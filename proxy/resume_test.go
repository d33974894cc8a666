package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
)

var resumeTarget = Target{Host: "db.cluster-x.us-east-1.rds.amazonaws.com", DialAddr: "127.0.0.1:1"}

// pausedUntil is an upstream that refuses until t, then lets logins in.
func pausedUntil(t time.Time, tries *atomic.Int64) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		tries.Add(1)
		if time.Now().Before(t) {
			return "", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		return "session", nil
	}
}

// TestHoldRetriesUntilResumed: a login held for a resuming upstream gets
// in within about the backoff cap (1 s) of the resume, having retried
// with backoff (not spun).
func TestHoldRetriesUntilResumed(t *testing.T) {
	// In a bubble the clock is the fake one: the times are exact, not
	// those of a loaded machine.
	synctest.Test(t, func(t *testing.T) {
		var tries atomic.Int64
		start := time.Now()
		resumed := start.Add(1500 * time.Millisecond)
		v, err := Hold(context.Background(), held(NewResume(5*time.Second)), pausedUntil(resumed, &tries))
		if err != nil || v != "session" {
			t.Fatalf("held login: %q, %v", v, err)
		}
		if late := time.Since(resumed); late > resumeCap {
			t.Errorf("got in %v after the resume; want within %v", late, resumeCap)
		}
		// 100+200+400+800 ms doubling (jittered to between half and all):
		// 1.5 s takes 4 to 8 sleeps, 5 to 9 attempts; a spin would take
		// thousands.
		if n := tries.Load(); n < 3 || n > 12 {
			t.Errorf("%d attempts in 1.5 s; want the backoff's few", n)
		}
	})
}

// TestHoldOffOrNotResuming: off (nil), or an error that is no resume, is
// one attempt and its error as it is.
func TestHoldOffOrNotResuming(t *testing.T) {
	authErr := errors.New("PAM authentication failed")
	for name, c := range map[string]struct {
		r   *Resume
		err error
	}{
		"off":          {nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}},
		"not resuming": {NewResume(time.Minute), authErr},
		"timeout":      {NewResume(time.Minute), context.DeadlineExceeded},
	} {
		var tries int
		_, err := Hold(context.Background(), held(c.r), func(context.Context) (int, error) {
			tries++
			return 0, c.err
		})
		if tries != 1 || !errors.Is(err, c.err) {
			t.Errorf("%s: %d attempts, %v; want one and its error", name, tries, err)
		}
		if _, ok := failure.As(err); ok {
			t.Errorf("%s: a failure %v; want the error as it is, for the engine's explainer", name, err)
		}
	}
}

// TestHoldWaitRunsOut: past the wait the client is told what was waited
// for, how long and which setting to raise.
func TestHoldWaitRunsOut(t *testing.T) {
	var tries atomic.Int64
	start := time.Now()
	_, err := Hold(context.Background(), held(NewResume(700*time.Millisecond)), pausedUntil(start.Add(time.Hour), &tries))
	took := time.Since(start)
	f, ok := failure.As(err)
	if !ok {
		t.Fatalf("%v; want a failure", err)
	}
	if took < 700*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v; want about the 700ms wait", took)
	}
	for _, want := range []string{resumeTarget.Host, "700ms", "resume_wait", "connection refused"} {
		if !strings.Contains(f.Cause, want) {
			t.Errorf("cause %q does not name %q", f.Cause, want)
		}
	}
	if !strings.Contains(f.Fix, "--resume-wait") || f.Reason != failure.UpstreamDial || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("failure %+v; want the flag in the fix, reason upstream_unreachable and the last error kept", f)
	}
}

// TestHoldFirstThroughWakesTheOthers: once one held login gets in, the
// others try again at once instead of at their next backoff.
func TestHoldFirstThroughWakesTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewResume(10 * time.Second)
		var open atomic.Bool
		attempt := func(context.Context) (int, error) {
			if !open.Load() {
				return 0, io.EOF
			}
			return 1, nil
		}
		var wg sync.WaitGroup
		done := make([]time.Time, 20)
		for i := range done {
			wg.Go(func() {
				if _, err := Hold(context.Background(), held(r), attempt); err != nil {
					t.Error(err)
				}
				done[i] = time.Now()
			})
		}
		time.Sleep(2500 * time.Millisecond) // every login is at the 1 s cap
		open.Store(true)
		opened := time.Now()
		// One login lets the others in: the first to retry wakes the rest.
		if _, err := Hold(context.Background(), held(r), attempt); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i, at := range done {
			if late := at.Sub(opened); late != 0 {
				t.Errorf("login %d got in %v after the upstream opened and another login got through; want at once", i, late)
			}
		}
	})
}

// TestHoldCtxEnds: a held login ends with its context (the client's
// handshake, a shutdown).
func TestHoldCtxEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Hold(ctx, held(NewResume(time.Minute)), func(context.Context) (int, error) { return 0, syscall.ECONNRESET })
	if took := time.Since(start); took > 2*time.Second || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after %v: %v; want the last error soon after the context ended", took, err)
	}
}

// TestHoldStops: a held login stops holding when Stop closes (the drain
// starts): the client is told the proxy is shutting down rather than
// holding up the shutdown.
func TestHoldStops(t *testing.T) {
	h := held(NewResume(time.Minute))
	stop := make(chan struct{})
	h.Stop = stop
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	start := time.Now()
	_, err := Hold(context.Background(), h, func(context.Context) (int, error) { return 0, syscall.ECONNREFUSED })
	if took := time.Since(start); took > 2*time.Second || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after %v: %v; want the last error soon after Stop", took, err)
	}
	if f, ok := failure.As(err); !ok || f.Reason != failure.Shutdown {
		t.Errorf("%v: want the shutdown failure, so the client is told the proxy is shutting down", err)
	}
}

// held is what the tests hold with: r, the engines' shared
// classification, no log.
func held(r *Resume) Held {
	return Held{Resume: r, Target: resumeTarget, Log: slog.New(slog.DiscardHandler), Resuming: ConnectionTurnedAway}
}

// TestConnectionTurnedAway sorts real errors: a refused dial, a reset, a
// close before any answer are; a timeout and other errors are not.
func TestConnectionTurnedAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := net.DialTimeout("tcp", addr, 2*time.Second)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("read greeting: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{fmt.Errorf("tls: %w", io.EOF), true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, false},
		{errors.New("x509: certificate signed by unknown authority"), false},
	} {
		if got := ConnectionTurnedAway(c.err); got != c.want {
			t.Errorf("ConnectionTurnedAway(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
