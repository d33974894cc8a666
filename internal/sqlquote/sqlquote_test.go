package sqlquote

import "testing"

func TestPGIdent(t *testing.T) {
	for in, want := range map[string]string{"app_user": "app_user", "App": `"App"`, "a-b": `"a-b"`, `x"y`: `"x""y"`,
		"1a": `"1a"`, "user": `"user"`, "select": `"select"`, "a$1": "a$1"} {
		if got := PGIdent(in); got != want {
			t.Errorf("PGIdent(%q) = %s, want %s", in, got, want)
		}
	}
	if got := PGRole("public"); got != `"public"` {
		t.Errorf("PGRole(public) = %s", got)
	}
}

func TestMySQL(t *testing.T) {
	if got := MySQLIdent("a`b"); got != "`a``b`" {
		t.Errorf("MySQLIdent = %s", got)
	}
	if got := MySQLAccount(`o'brien\`, "%"); got != `'o''brien\\'@'%'` {
		t.Errorf("MySQLAccount = %s", got)
	}
}

func TestPGString(t *testing.T) {
	for in, want := range map[string]string{"": "''", "app": "'app'", "o'b": "'o''b'", `a\'b`: `E'a\\''b'`} {
		if got := PGString(in); got != want {
			t.Errorf("PGString(%q) = %s, want %s", in, got, want)
		}
	}
}
