package emulator

import "testing"

// TestPartitionNamesEveryARN: an emulated account in GovCloud or China names
// its users, roles and databases in that partition, as AWS does, so a
// proxy that wrote arn:aws: into a policy or a check would be caught.
func TestPartitionNamesEveryARN(t *testing.T) {
	for _, c := range []struct{ region, partition string }{
		{"us-east-1", "aws"},
		{"us-gov-west-1", "aws-us-gov"},
		{"cn-northwest-1", "aws-cn"},
		{"us-isob-east-1", "aws-iso-b"},
	} {
		a := NewAWS(Options{Region: c.region})
		if got := a.Partition(); got != c.partition {
			t.Errorf("%s: Partition() = %q, want %q", c.region, got, c.partition)
		}
		if got, want := a.AddRole("app", Policy{}), "arn:"+c.partition+":iam::123456789012:role/app"; got != want {
			t.Errorf("%s: AddRole = %q, want %q", c.region, got, want)
		}
		if got, want := a.rdsARN("db", "mydb"), "arn:"+c.partition+":rds:"+c.region+":123456789012:db:mydb"; got != want {
			t.Errorf("%s: rdsARN = %q, want %q", c.region, got, want)
		}
		if got, want := dbUserARN(c.region, "123456789012", "db-X", "u"), "arn:"+c.partition+":rds-db:"+c.region+":123456789012:dbuser:db-X/u"; got != want {
			t.Errorf("%s: dbUserARN = %q, want %q", c.region, got, want)
		}
	}
}
