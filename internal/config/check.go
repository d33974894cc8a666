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
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// check fills each upstream from the defaults and checks everything,
// returning every problem at once.
func (s *Settings) check() error {
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
	s.Reuse.check(bad)
	checkLoginGuard(s.Serving, bad)
	if s.ExitCode < 0 || s.ExitCode > 125 {
		bad("", "exit_code", "%d: use 0 to 125", s.ExitCode)
	}
	if s.AdminAddress != "" {
		spec, err := ParseListen(s.AdminAddress, "", 0)
		switch {
		case err != nil || spec.Network != "tcp":
			bad("", "admin_address", "%q: want HOST:PORT, e.g. 127.0.0.1:9801", s.AdminAddress)
		case !spec.Loopback() && !s.AllowNonLoopback && !s.AdminAllowNonLoopback:
			bad("", "admin_address", "%s is not a loopback address; it serves /metrics and readiness to whoever reaches it. Fix: use 127.0.0.1, or set admin_allow_non_loopback (--admin-allow-non-loopback) for probes from outside (a pod's kubelet) and firewall it", s.AdminAddress)
		}
	}
	if s.ShutdownAddress != "" {
		spec, err := ParseListen(s.ShutdownAddress, "", 0)
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
		ep, ok := u.check(func(key, format string, args ...any) { bad(where, key, format, args...) })
		if !ok {
			continue
		}
		if prev, ok := names[u.Name]; ok {
			bad(where, "name", "%q is also the name of %s; names label logs and metrics, so give each upstream its own", u.Name, prev)
		}
		names[u.Name] = u.origin
		if u.Listen == "" {
			u.Listen = u.Engine.DefaultListen()
		}
		spec, err := ParseListen(u.Listen, u.Engine, ep.Port)
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
		if u.MaxConnections < 0 {
			bad(where, "max_connections", "%d: use 0 (no cap) or more", u.MaxConnections)
		}
		if _, err := u.SocketFileMode(); err != nil {
			bad(where, "socket_mode", "%s", err)
		}
		if u.AllowLocalInfile && u.Engine != MySQL {
			bad(where, "allow_local_infile", "is for mysql upstreams (LOAD DATA LOCAL INFILE); this one is %s", u.Engine)
		}
	}
	return errors.Join(errs...)
}

// check fills what u leaves to defaults (the engine, the name) and checks
// the settings every command that reaches the upstream shares: engine,
// endpoint, dial address, TLS, CA bundle and roles. Each problem goes to
// bad with its key. It returns the parsed endpoint, and false when the
// engine or the endpoint is unusable (the checks that need them are
// skipped).
func (u *Upstream) check(bad func(key, format string, args ...any)) (Endpoint, bool) {
	u.Engine = u.Engine.OrDefault()
	if err := u.Engine.Check(); err != nil {
		bad("engine", "%s", err)
		return Endpoint{}, false
	}
	ep, err := ParseEndpoint(u.Endpoint, u.Engine)
	if err != nil {
		bad("endpoint", "%s", strings.TrimPrefix(err.Error(), "--endpoint "))
		return Endpoint{}, false
	}
	if u.Name == "" {
		u.Name, _, _ = strings.Cut(ep.Host, ".")
	}
	if u.DialAddress != "" {
		if _, _, err := net.SplitHostPort(u.DialAddress); err != nil {
			bad("dial_address", "%q: want HOST:PORT", u.DialAddress)
		}
	}
	if _, err := tlsca.ParseMode(u.TLSMode); err != nil {
		bad("tls_mode", "%s", err)
	}
	if u.CABundle != "" && (u.CABundleURL != "" || u.CABundleRegion != "") {
		bad("ca_bundle", "names a file: drop ca_bundle_url and ca_bundle_region, which choose what to download")
	}
	if u.CABundleURL != "" && u.CABundleRegion != "" {
		bad("ca_bundle_url", "and ca_bundle_region both choose what to download: keep one")
	}
	if u.Engine == MySQL && u.TLSMode == "disable" {
		bad("tls_mode", "disable is not possible for mysql: the IAM token goes in clear inside TLS (mysql_clear_password)")
	}
	if d := time.Duration(u.MFADuration); d != 0 && (d < 15*time.Minute || d > 36*time.Hour) {
		bad("mfa_duration", "%s is outside STS's 15m to 36h", d)
	}
	if u.MFACode != "" && (len(u.MFACode) != 6 || strings.Trim(u.MFACode, "0123456789") != "") {
		bad("mfa_code", "an MFA code is six digits")
	}
	if u.RoleDuration < 0 {
		bad("role_duration", "%s is negative", u.RoleDuration)
	}
	if u.ResumeWait < 0 {
		bad("resume_wait", "%s is negative: use 0 (off) or a wait such as 60s", u.ResumeWait)
	}
	if u.RoleARN != "" {
		if _, err := authtoken.ParseRoleARNs(u.RoleARN); err != nil {
			bad("role_arn", "%s", err)
		}
	}
	u.checkDSQL(bad)
	return ep, true
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

// SocketFileMode is socket_mode, parsed (octal); 0 when unset.
func (u Upstream) SocketFileMode() (fs.FileMode, error) {
	if u.SocketMode == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(u.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q: want an octal mode like 0600 or 0660", u.SocketMode)
	}
	return fs.FileMode(m), nil
}

// Roles are role_arn's roles in the order they are assumed; none when it
// is unset.
func (u Upstream) Roles() ([]string, error) {
	if u.RoleARN == "" {
		return nil, nil
	}
	return authtoken.ParseRoleARNs(u.RoleARN)
}

// Origin says where the upstream was written ("cfg.yaml: upstreams[1]",
// "--upstream #2", "--endpoint").
func (u Upstream) Origin() string { return u.origin }
