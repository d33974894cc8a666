package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// setupPolicyWorld is an emulated account with one instance and one
// Aurora cluster front (no database behind them: only the RDS API is
// asked), and the process environment pointed at it with the keys of a
// user whose policy is p.
func setupPolicyWorld(t *testing.T, p emulator.Policy) (*emulator.Server, *emulator.Postgres, *emulator.Postgres) {
	t.Helper()
	srv, err := emulator.StartServer(emulator.Options{}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	inst, err := srv.AWS.StartPostgres(srv.CA, emulator.PostgresOptions{Backend: "127.0.0.1:1", ResourceID: "db-SETUPPOLICY0001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	clus, err := srv.AWS.StartPostgres(srv.CA, emulator.PostgresOptions{Backend: "127.0.0.1:1",
		Endpoint: "aurora.cluster-c0ffee123456.us-east-1.rds.amazonaws.com", ResourceID: "db-MEMBER00001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clus.Close() })
	clus.JoinCluster("aurora", "cluster-SETUPPOLICY01")

	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for k, v := range srv.SDKEnv() {
		t.Setenv(k, v)
	}
	akid, secret := srv.AWS.AddUser("setup", p)
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	return srv, inst, clus
}

func runSetupPolicy(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmdSetupPolicy(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

type policyDoc struct {
	Version   string
	Statement []struct {
		Effect    string
		Action    any
		Resource  []string
		Principal map[string]any
		Condition map[string]map[string]string
	}
}

func parsePolicy(t *testing.T, s string) policyDoc {
	t.Helper()
	var d policyDoc
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("not a policy document: %v\n%s", err, s)
	}
	return d
}

func TestSetupPolicyLooksUpResourceID(t *testing.T) {
	_, inst, clus := setupPolicyWorld(t, emulator.Policy{Statements: []emulator.Statement{{Effect: "Allow",
		Action: []string{"rds:DescribeDBInstances", "rds:DescribeDBClusters"}, Resource: []string{"*"}}}})
	code, out, errOut := runSetupPolicy(t, "--endpoint", inst.Endpoint()+":5432", "--db-user", "app_user,Report_User")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	d := parsePolicy(t, out)
	want := []string{inst.UserARN("app_user"), inst.UserARN("Report_User")}
	if len(d.Statement) != 1 || d.Statement[0].Action != "rds-db:connect" || strings.Join(d.Statement[0].Resource, " ") != strings.Join(want, " ") {
		t.Errorf("policy = %s, want rds-db:connect on %v", out, want)
	}
	if !strings.Contains(out, ":dbuser:db-SETUPPOLICY0001/app_user") {
		t.Errorf("policy does not name the instance's resource id: %s", out)
	}

	// An Aurora cluster endpoint names the cluster's resource id.
	code, out, errOut = runSetupPolicy(t, "--endpoint", clus.Endpoint()+":5432", "--db-user", "app_user")
	if code != 0 {
		t.Fatalf("cluster: exit %d: %s", code, errOut)
	}
	if d := parsePolicy(t, out); d.Statement[0].Resource[0] != "arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-SETUPPOLICY01/app_user" {
		t.Errorf("cluster policy = %s", out)
	}
}

func TestSetupPolicyWithoutDescribe(t *testing.T) {
	_, inst, _ := setupPolicyWorld(t, emulator.Policy{})
	code, _, errOut := runSetupPolicy(t, "--endpoint", inst.Endpoint()+":5432", "--db-user", "app_user")
	if code != 1 || !strings.Contains(errOut, "could not check (AccessDenied for rds:DescribeDBInstances)") || !strings.Contains(errOut, "--resource-id") {
		t.Fatalf("exit %d, stderr %q: want exit 1 saying AccessDenied and --resource-id", code, errOut)
	}
	code, out, errOut := runSetupPolicy(t, "--endpoint", inst.Endpoint()+":5432", "--db-user", "app_user", "--resource-id", "db-GIVEN0001")
	if code != 0 {
		t.Fatalf("with --resource-id: exit %d: %s", code, errOut)
	}
	// The account comes from sts:GetCallerIdentity.
	if d := parsePolicy(t, out); d.Statement[0].Resource[0] != "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-GIVEN0001/app_user" {
		t.Errorf("policy = %s", out)
	}
	if code, _, errOut := runSetupPolicy(t, "--endpoint", inst.Endpoint(), "--db-user", "app_user", "--resource-id", "mydb"); code != 2 || !strings.Contains(errOut, "not the DB's name") {
		t.Errorf("a DB name as --resource-id: exit %d, %q", code, errOut)
	}
}

func TestSetupPolicyTrust(t *testing.T) {
	code, out, errOut := runSetupPolicy(t, "--kind", "trust", "--trust-principal", "arn:aws:iam::210987654321:role/app", "--trust-external-id", "xyz")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	d := parsePolicy(t, out)
	if d.Statement[0].Principal["AWS"] != "arn:aws:iam::210987654321:role/app" || d.Statement[0].Action != "sts:AssumeRole" ||
		d.Statement[0].Condition["StringEquals"]["sts:ExternalId"] != "xyz" {
		t.Errorf("cross-account trust = %s", out)
	}

	provider := "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF"
	code, out, errOut = runSetupPolicy(t, "--kind", "trust", "--oidc-provider", provider, "--service-account", "apps/reporting")
	if code != 0 {
		t.Fatalf("IRSA: exit %d: %s", code, errOut)
	}
	d = parsePolicy(t, out)
	cond := d.Statement[0].Condition["StringEquals"]
	if d.Statement[0].Principal["Federated"] != provider || d.Statement[0].Action != "sts:AssumeRoleWithWebIdentity" ||
		cond["oidc.eks.us-east-1.amazonaws.com/id/ABCDEF:sub"] != "system:serviceaccount:apps:reporting" ||
		cond["oidc.eks.us-east-1.amazonaws.com/id/ABCDEF:aud"] != "sts.amazonaws.com" {
		t.Errorf("IRSA trust = %s", out)
	}

	if code, _, _ := runSetupPolicy(t, "--kind", "trust"); code != 2 {
		t.Errorf("trust without a principal: exit %d, want 2", code)
	}
	if code, _, _ := runSetupPolicy(t, "--kind", "trust", "--oidc-provider", provider, "--service-account", "reporting"); code != 2 {
		t.Errorf("service account without namespace: exit %d, want 2", code)
	}
}
