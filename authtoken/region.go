package authtoken

import (
	"fmt"
	"strings"
)

// RegionFromEndpoint extracts the AWS region from an RDS or Aurora endpoint
// name such as mydb.c0ffee.us-east-1.rds.amazonaws.com, or
// mycluster.cluster-ro-abc.cn-north-1.rds.amazonaws.com.cn, or an Aurora
// DSQL cluster's (abc123.dsql.us-east-1.on.aws). It returns "" for
// any other name (an IP, a CNAME, localhost).
func RegionFromEndpoint(host string) string {
	if _, region, ok := DSQLCluster(host); ok {
		return region
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, suffix := range []string{".rds.amazonaws.com", ".rds.amazonaws.com.cn", ".rds.sc2s.sgov.gov", ".rds.c2s.ic.gov"} {
		rest, ok := strings.CutSuffix(h, suffix)
		if !ok {
			continue
		}
		labels := strings.Split(rest, ".")
		if len(labels) < 2 {
			return ""
		}
		region := labels[len(labels)-1]
		if looksLikeRegion(region) {
			return region
		}
	}
	return ""
}

// looksLikeRegion accepts names of the form xx-name-N (us-east-1,
// us-gov-west-1, ap-southeast-5).
func looksLikeRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 {
		return false
	}
	last := parts[len(parts)-1]
	if last == "" {
		return false
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(parts[0]) == 2
}

// ResolveRegion picks the region a token is signed for. An explicit choice
// wins. Otherwise the region in an RDS endpoint name is authoritative (a token
// signed for any other region is always rejected), then the AWS chain's
// region (AWS_REGION, the profile). The returned note says what was chosen
// and why, for the startup log.
func ResolveRegion(explicit, endpointHost, chainRegion string) (region, note string, err error) {
	fromName := RegionFromEndpoint(endpointHost)
	switch {
	case explicit != "":
		if fromName != "" && fromName != explicit {
			return explicit, fmt.Sprintf("region %s was given explicitly but the endpoint name says %s: RDS will reject tokens unless %s is the DB's region", explicit, fromName, explicit), nil
		}
		return explicit, "region given explicitly", nil
	case fromName != "":
		if chainRegion != "" && chainRegion != fromName {
			return fromName, fmt.Sprintf("using region %s from the endpoint name, not %s from the AWS configuration: tokens must be signed for the DB's region", fromName, chainRegion), nil
		}
		return fromName, "region taken from the endpoint name", nil
	case chainRegion != "":
		return chainRegion, "region taken from the AWS configuration (AWS_REGION or the profile)", nil
	}
	return "", "", fmt.Errorf("no AWS region: %q is not an RDS endpoint name and neither AWS_REGION nor the profile sets one; pass --region", endpointHost)
}

// GlobalClusterName is the global database named by an Aurora global
// writer endpoint, NAME.global-XXXX.global.rds.amazonaws.com, or "" for
// any other name. Such a name carries no region: tokens must be signed for
// the region of whichever cluster is primary now, which only the RDS API
// (DescribeGlobalClusters) tells.
func GlobalClusterName(host string) string {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	rest, ok := strings.CutSuffix(h, ".global.rds.amazonaws.com")
	if !ok {
		return ""
	}
	name, suffix, ok := strings.Cut(rest, ".")
	if !ok || name == "" || !strings.HasPrefix(suffix, "global-") || strings.Contains(suffix, ".") {
		return ""
	}
	return name
}
