// Package tlspg starts the throwaway PostgreSQL the Postgres benchmarks
// measure against: TLS with a certificate for a made-up RDS endpoint, signed
// by a fresh bench CA, trusting every login so the figures are the proxy's
// cost rather than an IAM check's. bench/connrate and bench/pgbench share it
// so both measure the same server setup.
package tlspg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Server is the running PostgreSQL, a scratch directory and the CA file
// that verifies the server's certificate for the endpoint.
type Server struct {
	PG *localpg.Server
	// Dir is a scratch directory removed by Stop.
	Dir string
	// CAFile holds the bench CA's certificate in PEM.
	CAFile string
}

// Start starts PostgreSQL with TLS for endpoint; tempPrefix names the
// scratch directory so leftovers say which benchmark made them. The caller
// must Stop the server.
func Start(ctx context.Context, endpoint, tempPrefix string) (*Server, error) {
	ca, err := emulator.NewCA("bench CA")
	if err != nil {
		return nil, fmt.Errorf("bench CA: %w", err)
	}
	certPEM, keyPEM, err := ca.ServerCertPEM(endpoint)
	if err != nil {
		return nil, fmt.Errorf("server certificate for %s: %w", endpoint, err)
	}
	pg, err := localpg.Start(ctx, localpg.Options{
		TLS: &localpg.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		HBA: []string{"local all all trust", "hostssl all all 127.0.0.1/32 trust"},
	})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		pg.Stop()
		return nil, err
	}
	s := &Server{PG: pg, Dir: dir, CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(s.CAFile, ca.CertPEM(), 0o644); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops PostgreSQL and removes the scratch directory.
func (s *Server) Stop() {
	s.PG.Stop()
	os.RemoveAll(s.Dir)
}
