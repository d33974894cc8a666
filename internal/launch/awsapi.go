package launch

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// stsFallbackRegion is STS's region when neither the AWS configuration nor
// the DB names one (doctor asks STS before it reports a missing region):
// the region of STS's global endpoint.
const stsFallbackRegion = "us-east-1"

// STS is an STS client as the proxy's own STS calls are made: the signing
// identity's credentials (the chain's, with the roles assumed), the
// sts_endpoint setting when set, and the DB's region when the AWS
// configuration names none. It needs Open.
func (u *Upstream) STS() *sts.Client {
	return sts.NewFromConfig(u.Tokens.AWSConfig(), func(o *sts.Options) {
		if u.Config.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(u.Config.STSEndpoint)
		}
		if o.Region == "" {
			o.Region = u.Region
		}
		if o.Region == "" {
			o.Region = stsFallbackRegion
		}
	})
}

// RDS is an RDS API client in the DB's region, signed as tokens are
// (DescribeDBInstances and DescribeDBClusters: doctor, setup policy). It
// needs FindRegion.
func (u *Upstream) RDS() *rds.Client {
	return rds.NewFromConfig(u.Tokens.AWSConfig(), func(o *rds.Options) { o.Region = u.Region })
}
