package localsrv

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// Start starts prog as the server's account a, in dir (which a must be
// able to enter) with env, both output streams into out, and its life
// tied to ours (see StartChild).
func (a Account) Start(dir string, env []string, out io.Writer, prog string, args ...string) (*Child, error) {
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = a.SysProcAttr()
	cmd.WaitDelay = WaitDelay
	return StartChild(cmd)
}

// Finish waits for a one-shot program (initdb, mariadb-install-db) to
// exit. If ctx ends first it calls stop and returns ctx's error; else its
// exit status is Err.
func (c *Child) Finish(ctx context.Context, stop func()) error {
	select {
	case <-c.Done():
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

// AwaitReady calls try until it reports the server ready, the server
// (prog) exits, or ctx ends; timeout is ctx's, for the message. Between
// tries it waits delay, doubling up to most.
func (c *Child) AwaitReady(ctx context.Context, prog string, timeout, delay, most time.Duration, try func() (bool, error)) error {
	var lastErr error
	for {
		ready, err := try()
		if ready {
			return nil
		}
		lastErr = err
		select {
		case <-c.Done():
			return fmt.Errorf("%s exited during startup: %w", prog, c.Err())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (start timeout %v): %w (last attempt: %w)", prog, timeout, ctx.Err(), lastErr)
		case <-time.After(delay):
		}
		delay = min(delay*2, most)
	}
}

// Bind runs start on port, or, when port is 0, on a free one, trying
// another (BindAttempts in all) while bindFailed says that another
// process took the port between picking and binding.
func Bind(port int, start func(port int) error, bindFailed func() bool) error {
	attempts := 1
	if port == 0 {
		attempts = BindAttempts
	}
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = FreePort(); err != nil {
				return err
			}
		}
		err := start(p)
		if err == nil || attempt >= attempts || !bindFailed() {
			return err
		}
	}
}
