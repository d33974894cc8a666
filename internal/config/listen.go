package config

import (
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// ListenSpec is where one upstream's clients connect: a TCP address, or a
// unix socket ("unix:PATH").
type ListenSpec struct {
	Network string // "tcp" or "unix"
	Address string // host:port, or the socket's path
}

func (l ListenSpec) String() string {
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return l.Address
}

// ParseListen reads a listen value for engine e ("" for the admin and
// shutdown listeners), whose endpoint port is port. "unix:DIR" for
// Postgres means the socket DIR/.s.PGSQL.PORT, the name libpq looks for,
// so `psql -h DIR -p PORT` works; "unix:PATH" is otherwise the socket
// file itself. Anything else is a TCP host:port.
func ParseListen(value string, e Engine, port int) (ListenSpec, error) {
	return parseListen(value, e, port, runtime.GOOS)
}

// parseListen is ParseListen for the operating system goos, so the
// Windows refusal is tested on every system.
func parseListen(value string, e Engine, port int, goos string) (ListenSpec, error) {
	if path, ok := strings.CutPrefix(value, "unix:"); ok {
		if goos == "windows" {
			// Windows has AF_UNIX, but not the file modes and peer
			// credentials that make a socket private, nor the clients
			// (libpq's socket directory, mysql --socket) that use one.
			return ListenSpec{}, fmt.Errorf("%q: unix sockets are not supported on Windows; listen on a loopback TCP address instead (127.0.0.1:PORT)", value)
		}
		if path == "" || !filepath.IsAbs(path) {
			return ListenSpec{}, fmt.Errorf("%q: a unix socket needs an absolute path (unix:/run/rds-iam-proxy)", value)
		}
		path = filepath.Clean(path)
		if e == Postgres && !strings.HasPrefix(filepath.Base(path), ".s.PGSQL.") {
			path = filepath.Join(path, ".s.PGSQL."+strconv.Itoa(port))
		}
		if len(path) > 107 {
			return ListenSpec{}, fmt.Errorf("%q: the socket path is %d bytes, over the system's 107", value, len(path))
		}
		return ListenSpec{Network: "unix", Address: path}, nil
	}
	_, p, err := net.SplitHostPort(value)
	if err != nil {
		return ListenSpec{}, fmt.Errorf("%q: want HOST:PORT or unix:PATH", value)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return ListenSpec{}, fmt.Errorf("%q: invalid port", value)
	}
	return ListenSpec{Network: "tcp", Address: value}, nil
}

// Loopback says whether a TCP listen address can only be reached from this
// machine. A name other than localhost counts as not loopback: what it
// resolves to can change.
func (l ListenSpec) Loopback() bool {
	if l.Network == "unix" {
		return true
	}
	host, _, _ := net.SplitHostPort(l.Address)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
