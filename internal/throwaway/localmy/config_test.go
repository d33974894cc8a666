package localmy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestStartRejectsBadOptionsBeforeDoingAnything(t *testing.T) {
	srvtest.RejectsBadOptions(t, Start, []srvtest.BadOption[Options]{
		{Name: "reserved port", O: Options{Settings: map[string]string{"port": "5"}}, Want: "Options.Port"},
		{Name: "reserved ssl", O: Options{Settings: map[string]string{"SSL-Cert": "x"}}, Want: "Options.TLS"},
		{Name: "skip ssl", O: Options{Settings: map[string]string{"skip-ssl": ""}}, Want: "Options.TLS"},
		{Name: "loose datadir", O: Options{Settings: map[string]string{"loose-datadir": "/x"}}, Want: "Options.Dir"},
		{Name: "grant tables", O: Options{Settings: map[string]string{"skip_grant_tables": ""}}, Want: "Exec needs real accounts"},
		{Name: "networking", O: Options{Settings: map[string]string{"skip-networking": ""}}, Want: "Options.Port"},
		{Name: "bad name", O: Options{Settings: map[string]string{"a = 1\nb": "2"}}, Want: "invalid setting name"},
		{Name: "newline value", O: Options{Settings: map[string]string{"max_connections": "1\nport=5"}}, Want: "line break"},
		{Name: "tls without key", O: Options{TLS: &TLSFiles{CertPEM: []byte("x")}}, Want: "KeyPEM"},
		{Name: "port range", O: Options{Port: 70000}, Want: "out of range"},
	})
}

func TestServerConfig(t *testing.T) {
	o := &Options{Settings: map[string]string{
		"max-connections":      "50",
		"init_connect":         "SET @a = 'x y'",
		"log-bin":              "", // replaces our skip_log_bin
		"innodb-log-file-size": "8M",
	}}
	p := layout("/tmp/x y", &TLSFiles{CertPEM: []byte("c"), KeyPEM: []byte("k")})
	conf := serverConfig(o, p)
	for _, want := range []string{
		"[mariadbd]\n",
		"max_connections = 50\n",
		`init_connect = "SET @a = 'x y'"` + "\n",
		"\nlog_bin\n",
		"innodb_log_file_size = 8M\n",
		"\nskip_name_resolve\n",
		"max_allowed_packet = 64M\n",
		`datadir = "/tmp/x y/data"` + "\n",
		`socket = "/tmp/x y/sock/mariadbd.sock"` + "\n",
		`ssl_key = "/tmp/x y/server-key.pem"` + "\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	for _, bad := range []string{"max_connections = 200", "skip_log_bin", "innodb_log_file_size = 64M", "ssl_ca"} {
		if strings.Contains(conf, bad) {
			t.Errorf("config has %q:\n%s", bad, conf)
		}
	}
}

func TestConfValue(t *testing.T) {
	for in, want := range map[string]string{
		"64M":   "64M",
		"":      `""`,
		"a b":   `"a b"`,
		`it"s\`: `"it\"s\\"`,
		"a#b":   `"a#b"`,
	} {
		if got := confValue(in); got != want {
			t.Errorf("confValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestFindBinOffPath(t *testing.T) {
	root := t.TempDir()
	sbin, bin := filepath.Join(root, "sbin"), filepath.Join(root, "bin")
	srvtest.FakeExe(t, filepath.Join(sbin, serverProg), false)
	srvtest.FakeExe(t, filepath.Join(bin, installProg), true) // a script, as on Debian
	wrappers := filepath.Join(root, "wrappers")
	srvtest.FakeExe(t, filepath.Join(wrappers, serverProg), true) // a wrapper script is not the server

	f := binFinder{path: "relative:" + wrappers + ":" + bin, dirs: []string{sbin}}
	if got, err := f.find(serverProg); err != nil || got != filepath.Join(sbin, serverProg) {
		t.Errorf("find(mariadbd) = %q, %v; want the one in sbin (off PATH)", got, err)
	}
	if got, err := f.find(installProg); err != nil || got != filepath.Join(bin, installProg) {
		t.Errorf("find(mariadb-install-db) = %q, %v", got, err)
	}
	_, err := f.find(clientProg)
	if err == nil {
		t.Fatal("found a client that is not there")
	}
	for _, want := range []string{`"mariadb"`, "mariadb-client package", "apt-get install -y mariadb-server mariadb-client", sbin, wrappers} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "relative") {
		t.Errorf("error lists a relative PATH entry: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	got, err := parseVersion("/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)\n")
	if err != nil || got != "10.11.19" {
		t.Errorf("parseVersion = %q, %v; want 10.11.19", got, err)
	}
	if _, err := parseVersion("something else"); err == nil {
		t.Error("parseVersion accepted garbage")
	}
}

func TestInstallTailDropsAdvice(t *testing.T) {
	out := "Installing ...\n[ERROR] Unknown suffix 'b'\n[ERROR] Aborting\n\n" + installFailed + "  Examine the logs\n\nThe problem could be ...\n"
	got := installTail(out)
	if !strings.Contains(got, "Unknown suffix") || strings.Contains(got, "The problem could be") {
		t.Errorf("installTail = %q", got)
	}
}
