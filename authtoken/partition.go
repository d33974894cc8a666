package authtoken

import "strings"

// Partition is the AWS partition a region belongs to, the second field of
// every ARN there: "aws" for the commercial regions, "aws-us-gov" for
// GovCloud, "aws-cn" for China, and the isolated partitions by their
// region prefixes. A policy written for arn:aws:... matches nothing in
// GovCloud or China, so every ARN the project builds or checks derives it
// from the DB's region instead of assuming "aws". An empty or unknown
// region is "aws", as it is for the SDK's own resolver.
func Partition(region string) string {
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

// IsPartition reports whether p is a partition name Partition can return.
func IsPartition(p string) bool {
	switch p {
	case "aws", "aws-us-gov", "aws-cn", "aws-iso-b", "aws-iso-f", "aws-iso", "aws-iso-e", "aws-eusc":
		return true
	}
	return false
}

// ARNPartition is the partition field of arn ("" when it is not an ARN).
func ARNPartition(arn string) string {
	rest, ok := strings.CutPrefix(arn, "arn:")
	if !ok {
		return ""
	}
	p, _, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return p
}
