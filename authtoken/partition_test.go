package authtoken

import "testing"

func TestPartition(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1":       "aws",
		"eu-central-2":    "aws",
		"ap-southeast-5":  "aws",
		"":                "aws",
		"us-gov-west-1":   "aws-us-gov",
		"us-gov-east-1":   "aws-us-gov",
		"cn-north-1":      "aws-cn",
		"cn-northwest-1":  "aws-cn",
		"us-iso-east-1":   "aws-iso",
		"us-isob-east-1":  "aws-iso-b",
		"us-isof-south-1": "aws-iso-f",
		"eu-isoe-west-1":  "aws-iso-e",
		"eusc-de-east-1":  "aws-eusc",
	} {
		if got := Partition(region); got != want {
			t.Errorf("Partition(%q) = %q, want %q", region, got, want)
		}
		if !IsPartition(want) {
			t.Errorf("IsPartition(%q) = false", want)
		}
	}
	if IsPartition("aws-moon") || IsPartition("") {
		t.Error("IsPartition accepts a name no region has")
	}
}

// TestDBUserARNPerPartition: the resource a policy allows rds-db:connect
// on names the region's partition; arn:aws:... matches nothing in
// GovCloud or China.
func TestDBUserARNPerPartition(t *testing.T) {
	for _, c := range []struct{ region, want string }{
		{"us-east-1", "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app"},
		{"us-gov-west-1", "arn:aws-us-gov:rds-db:us-gov-west-1:123456789012:dbuser:db-ABC/app"},
		{"cn-north-1", "arn:aws-cn:rds-db:cn-north-1:123456789012:dbuser:db-ABC/app"},
	} {
		if got := DBUserARN(c.region, "123456789012", "db-ABC", "app"); got != c.want {
			t.Errorf("DBUserARN(%s) = %s, want %s", c.region, got, c.want)
		}
	}
}

func TestARNPartition(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:iam::123456789012:role/a":        "aws",
		"arn:aws-us-gov:iam::123456789012:role/a": "aws-us-gov",
		"arn:aws-cn:rds-db:cn-north-1:1:dbuser:x": "aws-cn",
		"123456789012": "",
		"arn":          "",
	} {
		if got := ARNPartition(arn); got != want {
			t.Errorf("ARNPartition(%q) = %q, want %q", arn, got, want)
		}
	}
}
