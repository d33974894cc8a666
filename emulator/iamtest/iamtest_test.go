package iamtest

import (
	"context"
	"os"
	"strings"
	"testing"
)

// The helper against real servers (PostgreSQL with scram, MariaDB with
// TLS), through the proxy and rdsiam, is tested in
// integration/iamtest_test.go: the emulator's own tests never reach the
// proxy. These are the parts that need no server.

func TestOptionsRefusedBeforeAnythingStarts(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Options.Addr"},
		{Options{Addr: "localhost"}, "missing port"},
		{Options{Engine: "oracle", Addr: "127.0.0.1:1"}, `engine "oracle"`},
	} {
		_, err := StartContext(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartContext(%+v) = %v, want an error naming %s", tc.o, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	pg, err := Options{Addr: "127.0.0.1:5432"}.withDefaults()
	if err != nil || pg.Engine != Postgres || pg.AdminUser != "postgres" || pg.Database != "postgres" || pg.DBUser != "iam_user" {
		t.Errorf("postgres defaults: %+v %v", pg, err)
	}
	my, err := Options{Engine: "mariadb", Addr: "127.0.0.1:3306"}.withDefaults()
	if err != nil || my.Engine != MySQL || my.AdminUser != "root" || my.Database != "" {
		t.Errorf("mysql defaults: %+v %v", my, err)
	}
}

// A user name or password that is not a plain word stays one name and
// one literal in the SQL.
func TestUserSQLQuotes(t *testing.T) {
	pg := strings.Join(PostgresUserSQL(`Odd"User`, "pa'ss"), ";")
	if !strings.Contains(pg, `CREATE ROLE "Odd""User" LOGIN PASSWORD 'pa''ss' IN ROLE rds_iam`) {
		t.Errorf("PostgresUserSQL: %s", pg)
	}
	if got := PostgresUserSQL("app", "")[1]; got != "CREATE ROLE app LOGIN IN ROLE rds_iam" {
		t.Errorf("without a password: %s", got)
	}
	my := MySQLUserSQL("o'user", `p\w`, true)
	if my != `CREATE USER 'o''user'@'%' IDENTIFIED BY 'p\\w' REQUIRE SSL` {
		t.Errorf("MySQLUserSQL: %s", my)
	}
	if got := MySQLUserSQL("app", "pw", false); strings.Contains(got, "REQUIRE") {
		t.Errorf("a server without TLS cannot require it: %s", got)
	}
}

// Setenv hides the runner's own AWS settings for the test and gives
// them back after it.
func TestSetenvHidesAndRestores(t *testing.T) {
	t.Setenv("AWS_PROFILE", "runner-profile")
	keyBefore, hadKey := os.LookupEnv("AWS_ACCESS_KEY_ID")
	e := &Env{AWSEnv: map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}}
	t.Run("inside", func(t *testing.T) {
		e.Setenv(t)
		if v, ok := os.LookupEnv("AWS_PROFILE"); ok {
			t.Errorf("AWS_PROFILE is still set (%q)", v)
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") != "AKIDEXAMPLE" || os.Getenv("AWS_REGION") != "us-east-1" {
			t.Error("AWSEnv is not set")
		}
	})
	if os.Getenv("AWS_PROFILE") != "runner-profile" {
		t.Errorf("AWS_PROFILE after the test: %q", os.Getenv("AWS_PROFILE"))
	}
	if key, has := os.LookupEnv("AWS_ACCESS_KEY_ID"); key != keyBefore || has != hadKey {
		t.Error("AWS_ACCESS_KEY_ID was not restored")
	}
}
