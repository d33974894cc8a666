package authtoken

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// AccessKeyAccount asks sts:GetAccessKeyInfo which account the signing
// credentials' access key belongs to: whoami's answer when
// GetCallerIdentity is refused (a VPC endpoint policy, a broken proxy in
// front of STS).
func (s *Source) AccessKeyAccount(ctx context.Context, region string) (accessKeyID, account string, err error) {
	creds, err := s.current(ctx)
	if err != nil {
		return "", "", err
	}
	client := sts.NewFromConfig(s.cfg, s.stsOpts, func(o *sts.Options) {
		o.Credentials = staticProvider{creds}
		if o.Region == "" {
			o.Region = region
		}
	})
	out, err := client.GetAccessKeyInfo(ctx, &sts.GetAccessKeyInfoInput{AccessKeyId: aws.String(creds.AccessKeyID)})
	if err != nil {
		return creds.AccessKeyID, "", fmt.Errorf("sts:GetAccessKeyInfo: %s", redactSecrets(err.Error()))
	}
	return creds.AccessKeyID, aws.ToString(out.Account), nil
}
