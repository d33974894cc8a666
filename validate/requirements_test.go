package validate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequirement(t *testing.T) {
	cases := []struct {
		in   string
		want Requirement
	}{
		{"public.*:SELECT,INSERT,UPDATE,DELETE", Requirement{"public", "*", []string{"SELECT", "INSERT", "UPDATE", "DELETE"}}},
		{"public.*:USAGE, select", Requirement{"public", "*", []string{"USAGE", "SELECT"}}},
		{"public:SELECT", Requirement{"public", "*", []string{"SELECT"}}},
		{"app.items:SELECT,SELECT", Requirement{"app", "items", []string{"SELECT"}}},
		{`"My.Schema"."Odd:Table":insert`, Requirement{"My.Schema", "Odd:Table", []string{"INSERT"}}},
		{"`app_db`.*:ALL PRIVILEGES", Requirement{"app_db", "*", []string{"ALL"}}},
		{`"a""b".*:SELECT`, Requirement{`a"b`, "*", []string{"SELECT"}}},
		{"App_Schema.*:create temporary  tables", Requirement{"App_Schema", "*", []string{"CREATE TEMPORARY TABLES"}}},
	}
	for _, c := range cases {
		got, err := ParseRequirement(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseRequirement(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		// The flag form parses back to the same requirement.
		again, err := ParseRequirement(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q via %q: %+v, %v", c.in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "public.*", "public.*:", "public.*:SELECT,", ".*:SELECT", `"public.*:SELECT`, "*:SELECT", `"".*:SELECT`} {
		if r, err := ParseRequirement(bad); err == nil {
			t.Errorf("ParseRequirement(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestRequirementsYAML(t *testing.T) {
	file := filepath.Join(t.TempDir(), "grants.yaml")
	os.WriteFile(file, []byte("require:\n  - \"public.*:SELECT,INSERT\"\n  - app.items:UPDATE\nrequire_sequences:\n  - \"public.*:USAGE,SELECT\"\n"), 0o644)
	tables, seqs, err := LoadRequirements(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[1].Object != "items" || len(seqs) != 1 || seqs[0].Privileges[0] != "USAGE" {
		t.Fatalf("%+v %+v", tables, seqs)
	}
	if _, _, err := ParseRequirementsYAML([]byte("requires:\n  - public.*:SELECT\n")); err == nil {
		t.Error("a misspelt key was accepted")
	}
	if tables, seqs, err := ParseRequirementsYAML(nil); err != nil || tables != nil || seqs != nil {
		t.Errorf("empty file: %v %v %v", tables, seqs, err)
	}
	if _, _, err := ParseRequirementsYAML([]byte("require: [\"public.*\"]\n")); err == nil || !strings.Contains(err.Error(), "PRIVILEGE") {
		t.Errorf("bad requirement in the file: %v", err)
	}
}

func TestCheckRequirements(t *testing.T) {
	r := func(s string) []Requirement { x, _ := ParseRequirements([]string{s}); return x }
	if err := CheckRequirements("postgres", r("public.*:SELECT,ALL"), r("public.*:USAGE")); err != nil {
		t.Error(err)
	}
	if err := CheckRequirements("postgres", r("public.*:SELEC"), nil); err == nil || !strings.Contains(err.Error(), "SELEC is not a privilege on tables") {
		t.Errorf("typo: %v", err)
	}
	if err := CheckRequirements("postgres", nil, r("public.*:INSERT")); err == nil {
		t.Error("INSERT on sequences accepted")
	}
	if err := CheckRequirements("mysql", r("app.*:SELECT,CREATE TEMPORARY TABLES"), nil); err != nil {
		t.Error(err)
	}
	if err := CheckRequirements("mysql", nil, r("app.*:USAGE")); err == nil {
		t.Error("sequences accepted for MySQL")
	}
	e, err := expand(r("s.*:ALL")[0], pgSequencePrivileges, "sequences")
	if err != nil || !reflect.DeepEqual(e.Privileges, pgSequencePrivileges) {
		t.Errorf("ALL: %v %v", e.Privileges, err)
	}
}
