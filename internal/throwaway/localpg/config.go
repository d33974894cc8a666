package localpg

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv"
)

// Options configures Start. The zero value gives a trusting, non-TLS server
// on a free loopback port in a fresh temporary directory.
type Options struct {
	// Dir is the parent directory for the data and socket directories
	// ("data" and "sock" inside it). "" means a new temporary directory,
	// removed by Stop (and by a failed Start). A given Dir is left in place,
	// so the data can be inspected; it must not already hold a "data"
	// directory with contents. When running as root, Start adds the x bit
	// for others to Dir and its parents where needed, so the postgres user
	// can reach it.
	Dir string
	// Port is the TCP port on 127.0.0.1. 0 picks a free one (and retries
	// with another if it is taken between picking and binding).
	Port int
	// TLS, when set, turns ssl on with these files; nil leaves ssl off.
	TLS *TLSFiles
	// HBA is pg_hba.conf, one line per entry. nil means trust for every
	// local socket and loopback TCP connection. If no given line is a
	// "local" one, "local all postgres trust" is put first so that the
	// readiness check and Exec (superuser over the private socket) work
	// whatever the TCP rules under test are.
	HBA []string
	// Settings are extra postgresql.conf settings; they override the
	// defaults (see defaultSettings) except the ones this package must
	// control (port, unix_socket_directories, ssl file paths, ...).
	Settings map[string]string
	// Log receives the server's stderr/stdout. Whatever it is, the last
	// 64 KiB are also kept in memory and quoted in startup errors.
	Log io.Writer
	// StartTimeout bounds the whole of Start (initdb + startup); default 30s.
	StartTimeout time.Duration
}

// TLSFiles are PEM-encoded server credentials. CAPEM is optional; when set
// it becomes ssl_ca_file, so the server can verify client certificates.
type TLSFiles = localsrv.TLSFiles

// defaultHBA trusts everything local: the servers are throwaway, bound to
// loopback, and tests connect as arbitrary roles without passwords.
var defaultHBA = []string{
	"local all all trust",
	"host all all 127.0.0.1/32 trust",
	"host all all ::1/128 trust",
}

// defaultSettings trade durability for speed (the data is thrown away) and
// leave room for connection-heavy tests and benchmarks.
func defaultSettings() map[string]string {
	return map[string]string{
		"listen_addresses":   "127.0.0.1",
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "200",
		"shared_buffers":     "128MB",
		"log_destination":    "stderr",
		"logging_collector":  "off",
	}
}

// hbaLines returns the pg_hba.conf lines to write for the given option.
func hbaLines(given []string) []string {
	if given == nil {
		return defaultHBA
	}
	for _, line := range given {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == "local" {
			return given
		}
	}
	return append([]string{"local all postgres trust # added by localpg for readiness checks and Exec"}, given...)
}

// reservedSettings are chosen by Start itself (the port is given on the
// postgres command line, so a retry with another port needs no rewrite); letting a caller override
// them would make Server's fields lie or break readiness checks.
var reservedSettings = map[string]string{
	"port":                    "Options.Port",
	"unix_socket_directories": "Options.Dir",
	"data_directory":          "Options.Dir",
	"config_file":             "Options.Dir",
	"hba_file":                "Options.HBA",
	"ident_file":              "Options.HBA",
	"ssl":                     "Options.TLS",
	"ssl_cert_file":           "Options.TLS",
	"ssl_key_file":            "Options.TLS",
	"ssl_ca_file":             "Options.TLS",
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// validate rejects options that would otherwise fail deep inside
// PostgreSQL with a less helpful message, before anything is created.
func (o *Options) validate() error {
	if err := localsrv.CheckOptions(o.Port, o.TLS, o.Settings); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	for k := range o.Settings {
		if !settingName.MatchString(k) {
			return fmt.Errorf("localpg: invalid setting name %q", k)
		}
		if by, ok := reservedSettings[strings.ToLower(k)]; ok {
			return fmt.Errorf("localpg: setting %q is controlled by %s", k, by)
		}
	}
	for _, line := range o.HBA {
		if strings.ContainsAny(line, "\n\r\x00") {
			return fmt.Errorf("localpg: HBA line %q contains a line break or NUL; give one line per entry", line)
		}
	}
	return nil
}

// confValue quotes a value for postgresql.conf. Quoting every value is
// valid for numbers, booleans and strings alike.
func confValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// serverConfig renders the settings appended to the postgresql.conf written
// by initdb. Later lines win in postgresql.conf, so appending overrides
// initdb's choices without parsing its file.
func serverConfig(o *Options, socketDir string) string {
	settings := defaultSettings()
	for k, v := range o.Settings {
		settings[strings.ToLower(k)] = v
	}
	settings["unix_socket_directories"] = socketDir
	if o.TLS != nil {
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = "server.crt"
		settings["ssl_key_file"] = "server.key"
		if len(o.TLS.CAPEM) > 0 {
			settings["ssl_ca_file"] = "root.crt"
		}
	} else {
		settings["ssl"] = "off"
	}
	var b strings.Builder
	b.WriteString("\n# Added by rds-iam-proxy internal/throwaway/localpg.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, confValue(settings[k]))
	}
	return b.String()
}

// writeConfig adds our settings to postgresql.conf, replaces pg_hba.conf
// and writes the TLS files, all owned by the server's user: PostgreSQL
// refuses a private key that is group/world readable or owned by someone
// else.
func writeConfig(o *Options, dataDir, socketDir string, as localsrv.Account) error {
	conf := filepath.Join(dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("localpg: open %s: %w", conf, err)
	}
	_, werr := f.WriteString(serverConfig(o, socketDir))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("localpg: write %s: %w", conf, werr)
	}

	hba := hbaLines(o.HBA)
	files := []localsrv.OwnedFile{{Path: filepath.Join(dataDir, "pg_hba.conf"), Data: []byte(strings.Join(hba, "\n") + "\n"), Mode: 0o600}}
	if o.TLS != nil {
		files = append(files, o.TLS.Files(filepath.Join(dataDir, "server.crt"), filepath.Join(dataDir, "server.key"), filepath.Join(dataDir, "root.crt"))...)
	}
	if err := as.WriteOwnedFiles(files); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return nil
}
