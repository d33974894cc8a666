package authtoken

import (
	"context"
	"errors"
	"fmt"
	"strings"

	dsqlauth "github.com/aws/aws-sdk-go-v2/feature/dsql/auth"
)

// DSQLToken builds a fresh Aurora DSQL auth token for the cluster endpoint
// host (no port: DSQL signs the bare name), signed for region with the
// same held credentials, redaction and counters as Token. admin signs for
// dsql:DbConnectAdmin (the role admin), else for dsql:DbConnect. The token
// is the SDK's form, "host?Action=DbConnect&X-Amz-...": the one AWS's own
// DSQL connectors send.
func (s *Source) DSQLToken(ctx context.Context, host, region string, admin bool) (string, error) {
	if region == "" {
		return "", errors.New("build DSQL token: no region")
	}
	creds, err := s.current(ctx)
	if err != nil {
		return "", err
	}
	gen := dsqlauth.GenerateDbConnectAuthToken
	if admin {
		gen = dsqlauth.GenerateDBConnectAdminAuthToken
	}
	tok, err := gen(ctx, host, region, staticProvider{creds})
	if err != nil {
		return "", fmt.Errorf("build DSQL token (%s) for %s: %s", DSQLAction(admin), host, redactSecrets(err.Error()))
	}
	s.stats.tokensBuilt.Add(1)
	return tok, nil
}

// DSQLAction is the IAM action a DSQL token is signed for, as a policy
// names it.
func DSQLAction(admin bool) string {
	if admin {
		return "dsql:DbConnectAdmin"
	}
	return "dsql:DbConnect"
}

// dsqlSuffix ends every Aurora DSQL cluster endpoint: ID.dsql.REGION.on.aws.
const dsqlSuffix = ".on.aws"

// DSQLCluster reads an Aurora DSQL cluster endpoint name
// (ID.dsql.REGION.on.aws) into its cluster id and region; ok is false for
// any other name.
func DSQLCluster(host string) (id, region string, ok bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	rest, found := strings.CutSuffix(h, dsqlSuffix)
	if !found {
		return "", "", false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 3 || labels[1] != "dsql" || labels[0] == "" || !looksLikeRegion(labels[2]) {
		return "", "", false
	}
	return labels[0], labels[2], true
}

// DSQLClusterARN is the resource a policy must allow dsql:DbConnect (or
// DbConnectAdmin) on: arn:aws:dsql:REGION:ACCOUNT:cluster/ID.
func DSQLClusterARN(region, account, clusterID string) string {
	if account == "" {
		account = "ACCOUNT_ID"
	}
	if clusterID == "" {
		clusterID = "*"
	}
	return fmt.Sprintf("arn:%s:dsql:%s:%s:cluster/%s", partition(region), region, account, clusterID)
}

// partition is the ARN partition of region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	}
	return "aws"
}
