//go:build linux

package prompt

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Available reports whether there is a controlling terminal to ask on.
func Available() bool {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// ask writes question to /dev/tty and reads one line with echo off,
// restoring the terminal's settings afterwards.
func ask(ctx context.Context, question string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoTerminal, err)
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("%w: /dev/tty is not a terminal: %v", ErrNoTerminal, err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("turn echo off on /dev/tty: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old) //nolint:errcheck // best effort on the way out
	if _, err := tty.WriteString(question); err != nil {
		return "", fmt.Errorf("write to /dev/tty: %w", err)
	}
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		var line []byte
		buf := make([]byte, maxCode)
		for len(line) <= maxCode {
			n, err := tty.Read(buf)
			line = append(line, buf[:n]...)
			if i := bytes.IndexByte(line, '\n'); i >= 0 {
				got <- result{line: string(bytes.TrimRight(line[:i], "\r"))}
				return
			}
			if err != nil {
				got <- result{err: fmt.Errorf("read from /dev/tty: %w", err)}
				return
			}
		}
		got <- result{err: fmt.Errorf("the answer is longer than %d characters", maxCode)}
	}()
	select {
	case r := <-got:
		return r.line, r.err
	case <-ctx.Done():
		// Unblocks the reader: /dev/tty is read through the poller.
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		tty.Close()
		<-got
		return "", ctx.Err()
	}
}
