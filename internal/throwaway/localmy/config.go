package localmy

import (
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// Options configures Start. The zero value gives a non-TLS server on a
// free loopback port in a fresh temporary directory, with root@localhost
// (and root@127.0.0.1) without a password.
type Options struct {
	// Dir is the parent directory for the server's files: "my.cnf",
	// "data", "sock" and the TLS files. "" means a new temporary
	// directory, removed by Stop (and by a failed Start). A given Dir is
	// left in place so the data can be inspected; it must not already hold
	// a "data" directory with contents. When running as root, Start adds
	// the x bit for others to Dir and its parents where needed, so the
	// mysql user can reach it.
	Dir string
	// Port is the TCP port on 127.0.0.1. 0 picks a free one (and retries
	// with another if it is taken between picking and binding).
	Port int
	// TLS, when set, turns TLS on with these files (ssl_cert, ssl_key and,
	// if CAPEM is set, ssl_ca); nil leaves the server without TLS.
	TLS *TLSFiles
	// Settings are extra lines for the [mariadbd] section of my.cnf,
	// name = value; an empty value writes the bare name (a flag such as
	// "skip-log-bin"). They override the defaults (see defaultSettings)
	// except the ones this package must control (port, socket, datadir,
	// ssl files, ...). "-" and "_" are the same in names, as for MariaDB.
	Settings map[string]string
	// Log receives the server's error log (its stderr). Whatever it is,
	// the last 64 KiB are also kept in memory and quoted in startup errors.
	Log io.Writer
	// StartTimeout bounds the whole of Start (install + startup); default
	// 30s.
	StartTimeout time.Duration
}

// TLSFiles are PEM-encoded server credentials. CAPEM is optional; when set
// it becomes ssl_ca, so the server can verify client certificates.
type TLSFiles = localsrv.TLSFiles

// defaultSettings trade durability and memory for start-up speed (the
// data is thrown away; the server starts in about 0.1s after a 0.5s
// install) while keeping what the proxy's tests need: 20 MB rows
// (max_allowed_packet, a redo log large enough for them), utf8mb4, and
// room for connection-heavy tests.
func defaultSettings() map[string]string {
	return map[string]string{
		"bind_address":                   "127.0.0.1",
		"skip_name_resolve":              "", // no DNS lookups per connection; accounts by IP
		"performance_schema":             "OFF",
		"innodb_buffer_pool_size":        "32M",
		"innodb_log_file_size":           "64M", // room for several 20 MB rows between checkpoints
		"innodb_log_buffer_size":         "16M",
		"innodb_flush_log_at_trx_commit": "2",
		"innodb_doublewrite":             "0",
		"max_allowed_packet":             "64M",
		"max_connections":                "200",
		"character_set_server":           "utf8mb4",
		"collation_server":               "utf8mb4_general_ci",
		"skip_log_bin":                   "",
	}
}

// reservedSettings are chosen by Start itself (the port is given on the
// command line, so a retry with another port needs no rewrite); letting a
// caller override them would make Server's fields lie or break readiness
// checks and Exec.
var reservedSettings = map[string]string{
	"port":                  "Options.Port",
	"socket":                "Options.Dir",
	"datadir":               "Options.Dir",
	"basedir":               "Options.Dir",
	"pid_file":              "Options.Dir",
	"tmpdir":                "Options.Dir",
	"log_error":             "Options.Log",
	"user":                  "Start (root handling)",
	"skip_grant_tables":     "Start (Exec needs real accounts)",
	"skip_networking":       "Options.Port",
	"ssl":                   "Options.TLS",
	"ssl_cert":              "Options.TLS",
	"ssl_key":               "Options.TLS",
	"ssl_ca":                "Options.TLS",
	"ssl_capath":            "Options.TLS",
	"bind_address":          "Start (always 127.0.0.1)",
	"defaults_file":         "Start",
	"defaults_extra_file":   "Start",
	"no_defaults":           "Start",
	"defaults_group_suffix": "Start",
}

var settingName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)?$`)

// normName is the form MariaDB itself compares option names in.
func normName(k string) string {
	k = strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	for _, p := range []string{"loose_", "enable_"} {
		k = strings.TrimPrefix(k, p)
	}
	return k
}

// validate rejects options that would otherwise fail deep inside MariaDB
// with a less helpful message, before anything is created.
func (o *Options) validate() error {
	if err := localsrv.CheckOptions(o.Port, o.TLS, o.Settings); err != nil {
		return fmt.Errorf("localmy: %w", err)
	}
	for k := range o.Settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("localmy: invalid setting name %q", k)
		}
		n := normName(k)
		n = strings.TrimPrefix(n, "skip_") // skip-ssl, skip-networking, ...
		if by, ok := reservedSettings[n]; ok {
			return fmt.Errorf("localmy: setting %q is controlled by %s", k, by)
		}
		if by, ok := reservedSettings["skip_"+n]; ok {
			return fmt.Errorf("localmy: setting %q is controlled by %s", k, by)
		}
	}
	return nil
}

// confValue quotes a value for my.cnf when needed. MariaDB strips one
// pair of surrounding quotes and handles backslash escapes inside them.
func confValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t#;'\"\\=") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// paths are the files Start lays out under the base directory.
type paths struct {
	base, conf, data, sockDir, socket, pidFile string
	cert, key, ca                              string // set when TLS is on
}

// serverConfig renders my.cnf. Only [mariadbd] is written: the file is
// given with --defaults-file to both mariadb-install-db (which passes the
// section on to its bootstrap server) and mariadbd, so no system or user
// option file applies.
func serverConfig(o *Options, p paths) string {
	settings := defaultSettings()
	for k, v := range o.Settings {
		n := normName(k)
		// A caller's "innodb-buffer-pool-size" must replace our
		// "innodb_buffer_pool_size", and "log-bin" our "skip_log_bin"
		// (or the other way round): of a pair, only theirs may remain.
		delete(settings, n)
		delete(settings, "skip_"+n)
		delete(settings, strings.TrimPrefix(n, "skip_"))
		settings[strings.ReplaceAll(strings.ToLower(k), "-", "_")] = v
	}
	settings["datadir"] = p.data
	settings["socket"] = p.socket
	settings["pid_file"] = p.pidFile
	settings["tmpdir"] = p.sockDir
	if p.cert != "" {
		settings["ssl_cert"] = p.cert
		settings["ssl_key"] = p.key
		if p.ca != "" {
			settings["ssl_ca"] = p.ca
		}
	}
	var b strings.Builder
	b.WriteString("# Written by rds-iam-proxy internal/throwaway/localmy.\n[mariadbd]\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if v := settings[k]; v == "" {
			b.WriteString(k + "\n")
		} else {
			fmt.Fprintf(&b, "%s = %s\n", k, confValue(v))
		}
	}
	return b.String()
}
