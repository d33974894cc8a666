package localpg

import (
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestStartRejectsBadOptionsBeforeDoingAnything(t *testing.T) {
	srvtest.RejectsBadOptions(t, Start, []srvtest.BadOption[Options]{
		{Name: "reserved port", O: Options{Settings: map[string]string{"port": "5"}}, Want: "Options.Port"},
		{Name: "reserved ssl", O: Options{Settings: map[string]string{"SSL_Cert_File": "x"}}, Want: "Options.TLS"},
		{Name: "bad name", O: Options{Settings: map[string]string{"a = 1\nb": "2"}}, Want: "invalid setting name"},
		{Name: "newline value", O: Options{Settings: map[string]string{"work_mem": "1\nport=5"}}, Want: "line break"},
		{Name: "hba newline", O: Options{HBA: []string{"local all all trust\nhost all all 0.0.0.0/0 trust"}}, Want: "one line per entry"},
		{Name: "tls without key", O: Options{TLS: &TLSFiles{CertPEM: []byte("x")}}, Want: "KeyPEM"},
		{Name: "port range", O: Options{Port: 70000}, Want: "out of range"},
	})
}

func TestServerConfig(t *testing.T) {
	o := &Options{Settings: map[string]string{"max_connections": "50", "application_name": "it's"}}
	conf := serverConfig(o, "/tmp/x y")
	for _, want := range []string{
		"max_connections = '50'\n",
		"application_name = 'it''s'\n",
		"unix_socket_directories = '/tmp/x y'\n",
		"fsync = 'off'\n",
		"ssl = 'off'\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "max_connections = '200'") {
		t.Error("default max_connections not overridden")
	}
}

func TestHBALines(t *testing.T) {
	if got := hbaLines(nil); len(got) != 3 || got[0] != "local all all trust" {
		t.Errorf("default HBA = %q", got)
	}
	got := hbaLines([]string{"hostssl all all 127.0.0.1/32 trust"})
	if len(got) != 2 || !strings.HasPrefix(got[0], "local all postgres trust") {
		t.Errorf("HBA without local line = %q, want superuser socket line first", got)
	}
	own := []string{"local all all reject", "host all all 127.0.0.1/32 md5"}
	if got := hbaLines(own); len(got) != 2 {
		t.Errorf("HBA with a local line was changed: %q", got)
	}
}

func TestDSNQuote(t *testing.T) {
	for in, want := range map[string]string{
		"postgres": "postgres",
		"":         "''",
		"a b":      "'a b'",
		`it's\`:    `'it\'s\\'`,
	} {
		if got := dsnQuote(in); got != want {
			t.Errorf("dsnQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
