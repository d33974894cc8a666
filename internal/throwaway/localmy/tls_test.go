package localmy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestStartWithTLS(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := srvtest.SelfSigned(t)
	srv := startServer(t, Options{TLS: &TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: certPEM}})

	fi, err := os.Stat(srv.p.key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server key: %v mode %v, want 0600", err, fi.Mode())
	}

	// Full verification: the certificate is valid for 127.0.0.1 against
	// itself as the CA.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad test certificate")
	}
	cfg := srv.Config("root", "", "")
	cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	db := openDB(t, cfg)
	var name, cipher string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Errorf("Ssl_cipher = %q, %v; want a cipher over a TLS connection", cipher, err)
	}
	if got := queryOne(t, db, "SELECT @@ssl_ca"); got != srv.p.ca {
		t.Errorf("ssl_ca = %q, want %q", got, srv.p.ca)
	}

	// A plain connection is still allowed (accounts do not REQUIRE SSL)
	// and reports no cipher: the check above is meaningful.
	plain := openDB(t, srv.Config("root", "", ""))
	if err := plain.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher != "" {
		t.Errorf("plain connection: Ssl_cipher = %q, %v; want empty", cipher, err)
	}
}

func TestStartWithoutTLSHasNoSSL(t *testing.T) {
	t.Parallel()
	srv := startServer(t, Options{})
	var have string
	if err := srv.QueryRow(context.Background(), "SELECT @@have_ssl").Scan(&have); err != nil || have == "YES" {
		t.Errorf("have_ssl = %q, %v; want TLS off without Options.TLS", have, err)
	}
}
