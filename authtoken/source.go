package authtoken

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Options configure a Source.
type Options struct {
	// Profile selects a shared-config profile; "" means AWS_PROFILE or default.
	Profile string
	// ExpiryWindow is how long before expiry cached credentials are
	// refreshed. Default 5 minutes: a token signed with credentials that
	// expire during its 15 minutes is still accepted at connect time, but
	// refreshing early keeps a slow STS from delaying a connection.
	ExpiryWindow time.Duration
	// LoadOptions are passed to config.LoadDefaultConfig after ours, for
	// programs that embed the proxy (the demo points IMDS at the emulator).
	LoadOptions []func(*config.LoadOptions) error
}

// Source builds RDS IAM tokens from the AWS credential chain.
type Source struct {
	cfg aws.Config

	mu       sync.Mutex
	identity *Identity
	idKey    string // access key id the cached identity belongs to
}

// Identity is who the credentials belong to, for error messages.
type Identity struct {
	ARN     string
	Account string
}

// New loads the AWS configuration. It does not touch the network: credentials
// are fetched on the first token.
func New(ctx context.Context, o Options) (*Source, error) {
	window := o.ExpiryWindow
	if window == 0 {
		window = 5 * time.Minute
	}
	opts := []func(*config.LoadOptions) error{
		config.WithCredentialsCacheOptions(func(c *aws.CredentialsCacheOptions) {
			c.ExpiryWindow = window
			c.ExpiryWindowJitterFrac = 0.2
		}),
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	opts = append(opts, o.LoadOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return &Source{cfg: cfg}, nil
}

// ChainRegion is the region the AWS configuration names (AWS_REGION,
// AWS_DEFAULT_REGION, the profile), or "".
func (s *Source) ChainRegion() string { return s.cfg.Region }

// CredentialsError means no usable credentials could be had from the chain.
// Its text names the chain so a person knows where to look, and is safe to
// show: see describeCredentialsFailure.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string {
	return "no usable AWS credentials (looked in: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_PROFILE and ~/.aws/config, container credentials, EC2 instance profile): " + describeCredentialsFailure(e.Err)
}
func (e *CredentialsError) Unwrap() error { return e.Err }

// Token builds a fresh IAM auth token for user at host:port, signed for
// region, in the form botocore and the AWS CLI emit
// ("host:port/?Action=connect&..."). The SDK omits the "/" (accepted by RDS
// but rejected by Aurora Express, aws-sdk-go-v2 #3365); both sign the same
// canonical request, so inserting it keeps the signature valid.
func (s *Source) Token(ctx context.Context, host string, port int, region, user string) (string, error) {
	if region == "" {
		return "", errors.New("build IAM token: no region")
	}
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return "", &CredentialsError{Err: err}
	}
	endpoint := net.JoinHostPort(host, strconv.Itoa(port))
	tok, err := auth.BuildAuthToken(ctx, endpoint, region, user, staticProvider{creds})
	if err != nil {
		return "", fmt.Errorf("build IAM token for %s@%s: %s", user, endpoint, redactSecrets(err.Error()))
	}
	return canonicalForm(tok), nil
}

// canonicalForm turns "host:port?query" into "host:port/?query".
func canonicalForm(tok string) string {
	i := strings.IndexByte(tok, '?')
	if i <= 0 || tok[i-1] == '/' {
		return tok
	}
	return tok[:i] + "/" + tok[i:]
}

// Identity asks STS who the credentials belong to. The answer is cached per
// access key, so error paths can call it freely. It is the honest check that
// credentials work: signing a token is offline and succeeds with expired
// credentials too.
//
// region is used when the AWS configuration names none (the usual case when
// the region comes from the endpoint name).
func (s *Source) Identity(ctx context.Context, region string) (Identity, error) {
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return Identity{}, &CredentialsError{Err: err}
	}
	s.mu.Lock()
	if s.identity != nil && s.idKey == creds.AccessKeyID {
		id := *s.identity
		s.mu.Unlock()
		return id, nil
	}
	s.mu.Unlock()

	client := sts.NewFromConfig(s.cfg, func(o *sts.Options) {
		if o.Region == "" {
			o.Region = region
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return Identity{}, fmt.Errorf("sts:GetCallerIdentity: %s", redactSecrets(err.Error()))
	}
	id := Identity{ARN: aws.ToString(out.Arn), Account: aws.ToString(out.Account)}
	s.mu.Lock()
	s.identity, s.idKey = &id, creds.AccessKeyID
	s.mu.Unlock()
	return id, nil
}

// staticProvider hands BuildAuthToken credentials we already retrieved, so a
// token costs one cache lookup and not two.
type staticProvider struct{ c aws.Credentials }

func (p staticProvider) Retrieve(context.Context) (aws.Credentials, error) { return p.c, nil }
