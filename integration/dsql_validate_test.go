package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/validate"
)

// dsqlValidate logs in through the DSQL proxy as role and runs DSQL's
// checks on o (o.Admin: inspecting o.User as admin).
func dsqlValidate(t *testing.T, port, role string, o validate.DBOptions) *validate.Report {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, dsqlDSN(port, role, "postgres"))
	if err != nil {
		t.Fatalf("log in as %s through the DSQL proxy: %v", role, err)
	}
	defer conn.Close(context.Background())
	return validate.DSQL(ctx, conn, o)
}

// TestDSQLValidate: validate's DSQL checks through the emulated DSQL
// front (its mappings shown in sys.iam_pg_role_mappings by the emulator's
// shim). A role mapped to the signer with the grants passes every check,
// checking itself; inspected by admin, a role mapped to nobody is named
// with the AWS IAM GRANT that maps it; asking for sequences or temporary
// tables says DSQL has none and what to use instead; no rds_iam check is
// made. Budget: about 5 s on a quiet machine.
func TestDSQLValidate(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlvalidateit000000000001"})
	arn, signer := dsqlSigner(t, "dsql-validate", bothActions(d))
	d.GrantIAM(dsqlApp, arn)
	w.showDSQLMappings(t, d)
	schema := uniqueName(t, "dsqlv")
	t.Cleanup(func() { pgExec(t, "postgres", "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	pgExec(t, "postgres", fmt.Sprintf(`CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), note text);
GRANT USAGE ON SCHEMA %[1]s TO %[2]s;
GRANT SELECT, INSERT, UPDATE, DELETE ON %[1]s.orders TO %[2]s;`, schema, dsqlApp))
	port := dsqlProxy(t, d, signer)
	need := mustReqs(t, schema+".*:SELECT,INSERT,UPDATE,DELETE")

	// The mapped role, checking itself as validate does through the proxy.
	r := dsqlValidate(t, port, dsqlApp, validate.DBOptions{User: dsqlApp, Require: need, IAMPrincipal: arn})
	allPass(t, r, "the mapped role")
	if c := find(t, r, "AWS IAM GRANT mapping"); !strings.Contains(c.Detail, arn) {
		t.Errorf("the mapping check does not name the signer %s: %s", arn, c.Detail)
	}
	for _, c := range r.Checks {
		if strings.Contains(c.Name, "rds_iam") {
			t.Errorf("a DSQL report checks rds_iam: %+v", c)
		}
	}

	// Where the role cannot read the catalog, its DbConnect login is the
	// proof of its mapping; admin, who can, still sees it.
	pgExec(t, "postgres", "REVOKE SELECT ON sys.iam_pg_role_mappings FROM PUBLIC; GRANT SELECT ON sys.iam_pg_role_mappings TO admin")
	r = dsqlValidate(t, port, dsqlApp, validate.DBOptions{User: dsqlApp, Require: need, IAMPrincipal: arn})
	if c := find(t, r, "AWS IAM GRANT mapping"); c.Status != validate.OK || !strings.Contains(c.Detail, "logged in with a dsql:DbConnect token") {
		t.Errorf("catalog unreadable as the role: %+v", c)
	}

	// The unmapped role, inspected by admin: named, with the mapping's SQL.
	r = dsqlValidate(t, port, "admin", validate.DBOptions{User: dsqlUnmapped, Require: need, IAMPrincipal: arn, Admin: true})
	c := find(t, r, "AWS IAM GRANT mapping")
	want := fmt.Sprintf("AWS IAM GRANT %s TO '%s';", dsqlUnmapped, arn)
	if c.Status != validate.Fail || !strings.Contains(c.Detail, dsqlUnmapped) || c.Fix != want {
		t.Errorf("unmapped role: %+v, want a failure with the fix %q\n%s", c, want, reportText(r))
	}
	if c := find(t, r, "SELECT,INSERT,UPDATE,DELETE on tables in "+schema); c.Status != validate.Fail ||
		!strings.Contains(c.Fix, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+dsqlUnmapped) {
		t.Errorf("unmapped role's grants: %+v", c)
	}

	// Sequences and temporary tables: DSQL has none, and says what instead.
	r = dsqlValidate(t, port, dsqlApp, validate.DBOptions{User: dsqlApp, IAMPrincipal: arn,
		Require:          mustReqs(t, schema+".*:SELECT,TEMPORARY"),
		RequireSequences: mustReqs(t, schema+".*:USAGE")})
	seq := find(t, r, "sequences in "+schema)
	if seq.Status != validate.Fail || !strings.Contains(seq.Detail, "no sequences") || !strings.Contains(seq.Detail, "gen_random_uuid()") {
		t.Errorf("sequences: %+v", seq)
	}
	tmp := find(t, r, "TEMPORARY in "+schema)
	if tmp.Status != validate.Fail || !strings.Contains(tmp.Detail, "no temporary tables") {
		t.Errorf("temporary tables: %+v", tmp)
	}
	if c := find(t, r, "SELECT on tables in "+schema); c.Status != validate.OK {
		t.Errorf("SELECT, asked beside TEMPORARY: %+v", c)
	}
}

// TestDSQLValidateCommand: `rds-iam-proxy validate --engine dsql` (the
// binary) logs in through its in-process proxy with an assumed role's
// sessions, which DSQL maps by the role's ARN: the mapped role passes and
// the mapping check names that role; an unmapped role's login fails with
// the AWS IAM GRANT that maps it; --require-sequences fails with DSQL's
// missing feature named; with --admin-dsn (admin through a proxy) the
// unmapped role's mapping check fails with that fix. Budget: about 8 s
// (four runs of the binary).
func TestDSQLValidateCommand(t *testing.T) {
	w.enter(t)
	d := dsqlFront(t, emulator.DSQLOptions{ClusterID: "dsqlvalidatecmdit000000001"})
	role := w.aws.AWS.AddRole(uniqueName(t, "dsqlvalidate"), bothActions(d))
	d.GrantIAM(dsqlApp, role)
	w.showDSQLMappings(t, d)
	schema := uniqueName(t, "dsqlv")
	t.Cleanup(func() { pgExec(t, "postgres", "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	pgExec(t, "postgres", fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.items (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
GRANT USAGE ON SCHEMA %[1]s TO %[2]s; GRANT SELECT, INSERT ON %[1]s.items TO %[2]s;`, schema, dsqlApp))
	upstream := []string{"validate", "--engine", "dsql", "--endpoint", d.Endpoint() + ":5432", "--dial-address", d.Addr(),
		"--ca-bundle", w.caFile, "--role-arn", role, "--require", schema + ".*:SELECT,INSERT"}

	out, stderr, code := runCLI(t, append(upstream, "--db-user", dsqlApp)...)
	if code != 0 || strings.Contains(out, "fail") || strings.Contains(out, "rds_iam") ||
		!strings.Contains(out, "ok    AWS IAM GRANT mapping: "+dsqlApp+" is mapped to "+role) {
		t.Errorf("validate as the mapped role: exit %d\n%s\n%s", code, out, stderr)
	}

	out, stderr, code = runCLI(t, append(upstream, "--db-user", dsqlUnmapped)...)
	if want := fmt.Sprintf("AWS IAM GRANT %s TO '%s'", dsqlUnmapped, role); code != 1 || !strings.Contains(out, want) {
		t.Errorf("validate as the unmapped role: exit %d, want %q in\n%s\n%s", code, want, out, stderr)
	}

	// --admin-dsn: admin logged in through a proxy, inspecting the
	// unmapped role, which is named with the role ARN STS gave.
	_, adminSigner := dsqlSigner(t, "dsql-validate-admin", d.ConnectPolicy(true))
	adminPort := dsqlProxy(t, d, adminSigner)
	out, stderr, code = runCLI(t, append(upstream, "--db-user", dsqlUnmapped, "--admin-dsn", dsqlDSN(adminPort, "admin", "postgres"))...)
	if want := fmt.Sprintf("fix: AWS IAM GRANT %s TO '%s';", dsqlUnmapped, role); code != 1 || !strings.Contains(out, "fail  AWS IAM GRANT mapping") || !strings.Contains(out, want) {
		t.Errorf("validate --admin-dsn for the unmapped role: exit %d, want %q in\n%s\n%s", code, want, out, stderr)
	}

	out, stderr, code = runCLI(t, append(upstream, "--db-user", dsqlApp, "--require-sequences", schema+".*:USAGE")...)
	if code != 1 || !strings.Contains(out, "fail  sequences in "+schema+": Aurora DSQL has no sequences") || !strings.Contains(out, "gen_random_uuid()") {
		t.Errorf("validate with --require-sequences: exit %d\n%s\n%s", code, out, stderr)
	}
}
