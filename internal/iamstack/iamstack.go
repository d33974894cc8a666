// Package iamstack starts the whole IAM path on one machine: a throwaway
// PostgreSQL, emulated AWS (STS, IMDSv2 with an instance profile) and the
// emulated RDS IAM front before that PostgreSQL, with the CA file the proxy
// needs. The demo and the integration tests both stand on it, so the demo a
// person runs is the setup the tests prove.
package iamstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/localpg"
)

// Options describe the database and who may connect.
type Options struct {
	// SetupSQL runs in the postgres database, one call per element (so
	// CREATE DATABASE can stand alone), before AppSQL.
	SetupSQL []string
	// AppDB is created, and AppSQL runs in it.
	AppDB  string
	AppSQL string
	// Role is the instance-profile role; it may rds-db:connect as each of
	// AllowUsers.
	Role       string
	AllowUsers []string
	Logger     *slog.Logger
}

// Stack is a running IAM path.
type Stack struct {
	PG     *localpg.Server
	AWS    *emulator.Server
	Front  *emulator.Postgres
	CAFile string // the emulator's CA, for --ca-bundle
	Dir    string // scratch dir, removed by Close
}

// Start brings everything up, or nothing: on error what started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.PG, err = localpg.Start(ctx, localpg.Options{}); err != nil {
		return nil, err
	}
	for _, sql := range o.SetupSQL {
		if err = s.PG.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("set up the database: %w", err)
		}
	}
	if o.AppDB != "" {
		if err = s.PG.Exec(ctx, "CREATE DATABASE "+o.AppDB); err != nil {
			return nil, fmt.Errorf("create database %s: %w", o.AppDB, err)
		}
		if err = s.PG.ExecIn(ctx, o.AppDB, o.AppSQL); err != nil {
			return nil, fmt.Errorf("set up database %s: %w", o.AppDB, err)
		}
	}
	if s.AWS, err = emulator.StartServer(emulator.Options{Logger: log}, ""); err != nil {
		return nil, err
	}
	if s.Front, err = s.AWS.AWS.StartPostgres(s.AWS.CA, emulator.PostgresOptions{Backend: s.PG.Addr(), Logger: log}); err != nil {
		return nil, err
	}
	if o.Role == "" {
		return nil, errors.New("iamstack: no role")
	}
	s.AWS.AWS.AddRole(o.Role, s.Front.ConnectPolicy(o.AllowUsers...))
	if err = s.AWS.AWS.SetInstanceProfile(o.Role); err != nil {
		return nil, err
	}
	if s.Dir, err = os.MkdirTemp("", "rds-iam-proxy-stack-"); err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(s.Dir, "emulator-ca.pem")
	if err = os.WriteFile(s.CAFile, s.AWS.CA.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// Endpoint is the RDS-like endpoint, host:port, for --endpoint.
func (s *Stack) Endpoint() string { return fmt.Sprintf("%s:%d", s.Front.Endpoint(), s.Front.Port()) }

// UseInProcess points this process's AWS chain at the emulator only (see
// emulator.Server.IsolateProcessEnv).
func (s *Stack) UseInProcess() { s.AWS.IsolateProcessEnv(s.Dir) }

// Close stops everything that started. Safe on a partly started stack.
func (s *Stack) Close() {
	if s.Front != nil {
		s.Front.Close()
	}
	if s.AWS != nil {
		s.AWS.Close()
	}
	if s.PG != nil {
		s.PG.Stop()
	}
	if s.Dir != "" {
		os.RemoveAll(s.Dir)
	}
}
