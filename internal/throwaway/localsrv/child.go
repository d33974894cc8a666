package localsrv

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// Child is a started program whose exit is observed by a goroutine, so
// several waiters (readiness loop, Stop) can select on Done.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // cmd.Wait's result; read only after done is closed
}

// StartChild starts cmd from a goroutine locked to its OS thread and keeps
// that thread until the child exits. Pdeathsig fires when the *thread*
// that forked the child exits, not the process (go.dev/issue/27505); a
// locked thread is never retired by the runtime, so the death signal only
// fires when our process really dies. Set cmd.SysProcAttr from
// Account.SysProcAttr first.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	c := &Child{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

// Pid is the child's process id (and process group id).
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited and been waited for.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is the child's Wait error; call it only after Done is closed.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// Exited reports whether the child is gone, and its Wait error if so.
func (c *Child) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Wait waits for the child to exit, at most d; it reports whether it did.
func (c *Child) Wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// Kill SIGKILLs the child's process group and waits for the child.
func (c *Child) Kill() {
	KillGroup(c.Pid())
	<-c.done
}

// Abort sends sig (a server's quickest clean exit) and, if the child is
// still there after grace, kills its group. It returns once the child is
// gone.
func (c *Child) Abort(sig os.Signal, grace time.Duration) {
	if gone, _ := c.Exited(); !gone && sig != nil {
		_ = c.cmd.Process.Signal(sig)
		c.Wait(grace)
	}
	c.Kill()
}

// ErrKilled reports that a server ignored the shutdown request.
var ErrKilled = errors.New("did not shut down in time and was killed")

// Stop sends sig (the server's orderly shutdown) and waits up to grace;
// then it calls abort (nil means Kill) and returns ErrKilled. Either way
// the process group is SIGKILLed at the end, so helpers that outlived the
// leader go too, and the child is gone when Stop returns.
func (c *Child) Stop(sig os.Signal, grace time.Duration, abort func()) error {
	if gone, _ := c.Exited(); gone {
		KillGroup(c.Pid())
		return nil
	}
	_ = c.cmd.Process.Signal(sig)
	if c.Wait(grace) {
		KillGroup(c.Pid())
		return nil
	}
	if abort == nil {
		abort = c.Kill
	}
	abort()
	c.Kill()
	return ErrKilled
}
