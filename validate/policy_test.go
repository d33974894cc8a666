package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

func TestConnectPolicyJSON(t *testing.T) {
	js, err := ConnectPolicyJSON(ConnectTarget{Region: "eu-west-1", Account: "123456789012", ResourceID: "cluster-ABC123", Users: []string{"app", "Report"}})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Effect, Action string
			Resource       []string
		}
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC123/app arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC123/Report"
	if doc.Version != "2012-10-17" || len(doc.Statement) != 1 || doc.Statement[0].Effect != "Allow" ||
		doc.Statement[0].Action != "rds-db:connect" || strings.Join(doc.Statement[0].Resource, " ") != want {
		t.Errorf("policy = %s", js)
	}

	for _, bad := range []ConnectTarget{
		{Region: "eu-west-1", Account: "123456789012", ResourceID: "mydb", Users: []string{"app"}},
		{Region: "eu-west-1", Account: "1234", ResourceID: "db-ABC", Users: []string{"app"}},
		{Region: "eu-west-1", Account: "123456789012", ResourceID: "db-ABC"},
		{Region: "eu-west-1", Account: "123456789012", ResourceID: "db-ABC", Users: []string{"a/b"}},
		{Account: "123456789012", ResourceID: "db-ABC", Users: []string{"app"}},
	} {
		if _, err := ConnectPolicyJSON(bad); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

func TestTrustPolicies(t *testing.T) {
	js, err := CrossAccountTrustJSON("210987654321", "", "")
	if err != nil || !strings.Contains(string(js), `"AWS": "arn:aws:iam::210987654321:root"`) || strings.Contains(string(js), "Condition") {
		t.Errorf("account trust = %s, %v", js, err)
	}
	if _, err := CrossAccountTrustJSON("someone", "", ""); err == nil {
		t.Error("a bare name accepted as a principal")
	}
	// The partition of the DB's region names an account's root; a
	// principal of another partition cannot assume the role at all.
	for _, c := range []struct{ principal, partition, want string }{
		{"210987654321", "aws-us-gov", `"AWS": "arn:aws-us-gov:iam::210987654321:root"`},
		{"210987654321", "aws-cn", `"AWS": "arn:aws-cn:iam::210987654321:root"`},
		{"arn:aws-us-gov:iam::210987654321:role/app", "aws-us-gov", `"AWS": "arn:aws-us-gov:iam::210987654321:role/app"`},
		{"arn:aws-cn:iam::210987654321:role/app", "", `"AWS": "arn:aws-cn:iam::210987654321:role/app"`},
	} {
		js, err := CrossAccountTrustJSON(c.principal, "", c.partition)
		if err != nil || !strings.Contains(string(js), c.want) {
			t.Errorf("trust of %s in %s = %s, %v; want %s", c.principal, c.partition, js, err, c.want)
		}
	}
	if _, err := CrossAccountTrustJSON("arn:aws:iam::210987654321:role/app", "", "aws-us-gov"); err == nil || !strings.Contains(err.Error(), "partition aws, the DB's region is in aws-us-gov") {
		t.Errorf("a commercial principal for a GovCloud role: %v", err)
	}
	if _, err := CrossAccountTrustJSON("arn:aws-moon:iam::210987654321:role/app", "", ""); err == nil {
		t.Error("an ARN of no partition accepted")
	}
	if _, err := IRSATrustJSON("arn:aws-us-gov:iam::123456789012:oidc-provider/oidc.eks.us-gov-west-1.amazonaws.com/id/X", "ns/sa"); err != nil {
		t.Errorf("a GovCloud OIDC provider refused: %v", err)
	}
	if _, err := IRSATrustJSON("oidc.eks.us-east-1.amazonaws.com/id/X", "ns/sa"); err == nil {
		t.Error("an issuer URL accepted as the provider ARN")
	}
	js, err = PodIdentityTrustJSON()
	if err != nil || !strings.Contains(string(js), "pods.eks.amazonaws.com") || !strings.Contains(string(js), "sts:TagSession") {
		t.Errorf("pod identity trust = %s, %v", js, err)
	}
}

func TestEndpointKind(t *testing.T) {
	for host, want := range map[string]string{
		"mydb.c0ffee.us-east-1.rds.amazonaws.com":                      "instance mydb",
		"aurora.cluster-c0ffee.us-east-1.rds.amazonaws.com":            "cluster aurora",
		"aurora.cluster-ro-c0ffee.us-east-1.rds.amazonaws.com":         "cluster aurora",
		"reports.cluster-custom-c0ffee.us-east-1.rds.amazonaws.com":    "cluster reports",
		"myproxy.proxy-c0ffee.us-east-1.rds.amazonaws.com":             "proxy myproxy",
		"ro.endpoint.proxy-c0ffee.us-east-1.rds.amazonaws.com":         "proxy ro",
		"MyDB.C0FFEE.us-east-1.rds.amazonaws.com.":                     "instance mydb",
		"proxy-db.cluster-c0ffee.us-east-1.rds.amazonaws.com":          "cluster proxy-db",
		"mydb.c0ffee.rds.cn-north-1.amazonaws.com.cn":                  "instance mydb",
		"aurora.cluster-c0ffee.rds.cn-northwest-1.amazonaws.com.cn":    "cluster aurora",
		"instance-1.c0ffee.us-gov-west-1.rds.amazonaws.com":            "instance instance-1",
		"aurora-pg.cluster-c0ffee.ap-southeast-5.rds.amazonaws.com":    "cluster aurora-pg",
		"aurora-pg-instance-1.c0ffee.ap-southeast-5.rds.amazonaws.com": "instance aurora-pg-instance-1",
	} {
		kind, id := EndpointKind(host)
		if got := kind + " " + id; got != want {
			t.Errorf("%s: %s, want %s", host, got, want)
		}
	}
}

func TestPolicySourceARN(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:sts::123456789012:assumed-role/app/i-0abc":     "arn:aws:iam::123456789012:role/app",
		"arn:aws-cn:sts::123456789012:assumed-role/app/session": "arn:aws-cn:iam::123456789012:role/app",
		"arn:aws:iam::123456789012:user/alice":                  "arn:aws:iam::123456789012:user/alice",
		"arn:aws:iam::123456789012:root":                        "",
		"arn:aws:sts::123456789012:federated-user/bob":          "",
		"not an arn": "",
	} {
		got, err := PolicySourceARN(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestCauseAndFix: doctor takes the cause and the fix of an error that
// says them apart, as they are, from anywhere in its chain; any other
// error says neither.
func TestCauseAndFix(t *testing.T) {
	role := &authtoken.RoleError{Role: "arn:aws:iam::1:role/r", Code: "AccessDenied", Err: errors.New("not authorized")}
	d, f, ok := causeAndFix(fmt.Errorf("retrieve: %w", role))
	if !ok || d != role.Cause() || f != role.Fix() || !strings.Contains(d, "cannot assume role arn:aws:iam::1:role/r") || !strings.Contains(f, "trust policy") {
		t.Errorf("%q / %q / %v", d, f, ok)
	}
	if d, f, ok := causeAndFix(errors.New("no fix here")); ok || d != "" || f != "" {
		t.Errorf("%q / %q / %v", d, f, ok)
	}
}
