package topology

import "testing"

func TestTopologyParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		host   string
		kind   Kind
		name   string
		suffix string
	}{
		{"db.cluster-c0ffee123456.us-east-1.rds.amazonaws.com", Cluster, "db", "c0ffee123456.us-east-1.rds.amazonaws.com"},
		{"DB.Cluster-RO-c0ffee123456.us-east-1.rds.amazonaws.com.", Reader, "db", "c0ffee123456.us-east-1.rds.amazonaws.com"},
		{"db.cluster-custom-abc.eu-west-1.rds.amazonaws.com", Custom, "db", "abc.eu-west-1.rds.amazonaws.com"},
		{"db-1.c0ffee123456.us-east-1.rds.amazonaws.com", Instance, "db-1", "c0ffee123456.us-east-1.rds.amazonaws.com"},
		{"db.cluster-xyz.rds.cn-north-1.amazonaws.com.cn", Cluster, "db", "xyz.rds.cn-north-1.amazonaws.com.cn"},
		{"db.cluster-xyz.us-gov-west-1.rds.amazonaws.com", Cluster, "db", "xyz.us-gov-west-1.rds.amazonaws.com"},
		{"g.global-abc123.global.rds.amazonaws.com", Global, "g", ""},
		{"p.proxy-abc.us-east-1.rds.amazonaws.com", Proxy, "p", ""},
		{"e.endpoint.proxy-abc.us-east-1.rds.amazonaws.com", Proxy, "e", ""},
		{"localhost", Other, "", ""},
		{"db.example.com", Other, "", ""},
		{"rds.amazonaws.com", Other, "", ""},
	} {
		e := ParseEndpoint(tc.host)
		if e.Kind != tc.kind || e.Name != tc.name || e.Suffix != tc.suffix {
			t.Errorf("ParseEndpoint(%q) = %+v, want %v %q %q", tc.host, e, tc.kind, tc.name, tc.suffix)
		}
	}
}

func TestTopologyInstanceHost(t *testing.T) {
	got, err := InstanceHost("db.cluster-c0ffee123456.us-east-1.rds.amazonaws.com", "db-2")
	if err != nil || got != "db-2.c0ffee123456.us-east-1.rds.amazonaws.com" {
		t.Fatalf("InstanceHost = %q, %v", got, err)
	}
	got, err = InstanceHost("db.cluster-ro-xyz.rds.cn-north-1.amazonaws.com.cn", "Db-3")
	if err != nil || got != "db-3.xyz.rds.cn-north-1.amazonaws.com.cn" {
		t.Fatalf("InstanceHost (China, reader) = %q, %v", got, err)
	}
	for _, bad := range [][2]string{
		{"db-1.c0ffee123456.us-east-1.rds.amazonaws.com", "db-2"}, // an instance, not a cluster
		{"db.cluster-xyz.us-east-1.rds.amazonaws.com", "a.b"},     // not a label
		{"db.cluster-xyz.us-east-1.rds.amazonaws.com", ""},
		{"localhost", "db-2"},
	} {
		if got, err := InstanceHost(bad[0], bad[1]); err == nil {
			t.Errorf("InstanceHost(%q, %q) = %q, want an error", bad[0], bad[1], got)
		}
	}
}
