package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// resolve fills each upstream from the defaults and checks everything,
// returning every problem at once.
func (s *Settings) resolve() error {
	var errs []error
	bad := func(where, key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", where, key, fmt.Sprintf(format, args...)))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		bad("", "log_level", "%q: use debug, info, warn or error", s.LogLevel)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		bad("", "log_format", "%q: use text or json", s.LogFormat)
	}
	for key, n := range map[string]int{"max_connections": s.MaxConnections, "max_handshakes": s.MaxHandshakes, "max_unanswered_greetings": s.MaxUnanswered} {
		if n < 0 {
			bad("", key, "%d: use 0 (no cap) or more", n)
		}
	}
	for key, d := range map[string]Duration{"handshake_timeout": s.HandshakeTimeout, "connect_timeout": s.ConnectTimeout, "first_packet_timeout": s.FirstPacketTimeout,
		"min_shutdown_delay": s.MinShutdownDelay, "max_shutdown_delay": s.MaxShutdownDelay, "idle_timeout": s.IdleTimeout} {
		if d < 0 {
			bad("", key, "%s is negative", d)
		}
	}
	if s.ExitCode < 0 || s.ExitCode > 125 {
		bad("", "exit_code", "%d: use 0 to 125", s.ExitCode)
	}
	if s.AdminAddress != "" {
		spec, err := launch.ParseListen(s.AdminAddress, "", 0)
		switch {
		case err != nil || spec.Network != "tcp":
			bad("", "admin_address", "%q: want HOST:PORT, e.g. 127.0.0.1:9801", s.AdminAddress)
		case !spec.Loopback() && !s.AllowNonLoopback && !s.AdminAllowNonLoopback:
			bad("", "admin_address", "%s is not a loopback address; it serves /metrics and readiness to whoever reaches it. Fix: use 127.0.0.1, or set admin_allow_non_loopback (--admin-allow-non-loopback) for probes from outside (a pod's kubelet) and firewall it", s.AdminAddress)
		}
	}
	if s.ShutdownAddress != "" {
		spec, err := launch.ParseListen(s.ShutdownAddress, "", 0)
		switch {
		case err != nil:
			bad("", "shutdown_address", "%s", err)
		case !spec.Loopback():
			bad("", "shutdown_address", "%s is not a loopback address: whoever reaches it can stop the proxy, and a service mesh (Istio) delivers other pods' traffic from a loopback address. Fix: 127.0.0.1:PORT or unix:PATH (no setting allows more)", s.ShutdownAddress)
		case spec.Network == "tcp" && s.AdminAddress != "" && canonicalTCP(spec.Address) == canonicalTCP(s.AdminAddress):
			bad("", "shutdown_address", "%s is also the admin address: /quitquitquit has a listener of its own so that what reaches the probes cannot stop the proxy. Fix: another port, or unix:PATH", s.ShutdownAddress)
		}
	}
	if len(s.Upstreams) == 0 {
		bad("", "upstreams", "none: pass --endpoint HOST:PORT (the RDS endpoint), --upstream key=value,..., or a --config file with upstreams")
	}

	names := map[string]string{}
	listens := map[string]string{}
	for i := range s.Upstreams {
		u := &s.Upstreams[i]
		where := u.origin + ": "
		u.inherit(s.Defaults, s.override)
		if u.Engine == "" {
			u.Engine = "postgres"
		}
		if u.Engine != "postgres" && u.Engine != "mysql" {
			bad(where, "engine", "%q: use postgres or mysql", u.Engine)
			continue
		}
		host, port, err := launch.SplitEndpoint(u.Endpoint, u.Engine)
		if err != nil {
			bad(where, "endpoint", "%s", strings.TrimPrefix(err.Error(), "--endpoint "))
			continue
		}
		if u.Name == "" {
			u.Name, _, _ = strings.Cut(host, ".")
		}
		if prev, ok := names[u.Name]; ok {
			bad(where, "name", "%q is also the name of %s; names label logs and metrics, so give each upstream its own", u.Name, prev)
		}
		names[u.Name] = u.origin
		if u.Listen == "" {
			u.Listen = launch.DefaultListen(u.Engine)
		}
		spec, err := launch.ParseListen(u.Listen, u.Engine, port)
		switch {
		case err != nil:
			bad(where, "listen", "%s", err)
		case !spec.Loopback() && !s.AllowNonLoopback:
			bad(where, "listen", "%s is not a loopback address: anyone who can reach it logs in as the database user. Fix: 127.0.0.1 or a unix socket, or allow_non_loopback (--allow-non-loopback) with a firewall", u.Listen)
		default:
			key := spec.String()
			if spec.Network == "tcp" {
				key = canonicalTCP(spec.Address)
			}
			if prev, ok := listens[key]; ok && !strings.HasSuffix(key, ":0") {
				bad(where, "listen", "%s is already where %s listens; give each upstream its own listen address", u.Listen, prev)
			}
			listens[key] = u.origin
			if spec.Network == "unix" {
				// A socket file where another upstream wants its socket
				// directory, or the other way round.
				dir := "unix:" + filepath.Dir(spec.Address)
				if prev, ok := listens["dir "+spec.String()]; ok {
					bad(where, "listen", "%s is the directory %s puts its socket in", u.Listen, prev)
				}
				listens["dir "+dir] = u.origin
				if prev, ok := listens[dir]; ok {
					bad(where, "listen", "the socket's directory is the socket file of %s", prev)
				}
			}
		}
		if u.DialAddress != "" {
			if _, _, err := net.SplitHostPort(u.DialAddress); err != nil {
				bad(where, "dial_address", "%q: want HOST:PORT", u.DialAddress)
			}
		}
		if u.MaxConnections < 0 {
			bad(where, "max_connections", "%d: use 0 (no cap) or more", u.MaxConnections)
		}
		if _, err := tlsca.ParseMode(u.TLSMode); err != nil {
			bad(where, "tls_mode", "%s", err)
		}
		if _, err := u.socketMode(); err != nil {
			bad(where, "socket_mode", "%s", err)
		}
		if u.CABundle != "" && (u.CABundleURL != "" || u.CABundleRegion != "") {
			bad(where, "ca_bundle", "names a file: drop ca_bundle_url and ca_bundle_region, which choose what to download")
		}
		if u.CABundleURL != "" && u.CABundleRegion != "" {
			bad(where, "ca_bundle_url", "and ca_bundle_region both choose what to download: keep one")
		}
		if u.AllowLocalInfile && u.Engine != "mysql" {
			bad(where, "allow_local_infile", "is for mysql upstreams (LOAD DATA LOCAL INFILE); this one is %s", u.Engine)
		}
		if u.Engine == "mysql" && u.TLSMode == "disable" {
			bad(where, "tls_mode", "disable is not possible for mysql: the IAM token goes in clear inside TLS (mysql_clear_password)")
		}
		if u.RoleDuration < 0 {
			bad(where, "role_duration", "%s is negative", u.RoleDuration)
		}
		if u.RoleARN != "" {
			if _, err := authtoken.ParseRoleARNs(u.RoleARN); err != nil {
				bad(where, "role_arn", "%s", err)
			}
		}
	}
	return errors.Join(errs...)
}

// canonicalTCP makes equal listen addresses compare equal
// ("localhost:5432" and "127.0.0.1:5432" do not, which is fine: the
// second listen fails at start with the system's message).
func canonicalTCP(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// inherit fills every setting u leaves empty from d, and sets those in
// override whatever u says.
func (u *Upstream) inherit(d Defaults, override []field) {
	uv := reflect.ValueOf(&u.Defaults).Elem()
	dv := reflect.ValueOf(d)
	for _, f := range defaultsFields {
		if uv.FieldByIndex(f.index).IsZero() {
			uv.FieldByIndex(f.index).Set(dv.FieldByIndex(f.index))
		}
	}
	for _, f := range override {
		uv.FieldByIndex(f.index).Set(dv.FieldByIndex(f.index))
	}
}

// socketMode parses socket_mode (octal).
func (u *Upstream) socketMode() (fs.FileMode, error) {
	if u.SocketMode == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(u.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q: want an octal mode like 0600 or 0660", u.SocketMode)
	}
	return fs.FileMode(m), nil
}

// Origin says where the upstream was written ("cfg.yaml: upstreams[1]",
// "--upstream #2", "--endpoint").
func (u *Upstream) Origin() string { return u.origin }

// Launch is the upstream as internal/launch starts it, with the settings
// every upstream shares.
func (s *Settings) Launch(u Upstream) launch.Config {
	mode, _ := u.socketMode()
	var roles []string
	if u.RoleARN != "" {
		roles, _ = authtoken.ParseRoleARNs(u.RoleARN) // checked by resolve
	}
	lc := launch.Config{
		Roles: roles, ExternalID: u.ExternalID, RoleSessionName: u.RoleSessionName,
		RoleDuration: time.Duration(u.RoleDuration), STSEndpoint: u.STSEndpoint,
		Name: u.Name, Engine: u.Engine, Endpoint: u.Endpoint, DialAddress: u.DialAddress, Listen: u.Listen,
		Region: u.Region, DBUser: u.DBUser, Profile: u.Profile,
		CABundle: u.CABundle, CACacheDir: u.CacheDir, CABundleURL: u.CABundleURL, CABundleRegion: u.CABundleRegion,
		TLSMode: u.TLSMode, TLSServerName: u.TLSServerName, CARefresh: time.Duration(u.CARefresh),
		MaxConnections:   u.MaxConnections,
		HandshakeTimeout: time.Duration(s.HandshakeTimeout), ConnectTimeout: time.Duration(s.ConnectTimeout),
		IdleTimeout: time.Duration(s.IdleTimeout), UpstreamTCPTimeout: time.Duration(s.UpstreamTCPTimeout),
		AllowNonLoopback: s.AllowNonLoopback, SocketMode: mode, KeepAlive: time.Duration(s.KeepAlive),
	}
	lc.MaxHandshakes, lc.MaxUnansweredGreetings = noneIfZero(s.MaxHandshakes), noneIfZero(s.MaxUnanswered)
	lc.FirstPacketTimeout = firstPacket(s.FirstPacketTimeout, s.HandshakeTimeout)
	lc.AllowLocalInfile = u.AllowLocalInfile
	return lc
}

// noneIfZero maps a cap where 0 means none (the settings) to launch's,
// where 0 means the default and a negative number none.
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// firstPacket is the first-packet timeout to launch with: 0 means the
// handshake timeout.
func firstPacket(first, handshake Duration) time.Duration {
	if first == 0 {
		return time.Duration(handshake)
	}
	return time.Duration(first)
}
