package validate

import (
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"
)

func TestSetupSQLPostgres(t *testing.T) {
	tables, _ := ParseRequirements([]string{"public.*:SELECT,INSERT", "Billing.invoices:SELECT"})
	seqs, _ := ParseRequirements([]string{"public.*:USAGE,SELECT"})
	got, err := SetupSQL(SetupOptions{User: "app_user", Database: "appdb", Require: tables, RequireSequences: seqs})
	if err != nil {
		t.Fatal(err)
	}
	want := `CREATE USER app_user WITH LOGIN;
GRANT rds_iam TO app_user;
GRANT CONNECT ON DATABASE appdb TO app_user;
GRANT USAGE ON SCHEMA public TO app_user;
GRANT USAGE ON SCHEMA "Billing" TO app_user;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO app_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO app_user;
GRANT SELECT ON TABLE "Billing".invoices TO app_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO app_user;
`
	if !strings.HasPrefix(got, "-- ") || !strings.HasSuffix(got, want) {
		t.Fatalf("got\n%s\nwant (after the comment)\n%s", got, want)
	}
}

func TestSetupSQLDefaults(t *testing.T) {
	stmts, err := SetupStatements(SetupOptions{User: "App_User"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`CREATE USER "App_User" WITH LOGIN;`, `GRANT rds_iam TO "App_User";`, `GRANT USAGE ON SCHEMA public TO "App_User";`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "App_User";`, `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "App_User";`}
	if strings.Join(stmts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", strings.Join(stmts, "\n"))
	}
	if _, err := SetupStatements(SetupOptions{Engine: "mysql", User: "u"}); err == nil {
		t.Error("MySQL with neither database nor grants accepted")
	}
	if _, err := SetupStatements(SetupOptions{Engine: "oracle", User: "u"}); err == nil {
		t.Error("unknown engine accepted")
	}
	if _, err := SetupStatements(SetupOptions{}); err == nil {
		t.Error("no user accepted")
	}
}

func TestSetupSQLMySQL(t *testing.T) {
	reqs, _ := ParseRequirements([]string{"appdb.*:SELECT,INSERT", "appdb.audit:ALL"})
	stmts, err := SetupStatements(SetupOptions{Engine: "mysql", User: "o'brien", Require: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 3 ||
		stmts[0] != `CREATE USER IF NOT EXISTS 'o''brien'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL;` ||
		stmts[1] != "GRANT SELECT, INSERT ON `appdb`.* TO 'o''brien'@'%';" ||
		!strings.HasPrefix(stmts[2], "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP") || !strings.HasSuffix(stmts[2], " ON `appdb`.`audit` TO 'o''brien'@'%';") {
		t.Fatalf("%q", stmts)
	}
	stmts, _ = SetupStatements(SetupOptions{Engine: "mysql", User: "u", Database: "shop", Host: "10.0.%"})
	if stmts[1] != "GRANT SELECT ON `shop`.* TO 'u'@'10.0.%';" {
		t.Fatalf("%q", stmts)
	}
}

func TestPGIdent(t *testing.T) {
	for in, want := range map[string]string{
		"app_user": "app_user", "App_User": `"App_User"`, "user": `"user"`, "select": `"select"`, "a b": `"a b"`,
		`we"ird`: `"we""ird"`, "1abc": `"1abc"`, "abc$1": "abc$1", "public": "public", "": `""`,
	} {
		if got := sqlquote.PGIdent(in); got != want {
			t.Errorf("sqlquote.PGIdent(%q) = %s, want %s", in, got, want)
		}
	}
	if sqlquote.PGRole("public") != `"public"` || sqlquote.PGRole("app") != "app" {
		t.Error("pgRoleIdent")
	}
	if sqlquote.MySQLIdent("a`b") != "`a``b`" || sqlquote.MySQLString(`a'b\c`) != `'a''b\\c'` {
		t.Error("mysql quoting")
	}
}
