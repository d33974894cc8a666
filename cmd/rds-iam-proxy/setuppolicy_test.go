package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// setupPolicyWorld is an emulated account with one instance and one
// Aurora cluster front (no database behind them: only the RDS API is
// asked), and the process environment pointed at it with the keys of a
// user whose policy is p.
func setupPolicyWorld(t *testing.T, p emulator.Policy) (*emulator.Server, *emulator.Postgres, *emulator.Postgres) {
	t.Helper()
	return setupPolicyWorldIn(t, "us-east-1", "rds.amazonaws.com", p)
}

// setupPolicyWorldIn is setupPolicyWorld in region, whose RDS names end
// in domain.
func setupPolicyWorldIn(t *testing.T, region, domain string, p emulator.Policy) (*emulator.Server, *emulator.Postgres, *emulator.Postgres) {
	t.Helper()
	srv, err := emulator.StartServer(emulator.Options{Region: region}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	inst, err := srv.AWS.StartPostgres(srv.CA, emulator.PostgresOptions{Backend: "127.0.0.1:1", ResourceID: "db-SETUPPOLICY0001",
		Endpoint: "mydb.c0ffee123456." + region + "." + domain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	clus, err := srv.AWS.StartPostgres(srv.CA, emulator.PostgresOptions{Backend: "127.0.0.1:1",
		Endpoint: "aurora.cluster-c0ffee123456." + region + "." + domain, ResourceID: "db-MEMBER00001"})
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

// TestSetupPolicyPartitions: in GovCloud and China the printed policy names
// the region's partition, and it is the policy that lets a token in: the
// emulated account there (which keeps its own partition table) accepts a
// token signed by a user holding exactly the printed policy, and refuses
// one whose policy says arn:aws:.
func TestSetupPolicyPartitions(t *testing.T) {
	for _, c := range []struct{ region, domain, partition string }{
		{"us-gov-west-1", "rds.amazonaws.com", "aws-us-gov"},
		{"cn-north-1", "rds.amazonaws.com.cn", "aws-cn"},
	} {
		t.Run(c.partition, func(t *testing.T) {
			srv, inst, _ := setupPolicyWorldIn(t, c.region, c.domain, emulator.Policy{Statements: []emulator.Statement{{Effect: "Allow",
				Action: []string{"rds:DescribeDBInstances", "rds:DescribeDBClusters"}, Resource: []string{"*"}}}})
			code, out, errOut := runSetupPolicy(t, "--endpoint", inst.Endpoint()+":5432", "--db-user", "app_user")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			d := parsePolicy(t, out)
			want := "arn:" + c.partition + ":rds-db:" + c.region + ":123456789012:dbuser:db-SETUPPOLICY0001/app_user"
			if len(d.Statement) != 1 || len(d.Statement[0].Resource) != 1 || d.Statement[0].Resource[0] != want {
				t.Fatalf("policy = %s, want rds-db:connect on %s", out, want)
			}
			if got := inst.UserARN("app_user"); got != want {
				t.Errorf("the emulated %s account names the user %s, the policy %s", c.region, got, want)
			}
			target := emulator.TokenTarget{Host: inst.Endpoint(), Port: 5432, Region: c.region, DBUser: "app_user", ResourceID: inst.ResourceID()}
			for _, p := range []struct {
				resource string
				allowed  bool
			}{{d.Statement[0].Resource[0], true}, {strings.Replace(want, "arn:"+c.partition+":", "arn:aws:", 1), false}} {
				akid, secret := srv.AWS.AddUser("app-"+strconv.FormatBool(p.allowed), emulator.Policy{Statements: []emulator.Statement{{
					Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{p.resource}}}})
				tok, err := auth.BuildAuthToken(t.Context(), inst.Endpoint()+":5432", c.region, "app_user",
					credentials.NewStaticCredentialsProvider(akid, secret, ""))
				if err != nil {
					t.Fatal(err)
				}
				_, err = srv.AWS.VerifyRDSToken(tok, target)
				if (err == nil) != p.allowed {
					t.Errorf("a token under a policy on %s: err %v, want allowed=%v", p.resource, err, p.allowed)
				}
			}

			// A trust policy for an account id names the region's root.
			code, out, errOut = runSetupPolicy(t, "--kind", "trust", "--region", c.region, "--trust-principal", "210987654321")
			if code != 0 {
				t.Fatalf("trust: exit %d: %s", code, errOut)
			}
			if d := parsePolicy(t, out); d.Statement[0].Principal["AWS"] != "arn:"+c.partition+":iam::210987654321:root" {
				t.Errorf("trust in %s = %s", c.region, out)
			}
		})
	}
}
