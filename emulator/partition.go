package emulator

import "strings"

// partitionOf is the ARN partition of region. Like dbUserARN, the
// emulator keeps its own table rather than the proxy's
// (authtoken.Partition), so that it checks the proxy instead of agreeing
// with it: an emulated account in us-gov-west-1 names its users, roles
// and databases arn:aws-us-gov:..., as GovCloud does.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	case strings.HasPrefix(region, "us-isof-"):
		return "aws-iso-f"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "aws-iso-e"
	case strings.HasPrefix(region, "eusc-"):
		return "aws-eusc"
	}
	return "aws"
}

// Partition returns the emulated account's ARN partition, from its region.
func (a *AWS) Partition() string { return partitionOf(a.region) }

// arnPartition is the partition field of an ARN.
func arnPartition(arn string) string {
	rest, _ := strings.CutPrefix(arn, "arn:")
	p, _, _ := strings.Cut(rest, ":")
	return p
}
