package authtoken_test

import (
	"strings"
	"testing"

	. "github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
)

// TestDSQLToken: the Source's DSQL tokens have the SDK's shape, carry no
// secret, and pass the emulated cluster's check for the action asked.
func TestDSQLToken(t *testing.T) {
	clearAWSEnv(t)
	a := emulator.NewAWS(emulator.Options{})
	ca, err := emulator.NewCA("dsql token test CA")
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.StartDSQL(ca, emulator.DSQLOptions{Backend: "127.0.0.1:1"}) // the backend is never reached
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	policy := d.ConnectPolicy(true)
	policy.Statements = append(policy.Statements, d.ConnectPolicy(false).Statements...)
	akid, secret := a.AddUser("ops", policy)
	d.GrantIAM("app_role", "arn:aws:iam::123456789012:user/ops")
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	src, err := New(t.Context(), Options{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, c := range []struct {
		role   string
		admin  bool
		action string
	}{{"admin", true, "DbConnectAdmin"}, {"app_role", false, "DbConnect"}} {
		tok, err := src.DSQLToken(t.Context(), d.Endpoint(), "us-east-1", c.admin)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, d.Endpoint()+"?Action="+c.action+"&") || strings.Contains(tok, secret) {
			t.Errorf("token shape: %.80q", tok)
		}
		if _, err := d.VerifyToken(tok, c.role); err != nil {
			t.Errorf("%s: %v", c.role, err)
		}
	}
	if _, err := src.DSQLToken(t.Context(), d.Endpoint(), "", true); err == nil {
		t.Error("no region: no error")
	}
	if src.Stats().TokensBuilt != 2 {
		t.Errorf("tokens counted: %+v", src.Stats())
	}
}

func TestDSQLNames(t *testing.T) {
	for host, want := range map[string][2]string{
		"abc123.dsql.us-east-1.on.aws":            {"abc123", "us-east-1"},
		"ABC123.dsql.eu-west-2.on.aws.":           {"abc123", "eu-west-2"},
		"abc.dsql.notaregion.on.aws":              {"", ""},
		"abc.dsql.us-east-1.on.aws.evil.test":     {"", ""},
		"x.y.dsql.us-east-1.on.aws":               {"", ""},
		"mydb.c0ffee.us-east-1.rds.amazonaws.com": {"", ""},
	} {
		id, region, ok := DSQLCluster(host)
		if id != want[0] || region != want[1] || ok != (want[0] != "") {
			t.Errorf("DSQLCluster(%q) = %q, %q, %v", host, id, region, ok)
		}
		if want[1] != "" && RegionFromEndpoint(host) != want[1] {
			t.Errorf("RegionFromEndpoint(%q) = %q", host, RegionFromEndpoint(host))
		}
	}
	for region, want := range map[string]string{
		"us-east-1":     "arn:aws:dsql:us-east-1:123456789012:cluster/abc",
		"us-gov-west-1": "arn:aws-us-gov:dsql:us-gov-west-1:123456789012:cluster/abc",
		"cn-north-1":    "arn:aws-cn:dsql:cn-north-1:123456789012:cluster/abc",
	} {
		if got := DSQLClusterARN(region, "123456789012", "abc"); got != want {
			t.Errorf("DSQLClusterARN(%s) = %s", region, got)
		}
	}
	if got := DSQLClusterARN("us-east-1", "", ""); got != "arn:aws:dsql:us-east-1:ACCOUNT_ID:cluster/*" {
		t.Errorf("unknown account and id: %s", got)
	}
}
