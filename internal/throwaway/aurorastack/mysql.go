package aurorastack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localmy"
)

// backendHost is the name the MariaDB servers' certificates carry; the
// fronts verify it on their hop to MariaDB, over TLS as on RDS.
const backendHost = "mariadb.backend.invalid"

// startMySQL starts the emulator (its CA issues the MariaDB servers'
// certificates), the MariaDB servers and the Aurora MySQL cluster.
func (s *Stack) startMySQL(ctx context.Context, o Options) (err error) {
	if s.AWS, err = emulator.StartServer(emulator.Options{Region: "us-east-1", AccountID: "123456789012"}, ""); err != nil {
		return err
	}
	certPEM, keyPEM, err := s.AWS.CA.ServerCertPEM(backendHost)
	if err != nil {
		return fmt.Errorf("aurorastack: MariaDB certificate: %w", err)
	}
	password, err := backendPassword()
	if err != nil {
		return err
	}
	s.MySQL = make([]*localmy.Server, len(o.Instances))
	errs := make([]error, len(o.Instances))
	var wg sync.WaitGroup
	for n := range o.Instances {
		wg.Go(func() {
			my, err := localmy.Start(ctx, localmy.Options{TLS: &localmy.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
				Settings: map[string]string{"max_connections": "300"}})
			s.MySQL[n], errs[n] = my, err
			if err == nil {
				errs[n] = my.Exec(ctx, mysqlSetUp(o.User, password, o.Database)...)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var instances []emulator.AuroraInstance
	for n, id := range o.Instances {
		instances = append(instances, emulator.AuroraInstance{ID: id, Backend: s.MySQL[n].Addr(), Admin: s.MySQL[n].DSN("root", "", "")})
	}
	s.Cluster, err = s.AWS.AWS.StartAuroraMySQL(ctx, s.AWS.CA, emulator.AuroraOptions{Instances: instances,
		StaleDNS: o.StaleDNS, RestartDelay: o.RestartDelay,
		MySQL: emulator.MySQLOptions{BackendPassword: password, IAMUsers: []string{o.User},
			BackendTLS: &tls.Config{RootCAs: s.AWS.CA.Pool(), ServerName: backendHost, MinVersion: tls.VersionTLS12}}})
	return err
}

// mysqlSetUp creates the IAM user (only the fronts know the password; TLS
// required, as for an RDS IAM user), the app database and its table hits,
// on which the user may INSERT and SELECT and nothing more: without SUPER
// or READ ONLY ADMIN, a read-only member refuses its writes (1290) as an
// Aurora MySQL reader does.
func mysqlSetUp(user, password, db string) []string {
	return []string{
		iamtest.MySQLUserSQL(user, password, true),
		"CREATE DATABASE " + sqlquote.MySQLIdent(db),
		"CREATE TABLE " + sqlquote.MySQLIdent(db) + ".hits (id INT AUTO_INCREMENT PRIMARY KEY, client VARCHAR(64))",
		"GRANT INSERT, SELECT ON " + sqlquote.MySQLIdent(db) + ".hits TO " + sqlquote.MySQLAccount(user, "%"),
	}
}

// backendPassword is the fronts' password for the IAM user on MariaDB:
// the only way in is through a front, with a token.
func backendPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("aurorastack: backend password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
