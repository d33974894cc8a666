package validate

import (
	"reflect"
	"testing"
)

// Lines as MySQL 8.0 and MariaDB 10.x/11.x print them.
var showGrants = []string{
	"GRANT USAGE ON *.* TO `app_user`@`%` IDENTIFIED BY PASSWORD '*ABC' REQUIRE SSL",
	"GRANT SELECT, INSERT, UPDATE ON `appdb`.* TO `app_user`@`%`",
	"GRANT ALL PRIVILEGES ON `logs`.* TO `app_user`@`%` WITH GRANT OPTION",
	"GRANT DELETE, SELECT (`id`, `name`), UPDATE (`name`) ON `appdb`.`items` TO `app_user`@`%`",
	"GRANT EXECUTE ON PROCEDURE `appdb`.`p` TO `app_user`@`%`",
	"GRANT SELECT ON `app\\_%`.* TO `app_user`@`%`",
	"GRANT `reporting`@`%` TO `app_user`@`%`",
	"GRANT PROXY ON ''@'' TO 'app_user'@'%'",
	"GRANT TRIGGER ON TABLE appdb.audit TO 'app_user'@'%'",
}

func TestParseGrants(t *testing.T) {
	grants, roles := ParseGrants(showGrants)
	want := []Grant{
		{Privileges: []string{"USAGE"}, Database: "*", Table: "*"},
		{Privileges: []string{"SELECT", "INSERT", "UPDATE"}, Database: "appdb", Table: "*"},
		{Privileges: []string{"ALL"}, Database: "logs", Table: "*"},
		{Privileges: []string{"DELETE"}, Database: "appdb", Table: "items"},
		{Privileges: []string{"SELECT"}, Database: `app\_%`, Table: "*"},
		{Privileges: []string{"TRIGGER"}, Database: "appdb", Table: "audit"},
	}
	if !reflect.DeepEqual(grants, want) {
		t.Errorf("grants\n%+v\nwant\n%+v", grants, want)
	}
	if !reflect.DeepEqual(roles, []string{"`reporting`@`%`"}) {
		t.Errorf("roles %q", roles)
	}
}

func TestMissingPrivileges(t *testing.T) {
	grants, _ := ParseGrants(showGrants)
	cases := []struct {
		req  string
		want []string
	}{
		{"appdb.*:SELECT,INSERT", nil},
		{"appdb.*:SELECT,DELETE,INSERT,DROP", []string{"DELETE", "DROP"}},
		{"appdb.items:SELECT,DELETE", nil},           // SELECT from the database, DELETE on the table
		{"appdb.items:TRIGGER", []string{"TRIGGER"}}, // the trigger grant is on audit
		{"appdb.audit:TRIGGER,UPDATE", nil},
		{"logs.*:SELECT,DROP,EVENT", nil}, // ALL PRIVILEGES
		{"app_x.*:SELECT", nil},           // app\_% matches
		{"appxx.*:SELECT", []string{"SELECT"}},
		{"other.*:SELECT", []string{"SELECT"}},
	}
	for _, c := range cases {
		r, err := ParseRequirement(c.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := MissingPrivileges(grants, r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: missing %q, want %q", c.req, got, c.want)
		}
	}
	global, _ := ParseGrants([]string{"GRANT SELECT ON *.* TO 'u'@'%'"})
	if m := MissingPrivileges(global, Requirement{"any", "t", []string{"SELECT"}}); m != nil {
		t.Errorf("*.* does not cover: %v", m)
	}
}

func TestLikeMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"appdb", "appdb", true}, {"appdb", "Appdb", false}, {"app_db", "appXdb", true}, {`app\_db`, "appXdb", false},
		{`app\_db`, "app_db", true}, {"app%", "app", true}, {"app%", "application", true}, {"%", "", true}, {"a%c", "abd", false},
	} {
		if got := likeMatch(c.p, c.s); got != c.ok {
			t.Errorf("likeMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
}
