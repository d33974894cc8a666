package validate

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

func TestDSQLSetupSQL(t *testing.T) {
	out, err := SetupSQL(SetupOptions{Engine: config.DSQL, User: "app", IAMPrincipal: "arn:aws:iam::123456789012:role/app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-- Run as admin, connected to postgres",
		"sys.iam_pg_role_mappings", "no sequences, triggers, temporary tables, foreign keys or extensions",
		"CREATE ROLE app WITH LOGIN;\nAWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/app';\nGRANT USAGE ON SCHEMA public TO app;\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO app;\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("setup sql lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rds_iam") || strings.Contains(out, "DEFAULT PRIVILEGES") {
		t.Errorf("RDS's setup in DSQL's:\n%s", out)
	}
	out, _ = SetupSQL(SetupOptions{Engine: config.DSQL, User: "app"})
	if !strings.Contains(out, "TO 'arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME'") || !strings.Contains(out, "Replace arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME") {
		t.Errorf("no principal: %s", out)
	}
	for _, o := range []SetupOptions{
		{Engine: config.DSQL, User: "admin"},
		{Engine: config.DSQL, User: "app", RequireSequences: []Requirement{{Schema: "public", Object: "*", Privileges: []string{"USAGE"}}}},
		{Engine: config.DSQL, User: "app", Database: "appdb"},
	} {
		if _, err := SetupSQL(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestDSQLPolicyJSON(t *testing.T) {
	doc, err := DSQLPolicyJSON("us-east-1", "123456789012", "abc123", true, true)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Statement []struct {
			Effect   string
			Action   []string
			Resource []string
		}
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		t.Fatal(err)
	}
	st := p.Statement[0]
	if st.Effect != "Allow" || strings.Join(st.Action, ",") != "dsql:DbConnectAdmin,dsql:DbConnect" || strings.Join(st.Resource, ",") != "arn:aws:dsql:us-east-1:123456789012:cluster/abc123" {
		t.Errorf("policy %s", doc)
	}
	if doc, _ := DSQLPolicyJSON("us-east-1", "123456789012", "abc123", false, true); !strings.Contains(string(doc), `"Action": "dsql:DbConnect"`) {
		t.Errorf("one action: %s", doc)
	}
	if _, err := DSQLPolicyJSON("us-east-1", "12", "", false, false); err == nil || !strings.Contains(err.Error(), "12 digits") || !strings.Contains(err.Error(), "cluster id") {
		t.Errorf("bad target: %v", err)
	}
}
