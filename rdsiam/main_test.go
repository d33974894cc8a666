package rdsiam_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/shortskip"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/iamstack"
)

// The examples run against a throwaway PostgreSQL and MariaDB behind the
// emulated RDS fronts, with this process's AWS chain pointed at the
// emulator's instance profile, as a program on EC2 finds its credentials.
// What a program would hard-code (the endpoint, the tunnel's address, the
// CA bundle) comes from these.
var (
	endpoint, dialAddress     string // the PostgreSQL front
	myEndpoint, myDialAddress string // the MySQL front
	caFile                    string
	stack                     *iamstack.Stack
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Examples cannot skip, so the package does, as the integration
		// suite: never in CI.
		if shortskip.InCI() {
			fmt.Fprintln(os.Stderr, "rdsiam tests: -short under CI=true would skip them: CI must run them (drop -short)")
			os.Exit(1)
		}
		fmt.Println("rdsiam tests: skipped under -short (they start PostgreSQL, MariaDB and the emulator)")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := iamstack.Start(ctx, iamstack.Options{
		SetupSQL: []string{"CREATE ROLE rds_iam; CREATE ROLE app_user LOGIN; GRANT rds_iam TO app_user; CREATE ROLE plain_user LOGIN"},
		AppDB:    "app", AppSQL: "CREATE TABLE greeting (text text); INSERT INTO greeting VALUES ('hello from PostgreSQL'); GRANT SELECT ON greeting TO app_user",
		Role: "rdsiam-example", AllowUsers: []string{"app_user", "plain_user"},
		MySQL: &iamstack.MySQLOptions{AppDB: "app", IAMUsers: []string{"app_user"},
			AppSQL: []string{"CREATE TABLE greeting (text text)", "INSERT INTO greeting VALUES ('hello from MariaDB')"},
			Grants: []string{"GRANT SELECT ON app.* TO 'app_user'@'%'"}},
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdsiam tests: start PostgreSQL, MariaDB and the emulator:", err)
		os.Exit(1)
	}
	stack = s
	s.UseInProcess()
	endpoint, dialAddress = s.Endpoint(), s.Front.Addr()
	myEndpoint, myDialAddress = s.MySQLEndpoint(), s.MyFront.Addr()
	caFile = s.CAFile
	code := m.Run()
	s.Close()
	os.Exit(code)
}
