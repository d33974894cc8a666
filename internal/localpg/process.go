package localpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// runAs is the account the server's programs run as.
type runAs struct {
	uid, gid   int
	name, home string
	// switchUser is true when we are root and must drop to the postgres
	// system user: initdb and postgres refuse to run as root.
	switchUser bool
}

// serverUser picks the account for initdb/postgres: the "postgres" system
// user when we are root, else ourselves.
func serverUser() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("localpg: running as root, and PostgreSQL refuses root, but there is no \"postgres\" system user to run it as (%w); %s, or run as a non-root user", err, installHint)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return runAs{}, fmt.Errorf("localpg: user postgres has non-numeric ids %q/%q: %w", u.Uid, u.Gid, err)
	}
	return runAs{uid: uid, gid: gid, name: u.Username, home: u.HomeDir, switchUser: true}, nil
}

// childEnv is our environment minus anything that would change what the
// server programs do behind our back: PG* variables (PGDATA, PGPORT,
// PGOPTIONS, ...) and locale settings. The C locale keeps messages in
// English, which Start relies on to recognise "could not bind".
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "PG"), strings.HasPrefix(k, "LC_"), k == "LANG", k == "LANGUAGE":
			continue
		case k == "HOME" && home != "":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// child is a started program whose exit is observed by a goroutine, so
// several waiters (readiness loop, Stop) can select on done.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // cmd.Wait's result; read only after done is closed
}

// startChild starts cmd from a goroutine locked to its OS thread and keeps
// that thread until the child exits. Pdeathsig fires when the *thread*
// that forked the child exits, not the process (go.dev/issue/27505); a
// locked thread is never retired by the runtime, so the death signal only
// fires when our process really dies.
func startChild(cmd *exec.Cmd) (*child, error) {
	c := &child{cmd: cmd, done: make(chan struct{})}
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

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child is gone, and its Wait error if so.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// kill SIGKILLs the child's process group and waits for the child.
func (c *child) kill() {
	killGroup(c.pid())
	<-c.done
}

// abortGrace is how long an immediate shutdown may take before SIGKILL.
const abortGrace = 3 * time.Second

// abort ends the child fast but cleanly: SIGQUIT is PostgreSQL's immediate
// shutdown (the postmaster SIGQUITs its children, which run in sessions of
// their own, and exits; initdb removes its half-made data dir), then
// SIGKILL of the group if that did not work. A bare SIGKILL of the
// postmaster would leave its children to notice its death on their own.
func (c *child) abort() {
	if gone, _ := c.exited(); !gone {
		_ = c.cmd.Process.Signal(syscallSIGQUIT)
		t := time.NewTimer(abortGrace)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
		}
	}
	c.kill()
}

// errKilled reports that a server ignored the shutdown request.
var errKilled = errors.New("did not shut down in time and was stopped with SIGQUIT/SIGKILL")

// stop asks for a PostgreSQL fast shutdown (SIGINT: roll back open
// transactions, disconnect clients, checkpoint, exit) and aborts after
// grace.
func (c *child) stop(grace time.Duration) error {
	if gone, _ := c.exited(); gone {
		killGroup(c.pid())
		return nil
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		killGroup(c.pid())
		return nil
	case <-t.C:
		c.abort()
		return errKilled
	}
}
