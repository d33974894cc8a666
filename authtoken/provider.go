package authtoken

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// AWSConfig is the AWS configuration the Source loaded (profile, region,
// endpoints such as AWS_ENDPOINT_URL_RDS, retries), with the Source's own
// credentials: those tokens are signed with, roles assumed on top of the
// chain included. Doctor uses it to ask AWS about the DB as the proxy's
// identity. The Source must stay open while clients built from it are in
// use.
func (s *Source) AWSConfig() aws.Config {
	c := s.cfg.Copy()
	c.Credentials = sourceProvider{s}
	return c
}

// sourceProvider hands out the Source's current credentials.
type sourceProvider struct{ s *Source }

func (p sourceProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	return p.s.current(ctx)
}
