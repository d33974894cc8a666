package emulator

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestPause: a paused front is asleep (no attempt seen, nothing turned
// away) until the first connection attempt, which starts the resume
// clock; meanwhile connects are refused (PauseRefuse, same port after)
// or reset (PauseReset); at the resume time it serves again (an
// SSLRequest gets its 'S').
func TestPause(t *testing.T) {
	ca, err := NewCA("pause test CA")
	if err != nil {
		t.Fatal(err)
	}
	front, err := NewAWS(Options{}).StartPostgres(ca, PostgresOptions{Backend: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	addr := front.Addr()

	for _, mode := range []PauseMode{PauseRefuse, PauseReset} {
		t.Run(mode.String(), func(t *testing.T) {
			const resume = 700 * time.Millisecond
			front.Pause(resume, mode)
			before := front.Attempts()
			time.Sleep(100 * time.Millisecond)
			if n := front.Attempts(); n != before || !front.ResumeAt().IsZero() {
				t.Fatalf("asleep with no client: %d attempts, resume at %v; want none", n-before, front.ResumeAt())
			}
			woke := time.Now()
			if err := sslRequest(addr); !turnedAway(err) {
				t.Fatalf("the waking attempt: %v; want it reset", err)
			}
			at := front.ResumeAt()
			if d := at.Sub(woke); d < resume-50*time.Millisecond || d > resume+time.Second {
				t.Fatalf("resumes %v after the first attempt, want about %v", d, resume)
			}
			err := sslRequest(addr)
			switch {
			case mode == PauseRefuse && !errors.Is(err, syscall.ECONNREFUSED):
				t.Fatalf("while resuming (refuse): %v; want connection refused", err)
			case mode == PauseReset && !turnedAway(err):
				t.Fatalf("while resuming (reset): %v; want a reset", err)
			}
			time.Sleep(time.Until(at) + 20*time.Millisecond)
			deadline := time.Now().Add(2 * time.Second)
			for err = sslRequest(addr); err != nil && time.Now().Before(deadline); err = sslRequest(addr) {
				time.Sleep(20 * time.Millisecond) // the relisten timer may run a moment late
			}
			if err != nil {
				t.Fatalf("after the resume: %v; want it served", err)
			}
			if served := front.ServedAfterResume(); len(served) != 1 || served[0].Before(at) {
				t.Errorf("served after the resume: %v; want the one connection, accepted at or after %v", served, at)
			}
			if front.Addr() != addr {
				t.Fatalf("the front moved from %s to %s", addr, front.Addr())
			}
			if n := front.Attempts() - before; n < 3 && mode == PauseReset || n < 2 {
				t.Errorf("%d attempts counted", n)
			}
		})
	}
}

// sslRequest connects to addr and asks for TLS as a Postgres client: nil
// when the front answers 'S'.
func sslRequest(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'S' {
		return errors.New("answered " + string(b))
	}
	return nil
}

// turnedAway: the front accepted and reset (or closed) the connection.
func turnedAway(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE)
}
