package emulator

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// memberCluster is a Cluster whose fronts exist only for the RDS API (no
// listener, no backend): what DescribeDBClusters and DescribeDBInstances
// say about a cluster depends on nothing else.
func memberCluster(a *AWS, ids ...string) *Cluster {
	o := AuroraOptions{ClusterID: "orders", Suffix: "c0ffee123456", ResourceID: "cluster-ORDERS0001", Port: 5432}
	c := &Cluster{o: o, fronts: map[string]*instance{}, writer: ids[0]}
	for _, id := range ids {
		o.Instances = append(o.Instances, AuroraInstance{ID: id})
		name := id + ".c0ffee123456.us-east-1.rds.amazonaws.com"
		d := a.registerDB("rds-postgres", name, 5432, "db-"+id)
		c.fronts[id] = &instance{aws: a, endpoint: name, port: 5432, db: d}
		c.fronts[id].JoinCluster(o.ClusterID, o.ResourceID)
	}
	c.o = o
	c.registerMembers()
	return c
}

// DescribeDBClusters lists an emulated Aurora cluster once, with its
// members and which is the writer; DescribeDBInstances lists each member
// with its own endpoint, as RDS does.
func TestDescribeAuroraClusterMembers(t *testing.T) {
	isolateAWSEnv(t)
	w := newWorld(t)
	c := memberCluster(w.aws, "alpha", "beta", "gamma")
	akid, secret := w.aws.AddUser("describer", Policy{Statements: []Statement{{Effect: "Allow",
		Action: []string{"rds:DescribeDBInstances", "rds:DescribeDBClusters"}, Resource: []string{"*"}}}})
	rc, _ := w.apiClients(t, static(akid, secret, ""))

	wantWriter := func(writer string) {
		t.Helper()
		out, err := rc.DescribeDBClusters(t.Context(), &rds.DescribeDBClustersInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.DBClusters) != 1 {
			t.Fatalf("DescribeDBClusters listed %d clusters, want the one cluster once: %+v", len(out.DBClusters), out.DBClusters)
		}
		cl := out.DBClusters[0]
		if aws.ToString(cl.DBClusterIdentifier) != "orders" || aws.ToString(cl.DbClusterResourceId) != "cluster-ORDERS0001" ||
			aws.ToString(cl.Endpoint) != c.WriterName() || aws.ToString(cl.ReaderEndpoint) != c.ReaderName() ||
			aws.ToString(cl.Engine) != "aurora-postgresql" {
			t.Errorf("cluster = id %q resource %q endpoint %q reader %q engine %q", aws.ToString(cl.DBClusterIdentifier),
				aws.ToString(cl.DbClusterResourceId), aws.ToString(cl.Endpoint), aws.ToString(cl.ReaderEndpoint), aws.ToString(cl.Engine))
		}
		got := map[string]bool{}
		for _, m := range cl.DBClusterMembers {
			got[aws.ToString(m.DBInstanceIdentifier)] = aws.ToBool(m.IsClusterWriter)
		}
		want := map[string]bool{"alpha": writer == "alpha", "beta": writer == "beta", "gamma": writer == "gamma"}
		if len(got) != len(want) || len(cl.DBClusterMembers) != len(want) {
			t.Fatalf("members = %v, want %v", got, want)
		}
		for id, isW := range want {
			if got[id] != isW {
				t.Errorf("member %s IsClusterWriter = %v, want %v (writer %s)", id, got[id], isW, writer)
			}
		}
	}
	wantWriter("alpha")

	out, err := rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]rdstypes.DBInstance{}
	for _, in := range out.DBInstances {
		byID[aws.ToString(in.DBInstanceIdentifier)] = in
	}
	for _, id := range []string{"alpha", "beta", "gamma"} {
		in, ok := byID[id]
		if !ok {
			t.Fatalf("DescribeDBInstances lacks member %s: %v", id, byID)
		}
		if in.Endpoint == nil || aws.ToString(in.Endpoint.Address) != c.InstanceName(id) || aws.ToString(in.DBClusterIdentifier) != "orders" ||
			aws.ToString(in.DbiResourceId) != "db-"+id {
			t.Errorf("instance %s = endpoint %v cluster %q resource %q", id, in.Endpoint, aws.ToString(in.DBClusterIdentifier), aws.ToString(in.DbiResourceId))
		}
	}
	if len(out.DBInstances) != 3 {
		t.Errorf("DescribeDBInstances listed %d instances, want the 3 members", len(out.DBInstances))
	}
	one, err := rc.DescribeDBInstances(t.Context(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("beta")})
	if err != nil || len(one.DBInstances) != 1 || aws.ToString(one.DBInstances[0].Endpoint.Address) != c.InstanceName("beta") {
		t.Fatalf("DescribeDBInstances beta: %v %+v", err, one)
	}

	// After a failover the API names the new writer.
	c.reportWriter("gamma")
	wantWriter("gamma")
}
