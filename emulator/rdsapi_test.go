package emulator

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/rds"
)

// apiClients are real SDK RDS and IAM clients for the emulator, signing
// with p.
func (w *world) apiClients(t *testing.T, p aws.CredentialsProvider) (*rds.Client, *iam.Client) {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion("us-east-1"),
		config.WithRetryMaxAttempts(1), config.WithCredentialsProvider(p))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return rds.NewFromConfig(cfg, func(o *rds.Options) { o.BaseEndpoint = aws.String(w.srv.URL) }),
		iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(w.srv.URL) })
}

func TestDescribeDBInstancesAndClusters(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	inst := w.aws.registerDB("rds-postgres", "mydb.c0ffee.us-east-1.rds.amazonaws.com", 5432, "db-ABC")
	clus := w.aws.registerDB("rds-postgres", "aurora.cluster-c0ffee.us-east-1.rds.amazonaws.com", 5432, "db-MEMBER")
	w.aws.mu.Lock()
	clus.clusterID, clus.clusterResourceID = "aurora", "cluster-XYZ"
	w.aws.mu.Unlock()

	// A caller whose policy allows only rds-db:connect is denied, as on AWS.
	akid, secret := w.aws.AddUser("connector", Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{"*"}}}})
	rc, _ := w.apiClients(t, static(akid, secret, ""))
	_, err := rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("mydb")})
	if apiErrorCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "rds:DescribeDBInstances") {
		t.Fatalf("DescribeDBInstances without permission: %v, want AccessDenied naming the action", err)
	}

	akid, secret = w.aws.AddUser("reader", Policy{Statements: []Statement{{Effect: "Allow",
		Action: []string{"rds:DescribeDBInstances", "rds:DescribeDBClusters"}, Resource: []string{"*"}}}})
	rc, _ = w.apiClients(t, static(akid, secret, ""))
	out, err := rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("mydb")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.DBInstances) != 1 {
		t.Fatalf("got %d instances, want 1", len(out.DBInstances))
	}
	got := out.DBInstances[0]
	if aws.ToString(got.DbiResourceId) != "db-ABC" || !aws.ToBool(got.IAMDatabaseAuthenticationEnabled) ||
		aws.ToString(got.Endpoint.Address) != inst.endpoint || aws.ToInt32(got.Endpoint.Port) != 5432 {
		t.Errorf("instance = id %s iam %v endpoint %s:%d", aws.ToString(got.DbiResourceId), aws.ToBool(got.IAMDatabaseAuthenticationEnabled),
			aws.ToString(got.Endpoint.Address), aws.ToInt32(got.Endpoint.Port))
	}

	// The switch: IAM auth off is reported.
	w.aws.mu.Lock()
	inst.iamAuth = false
	w.aws.mu.Unlock()
	out, err = rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("mydb")})
	if err != nil || aws.ToBool(out.DBInstances[0].IAMDatabaseAuthenticationEnabled) {
		t.Errorf("after switching IAM auth off: %v, enabled %v", err, err == nil && aws.ToBool(out.DBInstances[0].IAMDatabaseAuthenticationEnabled))
	}

	_, err = rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("nosuch")})
	if apiErrorCode(err) != "DBInstanceNotFound" {
		t.Errorf("unknown instance: %v", err)
	}

	// A caller of another account does not see this account's DBs.
	oakid, osecret := w.aws.AddUserInAccount("210987654321", "outsider", Policy{Statements: []Statement{{Effect: "Allow",
		Action: []string{"rds:DescribeDBInstances"}, Resource: []string{"*"}}}})
	orc, _ := w.apiClients(t, static(oakid, osecret, ""))
	if _, err := orc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("mydb")}); apiErrorCode(err) != "DBInstanceNotFound" {
		t.Errorf("another account's caller: %v, want DBInstanceNotFound", err)
	}

	cl, err := rc.DescribeDBClusters(t.Context(), &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("aurora")})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.DBClusters) != 1 || aws.ToString(cl.DBClusters[0].DbClusterResourceId) != "cluster-XYZ" ||
		aws.ToString(cl.DBClusters[0].Endpoint) != clus.endpoint || !aws.ToBool(cl.DBClusters[0].IAMDatabaseAuthenticationEnabled) {
		t.Errorf("clusters = %+v", cl.DBClusters)
	}

	// Throttling is injectable per action.
	w.aws.InjectFault("rds:DescribeDBInstances", Fault{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"})
	_, err = rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("mydb")})
	if apiErrorCode(err) != "Throttling" {
		t.Errorf("with a throttling fault: %v", err)
	}
}

func TestSimulatePrincipalPolicy(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	arn := dbUserARN("us-east-1", w.aws.AccountID(), "db-ABC", "app_user")
	role := w.aws.AddRole("app", Policy{Statements: []Statement{
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{arn}},
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{dbUserARN("us-east-1", w.aws.AccountID(), "db-ABC", "office_user")},
			Condition: map[string]map[string][]string{"IpAddress": {"aws:SourceIp": {"10.0.0.0/8"}}}},
	}})

	akid, secret := w.aws.AddUser("nobody", Policy{})
	_, ic := w.apiClients(t, static(akid, secret, ""))
	_, err := ic.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(role), ActionNames: []string{"rds-db:connect"}})
	if apiErrorCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "iam:SimulatePrincipalPolicy") {
		t.Fatalf("without permission: %v", err)
	}

	akid, secret = w.aws.AddUser("admin", Policy{Statements: []Statement{{Effect: "Allow", Action: []string{"iam:SimulatePrincipalPolicy"}, Resource: []string{"*"}}}})
	_, ic = w.apiClients(t, static(akid, secret, ""))
	for _, tc := range []struct {
		user, decision string
		missing        string
	}{
		{"app_user", "allowed", ""},
		{"App_User", "implicitDeny", ""},
		{"office_user", "implicitDeny", "aws:SourceIp"},
	} {
		res := dbUserARN("us-east-1", w.aws.AccountID(), "db-ABC", tc.user)
		out, err := ic.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: aws.String(role), ActionNames: []string{"rds-db:connect"}, ResourceArns: []string{res}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.EvaluationResults) != 1 {
			t.Fatalf("%s: %d results", tc.user, len(out.EvaluationResults))
		}
		r := out.EvaluationResults[0]
		if string(r.EvalDecision) != tc.decision || aws.ToString(r.EvalResourceName) != res {
			t.Errorf("%s: decision %s on %s, want %s", tc.user, r.EvalDecision, aws.ToString(r.EvalResourceName), tc.decision)
		}
		if tc.missing != "" && !slices.Contains(r.MissingContextValues, tc.missing) {
			t.Errorf("%s: missing context values %v, want %s", tc.user, r.MissingContextValues, tc.missing)
		}
	}
	_, err = ic.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(w.aws.iamARN("role", "nosuch")), ActionNames: []string{"rds-db:connect"}})
	if apiErrorCode(err) != "NoSuchEntity" {
		t.Errorf("unknown role: %v", err)
	}
}
