package authtoken

import (
	"strings"
	"testing"
)

func TestRegionFromEndpoint(t *testing.T) {
	cases := map[string]string{
		"mydb.c0ffee123456.us-east-1.rds.amazonaws.com":      "us-east-1",
		"mydb.c0ffee123456.US-EAST-1.rds.amazonaws.com.":     "us-east-1",
		"prod.cluster-ro-abc123.eu-west-2.rds.amazonaws.com": "eu-west-2",
		"db.abc.cn-north-1.rds.amazonaws.com.cn":             "cn-north-1",
		"db.abc.us-gov-west-1.rds.amazonaws.com":             "us-gov-west-1",
		"proxy-1.proxy-abc.ap-southeast-5.rds.amazonaws.com": "ap-southeast-5",
		"localhost":                           "",
		"10.0.0.1":                            "",
		"db.example.com":                      "",
		"rds.amazonaws.com":                   "",
		"db.abc.notaregion.rds.amazonaws.com": "",
		"mydb.c0ffee123456.us-east-1.rds.amazonaws.com.evil.example.com": "",
	}
	for host, want := range cases {
		if got := RegionFromEndpoint(host); got != want {
			t.Errorf("RegionFromEndpoint(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestResolveRegion(t *testing.T) {
	const rds = "mydb.abc.eu-west-1.rds.amazonaws.com"
	cases := []struct {
		explicit, host, chain string
		want, note            string
		err                   string
	}{
		{"us-east-2", rds, "us-east-1", "us-east-2", "but the endpoint name says eu-west-1", ""},
		{"eu-west-1", rds, "", "eu-west-1", "given explicitly", ""},
		{"", rds, "us-east-1", "eu-west-1", "not us-east-1 from the AWS configuration", ""},
		{"", rds, "", "eu-west-1", "from the endpoint name", ""},
		{"", "127.0.0.1", "ap-south-1", "ap-south-1", "AWS configuration", ""},
		{"", "db.internal", "", "", "", "pass --region"},
	}
	for _, c := range cases {
		got, note, err := ResolveRegion(c.explicit, c.host, c.chain)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ResolveRegion(%q,%q,%q) error %v, want %q", c.explicit, c.host, c.chain, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || !strings.Contains(note, c.note) {
			t.Errorf("ResolveRegion(%q,%q,%q) = %q, %q, %v; want %q and a note with %q", c.explicit, c.host, c.chain, got, note, err, c.want, c.note)
		}
	}
}

func TestDBUserARN(t *testing.T) {
	if got := DBUserARN("us-east-1", "123456789012", "", "app"); got != "arn:aws:rds-db:us-east-1:123456789012:dbuser:*/app" {
		t.Fatal(got)
	}
	if got := DBUserARN("eu-west-1", "", "cluster-ABC", "u"); got != "arn:aws:rds-db:eu-west-1:ACCOUNT_ID:dbuser:cluster-ABC/u" {
		t.Fatal(got)
	}
}

func TestGlobalClusterName(t *testing.T) {
	for host, want := range map[string]string{
		"orders.global-abc123xyz.global.rds.amazonaws.com":  "orders",
		"Orders.GLOBAL-abc123xyz.global.rds.amazonaws.com.": "orders",
		"orders.cluster-abc.us-east-1.rds.amazonaws.com":    "",
		"orders.global.rds.amazonaws.com":                   "",
		"a.b.global-x.global.rds.amazonaws.com":             "",
		"orders.abc.global.rds.amazonaws.com":               "",
		"127.0.0.1":                                         "",
	} {
		if got := GlobalClusterName(host); got != want {
			t.Errorf("GlobalClusterName(%q) = %q, want %q", host, got, want)
		}
	}
	// A global name carries no region of its own.
	if r := RegionFromEndpoint("orders.global-abc123xyz.global.rds.amazonaws.com"); r != "" {
		t.Errorf("RegionFromEndpoint(global) = %q", r)
	}
}
