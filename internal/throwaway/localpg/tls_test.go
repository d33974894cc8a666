package localpg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localsrv/srvtest"
)

func TestStartWithTLS(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := srvtest.SelfSigned(t)
	srv := startServer(t, Options{
		TLS: &TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: certPEM},
		HBA: []string{"hostssl all all 127.0.0.1/32 trust"},
	})

	fi, err := os.Stat(filepath.Join(srv.DataDir, "server.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v mode %v, want 0600", err, fi.Mode())
	}

	dsn := strings.Replace(srv.ConnString("postgres", "postgres"), "sslmode=disable", "sslmode=require", 1)
	if got := queryOne(t, dsn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "t" {
		t.Errorf("pg_stat_ssl.ssl = %q over sslmode=require", got)
	}

	// The certificate verifies for 127.0.0.1 against itself as the CA.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	full := strings.Replace(srv.ConnString("postgres", "postgres"), "sslmode=disable", "sslmode=verify-full sslrootcert="+dsnQuote(caFile), 1)
	if got := queryOne(t, full, "SHOW ssl_ca_file"); got != "root.crt" {
		t.Errorf("ssl_ca_file = %q, want root.crt", got)
	}

	// Only hostssl is allowed: a plain connection must be turned away.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, srv.ConnString("postgres", "postgres"))
	if err == nil {
		conn.Close(ctx)
		t.Fatal("sslmode=disable connection was accepted")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28000" || !strings.Contains(pgErr.Message, "no pg_hba.conf entry") {
		t.Errorf("plain connection error = %v, want 28000 no pg_hba.conf entry", err)
	}

	// Exec still works over the socket thanks to the added local line.
	if err := srv.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("Exec with a TCP-only HBA: %v", err)
	}
}
