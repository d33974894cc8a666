package launch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// ListenOptions tune the listeners.
type ListenOptions struct {
	// KeepAlive is the TCP keepalive period for accepted connections (0:
	// Go's default of 15s, negative: off).
	KeepAlive time.Duration
	// SocketMode is a unix socket's file mode; default 0600 (only this
	// user's processes may log in as the database user).
	SocketMode fs.FileMode
}

// Listen opens l. A unix socket replaces a stale socket file that nobody
// answers on (left by a crash), but never a live one or another kind of
// file, and gets mode o.SocketMode; its directory is created if missing.
func Listen(ctx context.Context, l config.ListenSpec, o ListenOptions) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: o.KeepAlive}
	if l.Network != "unix" {
		ln, err := lc.Listen(ctx, "tcp", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", l.Address, err)
		}
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(l.Address), 0o755); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	if err := removeStaleSocket(l.Address); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	mode := o.SocketMode
	if mode == 0 {
		mode = 0o600
	}
	// Bind inside a private directory, set the mode, then move the socket
	// into place: bound in place, it would be reachable with the umask's
	// mode until the chmod.
	tmp, err := os.MkdirTemp(filepath.Dir(l.Address), ".rds-iam-proxy-")
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := lc.Listen(ctx, "unix", tmpSock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmpSock, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	if err := os.Rename(tmpSock, l.Address); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", l, err)
	}
	return &unixListener{UnixListener: ul, path: l.Address}, nil
}

// unixListener removes its socket file when closed.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (u *unixListener) Close() error {
	err := u.UnixListener.Close()
	u.once.Do(func() { os.Remove(u.path) })
	return err
}

// removeStaleSocket removes path if it is a socket nothing listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another process is listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// A live listener with a full backlog answers EAGAIN: not stale.
		return fmt.Errorf("%s exists and may be in use (%w); remove it if no proxy runs", path, err)
	}
	return os.Remove(path)
}
