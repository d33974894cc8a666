package launch

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
)

// TestGlobalDatabaseFollowsPrimary: a proxy for an Aurora global writer
// endpoint signs for the primary cluster's region (not AWS_REGION's), and
// after a cross-region switchover its logins follow: the first login
// refused for the old region makes it look again at once, so new
// connections work again within seconds, not at the next timer.
func TestGlobalDatabaseFollowsPrimary(t *testing.T) {
	s := stack(t)
	a := s.AWS.AWS
	g := a.AddGlobalCluster("orders-follow",
		emulator.GlobalMember{Region: "us-west-2", ClusterID: "orders-west", ResourceID: "cluster-GLOBALWEST0001"},
		emulator.GlobalMember{Region: "us-east-1", ClusterID: "orders-east", ResourceID: "cluster-GLOBALEAST0001"})
	front, err := a.StartPostgres(s.AWS.CA, emulator.PostgresOptions{Endpoint: g.Endpoint(), Backend: s.PG.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	front.ServeGlobal(g)

	acct := a.AccountID()
	c := NewConfig(config.Postgres, g.Endpoint()+":5432")
	c.DialAddress, c.Listen, c.CABundle, c.DBUser = front.Addr(), "127.0.0.1:0", s.CAFile, iamUser
	c.AWSLoadOptions = globalSigner(t, s.Dir, a, "us-east-1", emulator.Policy{Statements: []emulator.Statement{
		{Effect: "Allow", Action: []string{"rds-db:connect"}, Resource: []string{
			"arn:aws:rds-db:us-west-2:" + acct + ":dbuser:cluster-GLOBALWEST0001/" + iamUser,
			"arn:aws:rds-db:us-east-1:" + acct + ":dbuser:cluster-GLOBALEAST0001/" + iamUser}},
		{Effect: "Allow", Action: []string{"rds:DescribeGlobalClusters"}, Resource: []string{"*"}},
	}})
	r := start(t, c)
	if r.up.Region != "us-west-2" || !strings.Contains(r.up.RegionSource, "global database orders-follow") {
		t.Fatalf("region %q (%s), want the primary's us-west-2", r.up.Region, r.up.RegionSource)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if got := query(t, ctx, "host=127.0.0.1 port="+r.Port()+" user=whoever"); got != iamUser {
		t.Fatalf("logged in as %q", got)
	}

	if err := g.Switchover("us-east-1"); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	refused := 0
	for {
		conn, err := pgconn.Connect(ctx, "host=127.0.0.1 port="+r.Port()+" user=whoever dbname=postgres sslmode=disable connect_timeout=20")
		if err == nil {
			conn.Close(ctx)
			break
		}
		refused++
		if !strings.Contains(err.Error(), "rejected the IAM token") {
			t.Fatalf("a login after the switchover failed with %v, want the explained token refusal or success", err)
		}
		if time.Since(switched) > 20*time.Second {
			t.Fatalf("still refused %s after the switchover (%d refusals): the proxy did not follow the primary", time.Since(switched), refused)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("logins work again %s after the switchover (%d refused on the way)", time.Since(switched).Round(time.Millisecond), refused)
	if got := r.up.global.Region(); got != "us-east-1" {
		t.Errorf("following region %q, want us-east-1", got)
	}
}

// TestGlobalDatabaseWithoutDescribe: a signer that may not call
// DescribeGlobalClusters still starts, signing for AWS_REGION's region,
// and the region's source names the permission and --region.
func TestGlobalDatabaseWithoutDescribe(t *testing.T) {
	s := stack(t)
	a := s.AWS.AWS
	g := a.AddGlobalCluster("orders-nodescribe",
		emulator.GlobalMember{Region: "us-east-1", ClusterID: "orders-east", ResourceID: "cluster-GLOBALEAST0002"})
	c := NewConfig(config.Postgres, g.Endpoint()+":5432")
	c.AWSLoadOptions = globalSigner(t, s.Dir, a, "eu-west-1", emulator.Policy{})
	u, err := Parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.OpenSigner(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Region != "eu-west-1" || !strings.Contains(u.RegionSource, "allow rds:DescribeGlobalClusters on arn:aws:rds::ACCOUNT:global-cluster:orders-nodescribe") {
		t.Errorf("region %q, source %q", u.Region, u.RegionSource)
	}

	// An explicit --region wins, and says it is not followed.
	c.Region = "us-east-1"
	u2, err := Parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.OpenSigner(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	defer u2.Close()
	if u2.Region != "us-east-1" || u2.global != nil || !strings.Contains(u2.RegionSource, "global database endpoint") {
		t.Errorf("explicit region: %q, source %q, following %v", u2.Region, u2.RegionSource, u2.global != nil)
	}
}

// globalSigner signs as a new IAM user with policy p, with region as the
// AWS configuration's region.
func globalSigner(t *testing.T, dir string, a *emulator.AWS, region string, p emulator.Policy) []func(*awsconfig.LoadOptions) error {
	t.Helper()
	akid, secret := a.AddUser(strings.ReplaceAll(t.Name(), "/", "-"), p)
	none := filepath.Join(dir, "no-aws-config")
	return []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(region),
		awsconfig.WithBaseEndpoint(stack(t).AWS.URL()),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secret, "")),
		awsconfig.WithSharedConfigFiles([]string{none}),
		awsconfig.WithSharedCredentialsFiles([]string{none}),
	}
}
