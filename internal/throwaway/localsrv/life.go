package localsrv

import (
	"fmt"
	"sync"
)

// Life is the bookkeeping a started server needs for Stop, Halt and
// Resume: Stop runs once, Halt and Resume take turns, and a server that
// died by itself is told apart from one Halt stopped. Unlike the rest of
// this package, its errors carry Pkg, since they go to the caller as they
// are.
type Life struct {
	Pkg  string // "localpg"
	Prog string // "postgres"

	stopOnce sync.Once
	stopErr  error
	mu       sync.Mutex // Halt and Resume
	halted   bool
}

// Stop runs stop the first time; later calls return its error again.
func (l *Life) Stop(stop func() error) error {
	l.stopOnce.Do(func() { l.stopErr = stop() })
	return l.stopErr
}

// Crashed, for Stop, reports proc if it had exited before and Halt did
// not stop it, with the tail of its log: a crash must not be silent.
func (l *Life) Crashed(proc *Child, log *LogRing) error {
	l.mu.Lock()
	halted := l.halted
	l.mu.Unlock()
	if gone, werr := proc.Exited(); gone && !halted {
		return fmt.Errorf("%s: %s had exited before Stop (%v):\n%s", l.Pkg, l.Prog, werr, Tail(log.String(), 20))
	}
	return nil
}

// Halt stops proc with halt, keeping everything for Resume; a halted
// server is left alone.
func (l *Life) Halt(proc *Child, halt func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.halted {
		return nil
	}
	l.halted = true
	if err := halt(); err != nil {
		return fmt.Errorf("%s: halt %s (pid %d): %w", l.Pkg, l.Prog, proc.Pid(), err)
	}
	return nil
}

// Resume starts a halted server again with resume, whose error goes to
// the caller as it is.
func (l *Life) Resume(resume func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.halted {
		return fmt.Errorf("%s: Resume of a server that is not halted", l.Pkg)
	}
	if err := resume(); err != nil {
		return err
	}
	l.halted = false
	return nil
}
