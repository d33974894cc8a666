package emulator

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"
)

// PauseMode is how a paused front turns connections away while it
// resumes.
type PauseMode int

const (
	// PauseRefuse stops listening while the front resumes, as a closed
	// listener: a connect is refused (ECONNREFUSED). The connection that
	// wakes the front has already been accepted, so it is reset.
	PauseRefuse PauseMode = iota
	// PauseReset accepts connections while the front resumes and resets
	// each at once (RST): a client sees a reset or EOF before any byte of
	// the protocol (no TLS answer, no MySQL greeting).
	PauseReset
)

func (m PauseMode) String() string {
	if m == PauseReset {
		return "reset"
	}
	return "refuse"
}

// pauseState is a front's pause: asleep until the first connection
// attempt, then resuming until resumeAt, then awake (the state is
// dropped).
type pauseState struct {
	mu       sync.Mutex
	mode     PauseMode
	resume   time.Duration
	asleep   bool
	resumeAt time.Time     // zero while asleep
	listen   chan struct{} // PauseRefuse: closed when the listener listens again
	served   []time.Time   // when connections served since the resume were accepted
}

// maxServed bounds pauseState.served.
const maxServed = 10000

// Pause puts the front to sleep as an Aurora Serverless v2 cluster at 0
// ACU: the next connection attempt wakes it, and from that attempt on it
// turns connections away as mode says for resume, then serves again. The
// clock starts at the first attempt, as Aurora's does, so a front nobody
// connects to stays asleep: Attempts shows whether anything tried. A
// front already paused is put back to sleep with the new settings.
//
// PauseRefuse needs Linux (the listener stops and starts listening on the
// same socket, so its port stays the front's); elsewhere it behaves as
// PauseReset.
func (i *instance) Pause(resume time.Duration, mode PauseMode) {
	if mode == PauseRefuse && !canStopListening {
		mode = PauseReset
	}
	i.pause.mu.Lock()
	defer i.pause.mu.Unlock()
	i.pause.mode, i.pause.resume, i.pause.asleep, i.pause.resumeAt, i.pause.served = mode, resume, true, time.Time{}, nil
	i.log.Info("front paused", "mode", mode.String(), "resume", resume)
}

// ResumeAt is when the front serves again after the attempt that woke it;
// zero while it sleeps or when it was never paused.
func (i *instance) ResumeAt() time.Time {
	i.pause.mu.Lock()
	defer i.pause.mu.Unlock()
	return i.pause.resumeAt
}

// ServedAfterResume is when each connection the front served since it
// resumed was accepted (the first 10,000): how soon after the resume the
// clients held for it came back.
func (i *instance) ServedAfterResume() []time.Time {
	i.pause.mu.Lock()
	defer i.pause.mu.Unlock()
	return slices.Clone(i.pause.served)
}

// Attempts is how many connections the front has accepted since it
// started, paused or not (refused connects never reach it).
func (i *instance) Attempts() int64 { return i.attempts.Load() }

// admit decides, for a connection just accepted, whether it is served: a
// sleeping front wakes (the resume clock starts) and resets it, a
// resuming one resets it.
func (i *instance) admit(ctx context.Context, c net.Conn) bool {
	i.attempts.Add(1)
	p := &i.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case p.asleep:
		p.asleep, p.resumeAt = false, now.Add(p.resume)
		i.log.Info("paused front woken by a connection attempt: resuming", "mode", p.mode.String(), "resume_at", p.resumeAt)
		if p.mode == PauseRefuse {
			p.listen = make(chan struct{})
			if err := stopListening(i.ln); err != nil {
				i.log.Warn("cannot stop listening; resetting instead", "err", err)
				p.mode = PauseReset
				close(p.listen)
			} else {
				i.relistenAt(ctx, p.resumeAt, p.listen)
			}
		}
	case p.resumeAt.IsZero():
		return true
	case !now.Before(p.resumeAt):
		if len(p.served) < maxServed {
			p.served = append(p.served, now)
		}
		return true
	}
	reset(c)
	return false
}

// relistenAt makes the stopped listener listen again at t and closes
// done, unless ctx ends first.
func (i *instance) relistenAt(ctx context.Context, t time.Time, done chan struct{}) {
	go func() {
		timer := time.NewTimer(time.Until(t))
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		if err := startListening(i.ln); err != nil {
			i.log.Error("cannot listen again after the resume", "err", err)
		} else {
			i.log.Info("front resumed: listening again")
		}
		close(done)
	}()
}

// waitListening reports, after an accept failed, whether the front has
// stopped listening for a resume: it then waits until it listens again
// (true) or ctx ends (false).
func (i *instance) waitListening(ctx context.Context) bool {
	i.pause.mu.Lock()
	listen := i.pause.listen
	i.pause.mu.Unlock()
	if listen == nil {
		return false
	}
	select {
	case <-listen:
		i.pause.mu.Lock()
		if i.pause.listen == listen {
			i.pause.listen = nil
		}
		i.pause.mu.Unlock()
		return true
	case <-ctx.Done():
		return false
	}
}

// reset closes c with an RST, as a server that drops a connection it
// cannot serve.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
