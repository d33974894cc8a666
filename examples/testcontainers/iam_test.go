package tciamtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator/iamtest"
	"github.com/rds-iam-proxy/rds-iam-proxy/rdsiam"
)

func TestIAMLoginToContainer(t *testing.T) {
	ctx := context.Background()
	pg, err := postgres.Run(ctx, "postgres:16-alpine",
		postgres.WithUsername("postgres"), postgres.WithPassword("secret"), postgres.WithDatabase("app"),
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").WithOccurrence(2).WithStartupTimeout(time.Minute)))
	testcontainers.CleanupContainer(t, pg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := pg.Endpoint(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	env := iamtest.Start(t, iamtest.Options{Addr: addr, AdminUser: "postgres", AdminPassword: "secret", Database: "app",
		DBUser: "app_iam", Grants: []string{"GRANT pg_read_all_data TO app_iam"}})
	env.Setenv(t)

	s, err := rdsiam.New(ctx, rdsiam.Options{Endpoint: env.EndpointAddr(), DialAddress: env.DialAddress, CABundle: env.CAFile, User: env.DBUser})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg, err := pgxpool.ParseConfig("dbname=app")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BeforeConnect = s.BeforeConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var user string
	if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(s.Explain(ctx, err))
	}
	if user != "app_iam" {
		t.Fatalf("logged in as %q, want app_iam", user)
	}
}
