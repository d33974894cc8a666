package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSetupDSQL: setup policy and setup sql know Aurora DSQL: the
// actions by role on the cluster ARN (no AWS call when --account is
// given), and the role with its AWS IAM GRANT.
func TestSetupDSQL(t *testing.T) {
	code, out, errOut := runSetupPolicy(t, "--engine", "dsql", "--endpoint", "abc123.dsql.us-east-1.on.aws", "--db-user", "admin,app", "--account", "123456789012")
	if code != 0 {
		t.Fatalf("setup policy: %d %s", code, errOut)
	}
	p := parsePolicy(t, out)
	if len(p.Statement) != 1 || !strings.Contains(out, `"dsql:DbConnectAdmin"`) || !strings.Contains(out, `"dsql:DbConnect"`) ||
		len(p.Statement[0].Resource) != 1 || p.Statement[0].Resource[0] != "arn:aws:dsql:us-east-1:123456789012:cluster/abc123" {
		t.Errorf("policy:\n%s", out)
	}
	code, out, _ = runSetupPolicy(t, "--engine", "dsql", "--endpoint", "abc123.dsql.us-east-1.on.aws", "--db-user", "app", "--dsql-action", "admin", "--account", "123456789012")
	if code != 0 || !strings.Contains(out, `"Action": "dsql:DbConnectAdmin"`) {
		t.Errorf("--dsql-action admin: %d\n%s", code, out)
	}
	if code, _, errOut := runSetupPolicy(t, "--engine", "dsql", "--endpoint", "db.abc.us-east-1.rds.amazonaws.com", "--db-user", "app", "--account", "123456789012"); code == 0 || !strings.Contains(errOut, "not an Aurora DSQL cluster endpoint") {
		t.Errorf("an RDS name: %d %s", code, errOut)
	}

	var sqlOut, sqlErr bytes.Buffer
	if code := cmdSetupSQL(t.Context(), []string{"--engine", "dsql", "--db-user", "app", "--iam-principal", "arn:aws:iam::123456789012:role/app"}, &sqlOut, &sqlErr); code != 0 {
		t.Fatalf("setup sql: %d %s", code, sqlErr.String())
	}
	if !strings.Contains(sqlOut.String(), "AWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/app';") {
		t.Errorf("setup sql:\n%s", sqlOut.String())
	}
}
