package authtoken

import (
	"context"
	"errors"
	"fmt"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// Options configure a Source.
type Options struct {
	// Profile selects a shared-config profile; "" means AWS_PROFILE or default.
	Profile string
	// Region is used for STS when the AWS configuration names no region
	// (usually the DB's region, from the endpoint name).
	Region string
	// STSEndpoint, when set, is the base URL of every STS call: the
	// proxy's own (roles, whoami) and those inside the credential chain
	// (web identity, a profile's role_arn). AWS_ENDPOINT_URL_STS does the
	// same from the environment.
	STSEndpoint string
	// Roles are assumed in order on top of the chain's credentials: the
	// first with the chain's, each next one with the previous session.
	Roles []string
	// ExternalID is sent with every AssumeRole of Roles (STS ignores an
	// external ID that a trust policy does not ask for).
	ExternalID string
	// RoleSessionName names the sessions of Roles; default
	// DefaultSessionName().
	RoleSessionName string
	// RoleDuration is the session length asked for Roles; 0 = the SDK's
	// default (15 minutes).
	RoleDuration time.Duration
	// ExpiryWindow is how long before expiry credentials are refreshed
	// (Refresh.Window, kept for compatibility). Default 5 minutes.
	ExpiryWindow time.Duration
	// Refresh tunes the background refresh.
	Refresh Refresh
	// Logger receives credential refreshes and failures. Default: discard.
	Logger *slog.Logger
	// LoadOptions are passed to config.LoadDefaultConfig after ours, for
	// programs that embed the proxy (the demo points IMDS at the emulator).
	LoadOptions []func(*config.LoadOptions) error
	// MFA configures MFA codes (mfa.go); a profile with role_arn and
	// mfa_serial uses it without settings.
	MFA MFA
	// MFASessions, when set, shares MFA sessions between the Sources of
	// one process (several upstreams, one code).
	MFASessions *MFASessions
}

// Source builds RDS IAM tokens from the AWS credential chain, optionally
// assuming roles on top of it. Credentials are fetched on first use, then
// refreshed in the background ahead of expiry: building a token never waits
// for AWS while valid credentials are held. Close stops the refresher.
type Source struct {
	cfg        aws.Config
	provider   aws.CredentialsProvider // the chain, or the last role, cached
	invalidate func()                  // forget provider's cached value
	roles      []string
	stsOpts    func(*sts.Options)
	refresh    Refresh
	log        *slog.Logger

	cur              atomic.Pointer[held]
	fetchSem         chan struct{} // one fetch at a time
	refresherStarted atomic.Bool
	done             chan struct{}
	closeMu          sync.Mutex
	closed           bool
	wg               sync.WaitGroup
	stats            counters

	failMu   sync.Mutex
	failedAt time.Time
	failErr  error // last failed fetch, nil after a success
	// failCause is the last failure that was not a timeout, nil after a
	// success: a fetch that ran out of time reports it too, as the likely
	// reason.
	failCause error

	mu       sync.Mutex
	identity *Identity
	idKey    string // access key id the cached identity belongs to
	idCall   *idLookup

	mfa *mfaSession // nil unless MFA is configured (mfa.go)
}

// Identity is who the credentials belong to, for error messages.
type Identity struct {
	ARN     string
	Account string
}

// New loads the AWS configuration. It does not touch the network: credentials
// are fetched on the first token.
func New(ctx context.Context, o Options) (*Source, error) {
	r := o.Refresh
	if r.Window == 0 {
		r.Window = o.ExpiryWindow
	}
	r = r.withDefaults()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []func(*config.LoadOptions) error{
		// The Source refreshes ahead of expiry itself, and must see the
		// real expiry: a cache window would move Expires earlier (and for
		// credentials shorter than the window, into the past).
		config.WithCredentialsCacheOptions(func(c *aws.CredentialsCacheOptions) {
			c.ExpiryWindow = 0
		}),
		// Every AWS request is bounded, not only the caller's wait: the
		// SDK's credentials cache runs a fetch detached from the caller's
		// context, so an STS or metadata endpoint that accepts and never
		// answers would otherwise hold every later refresh behind it.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(r.Timeout)),
		// The SDK retries within one refresh (3 attempts) with backoff
		// short enough that the refresh timeout still sees AWS's answer
		// (Throttling, 503) rather than only its own deadline. Retries
		// across refreshes, and their rate, are the Source's: no SDK
		// client-side retry quota.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = max(r.Timeout/5, 100*time.Millisecond)
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		opts = append(opts, config.WithDefaultRegion(o.Region))
	}
	opts = append(opts, o.LoadOptions...)
	opts = append(opts, config.WithAssumeRoleCredentialOptions(func(ao *stscreds.AssumeRoleOptions) { setMFATokenProvider(ao, o.MFA) }))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if o.STSEndpoint != "" {
		// Load again with the chain's own STS clients pointed at the
		// endpoint: web identity and a profile's role_arn.
		override := func(so *sts.Options) { so.BaseEndpoint = aws.String(o.STSEndpoint) }
		webClient := sts.NewFromConfig(cfg, override)
		cfg, err = config.LoadDefaultConfig(ctx, append(opts,
			config.WithWebIdentityRoleCredentialOptions(func(wo *stscreds.WebIdentityRoleOptions) {
				if wo.Client == nil {
					wo.Client = webClient
				}
			}),
			config.WithAssumeRoleCredentialOptions(func(ao *stscreds.AssumeRoleOptions) {
				setMFATokenProvider(ao, o.MFA)
				if c, ok := ao.Client.(*sts.Client); ok {
					so := c.Options()
					override(&so)
					ao.Client = sts.New(so)
				}
			}))...)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration: %w", err)
		}
	}
	if cfg.Region == "" {
		cfg.Region = o.Region
	}
	s := &Source{
		cfg:      cfg,
		roles:    o.Roles,
		refresh:  r,
		log:      log,
		fetchSem: make(chan struct{}, 1),
		done:     make(chan struct{}),
		stsOpts: func(so *sts.Options) {
			if so.Region == "" {
				so.Region = o.Region
			}
			if o.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(o.STSEndpoint)
			}
		},
	}
	base := cfg.Credentials
	if base == nil {
		base = aws.AnonymousCredentials{}
	}
	if p := detectMFAProfile(ctx, o.Profile); p != nil || o.MFA.Serial != "" {
		if s.mfa, err = sharedMFASession(o, p, func() (*mfaSession, error) { return newMFASession(ctx, o, p, opts, cfg, log) }); err != nil {
			return nil, err
		}
		base = s.mfa
	}
	s.provider = base
	if len(o.Roles) > 0 {
		s.provider = chainRoles(cfg, base, o, s.noteCause)
	}
	// The Source holds the credentials itself; the SDK's cache in front of
	// the chain is forgotten before each refresh so it fetches anew.
	s.invalidate = func() {}
	if cache, ok := s.provider.(*aws.CredentialsCache); ok {
		s.invalidate = cache.Invalidate
	}
	return s, nil
}

// ChainRegion is the region the AWS configuration names (AWS_REGION,
// AWS_DEFAULT_REGION, the profile), else Options.Region, or "".
func (s *Source) ChainRegion() string { return s.cfg.Region }

// CredentialsError means no usable credentials could be had. Cause names
// where credentials were looked for (or the role that could not be
// assumed) so a person knows where to look, and Fix what to do when it can
// be told; both are safe to show: see describeCredentialsFailure.
type CredentialsError struct {
	Err       error
	roles     []string
	expiredAt time.Time // when the last credentials held expired, if any
	source    string    // the provider of the last credentials held
}

// Error is the cause and the fix in one sentence.
func (e *CredentialsError) Error() string { return failure.Join(e.Cause(), e.Fix()) }

// Cause says why no credentials could be had, without the advice.
func (e *CredentialsError) Cause() string {
	var prefix string
	if !e.expiredAt.IsZero() {
		at := e.expiredAt.UTC().Format(time.RFC3339)
		if e.expiredAt.After(time.Now()) {
			// RDS checks the signing credentials when the login arrives.
			prefix = fmt.Sprintf("the AWS credentials (from %s) expire at %s, too soon to sign with, and refreshing them failed: ", e.source, at)
		} else {
			prefix = fmt.Sprintf("the AWS credentials (from %s) expired at %s and refreshing them failed: ", e.source, at)
		}
	}
	if x := e.explain(); x.specific || prefix != "" {
		return prefix + x.cause
	}
	return "no usable AWS credentials (looked in: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, AWS_PROFILE and ~/.aws/config (source_profile, role_arn, credential_process, SSO), container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI), EC2 instance profile (IMDSv2)): " + describeCredentialsFailure(e.Err)
}

// Fix says what to do, or "" when the failure says nothing more specific
// than that the chain found no credentials (the caller knows the general
// advice).
func (e *CredentialsError) Fix() string { return e.explain().fix }

func (e *CredentialsError) Unwrap() error { return e.Err }

// explanation is a credentials failure told apart: cause and fix, and
// whether anything more specific than "the chain found nothing" was said.
type explanation struct {
	cause, fix string
	specific   bool
}

// explain describes the failure itself.
func (e *CredentialsError) explain() explanation {
	fromWeb := e.source == stscreds.WebIdentityProviderName
	var te *timeoutError
	if errors.As(e.Err, &te) {
		first, before := describeErr(te.err, fromWeb), describeErr(te.before, fromWeb)
		// The failure before the timeout is the likely reason: its fix
		// comes first.
		fix := before.fix
		if fix == "" {
			fix = first.fix
		}
		return explanation{cause: first.cause + "; the failure before it: " + before.cause, fix: fix, specific: true}
	}
	return describeErr(e.Err, fromWeb)
}

// describeErr says what failed: a role of the chain, web identity, or
// the chain in general (not specific).
func describeErr(err error, fromWeb bool) explanation {
	var re *RoleError
	if errors.As(err, &re) {
		return explanation{re.Cause(), re.Fix(), true}
	}
	if me, ok := errors.AsType[*MFAError](err); ok {
		return explanation{me.Cause(), me.Fix(), true}
	}
	if wi, ok := describeWebIdentityFailure(err, fromWeb); ok {
		return wi
	}
	if cc, ok := describeContainerFailure(err); ok {
		return cc
	}
	return explanation{cause: describeCredentialsFailure(err)}
}

// describeContainerFailure explains a failure of container credentials
// (ECS task role, EKS Pod Identity); ok is false for anything else.
func describeContainerFailure(err error) (_ explanation, ok bool) {
	full, rel := os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
	if full == "" && rel == "" || !strings.Contains(err.Error(), "failed to load credentials") {
		return explanation{}, false
	}
	where := full
	if where == "" {
		where = "http://169.254.170.2" + rel
	}
	x := explanation{cause: "container credentials from " + where, specific: true}
	if f := os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); f != "" {
		x.cause += " (authorization token file " + f + ")"
	}
	x.cause += " failed: " + describeCredentialsFailure(err)
	if strings.Contains(err.Error(), "AccessDenied") || strings.Contains(err.Error(), "401") {
		x.fix = "the agent refused the authorization token: check the pod's projected token (EKS Pod Identity) or AWS_CONTAINER_AUTHORIZATION_TOKEN, and the role association"
	} else {
		x.fix = "check that the ECS agent or EKS Pod Identity agent is running and reachable, and that the task or pod has a role"
	}
	return x, true
}

// timeoutError is a fetch that ran out of time, with the failure before it
// (the likely reason).
type timeoutError struct{ err, before error }

func (e *timeoutError) Error() string {
	return e.err.Error() + " (the failure before it: " + e.before.Error() + ")"
}
func (e *timeoutError) Unwrap() []error { return []error{e.err, e.before} }

// describeWebIdentityFailure explains a failed AssumeRoleWithWebIdentity
// (IRSA) with the token file and role; ok is false for anything else.
func describeWebIdentityFailure(err error, fromWebIdentity bool) (_ explanation, ok bool) {
	var op *smithy.OperationError
	file, role := os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), os.Getenv("AWS_ROLE_ARN")
	isWeb := fromWebIdentity || errors.As(err, &op) && op.OperationName == "AssumeRoleWithWebIdentity"
	if !isWeb && !(file != "" && strings.Contains(err.Error(), file)) {
		return explanation{}, false
	}
	x := explanation{cause: fmt.Sprintf("web identity (IRSA) with token file %s for role %s failed: %s", orUnset(file), orUnset(role), describeCredentialsFailure(err)), specific: true}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDenied":
			x.fix = "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for the token's issuer (the cluster's OIDC provider), audience (sts.amazonaws.com) and subject (system:serviceaccount:NAMESPACE:SERVICEACCOUNT)"
		case "InvalidIdentityToken", "ExpiredTokenException":
			x.fix = "the token file must hold a current token from an OIDC provider registered in IAM (check the service account annotation and the projected token volume)"
		default:
			x = x.withSTSTrouble(api.ErrorCode())
		}
	} else if errors.Is(err, context.DeadlineExceeded) {
		x = x.withSTSTrouble("")
	} else if _, isNet := errors.AsType[*net.OpError](err); isNet || isSendFailure(err) {
		x.fix = "STS could not be reached; check the network path to STS (VPC endpoint, HTTP proxy, --sts-endpoint, AWS_ENDPOINT_URL_STS)"
	} else {
		x.fix = "check that the token file exists and is readable (the projected service account token volume)"
	}
	return x, true
}

// isSendFailure reports a request that never got an answer: the
// connection was refused, reset or closed before STS replied (the SDK's
// RequestSendError), which is the network path, not the token file.
func isSendFailure(err error) bool {
	_, ok := errors.AsType[*smithyhttp.RequestSendError](err)
	return ok
}

// withSTSTrouble adds what STS being unavailable means, by error code, to
// the cause, and its advice as the fix.
func (x explanation) withSTSTrouble(code string) explanation {
	var cause string
	switch code {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException":
		cause, x.fix = "STS is throttling requests; the proxy retries with backoff and keeps using valid credentials meanwhile", "find what else calls STS with these credentials at a high rate"
	case "":
		cause, x.fix = "STS did not answer in time", "check the network path to STS (VPC endpoint, HTTP proxy, --sts-endpoint)"
	default:
		cause, x.fix = "STS failed ("+code+"); the proxy retries with backoff", "if it lasts, check the AWS Health Dashboard and the network path to STS"
	}
	x.cause += ". " + cause
	return x
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// Token builds a fresh IAM auth token for user at host:port, signed for
// region, in the form botocore and the AWS CLI emit
// ("host:port/?Action=connect&..."). The SDK omits the "/" (accepted by RDS
// but rejected by Aurora Express, aws-sdk-go-v2 #3365); both sign the same
// canonical request, so inserting it keeps the signature valid.
func (s *Source) Token(ctx context.Context, host string, port int, region, user string) (string, error) {
	if region == "" {
		return "", errors.New("build IAM token: no region")
	}
	creds, err := s.current(ctx)
	if err != nil {
		return "", err
	}
	endpoint := net.JoinHostPort(host, strconv.Itoa(port))
	tok, err := auth.BuildAuthToken(ctx, endpoint, region, user, staticProvider{creds})
	if err != nil {
		return "", fmt.Errorf("build IAM token for %s@%s: %s", user, endpoint, redactSecrets(err.Error()))
	}
	s.stats.tokensBuilt.Add(1)
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
	creds, err := s.current(ctx)
	if err != nil {
		return Identity{}, err
	}
	s.mu.Lock()
	if s.identity != nil && s.idKey == creds.AccessKeyID {
		id := *s.identity
		s.mu.Unlock()
		return id, nil
	}
	// One lookup at a time per key, and a failure is remembered for a
	// moment: a storm of refused logins, each explained with the signer's
	// ARN, would otherwise be a storm of GetCallerIdentity calls against
	// an STS that is failing already.
	c := s.idCall
	if c == nil || c.key != creds.AccessKeyID || c.finished() && time.Since(c.at) > identityFailureMemory {
		c = &idLookup{key: creds.AccessKeyID, done: make(chan struct{})}
		s.idCall = c
		s.mu.Unlock()
		c.id, c.err = s.lookupIdentity(ctx, creds, region)
		c.at = time.Now()
		close(c.done)
		return c.id, c.err
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.id, c.err
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("sts:GetCallerIdentity: %w", ctx.Err())
	}
}

// identityFailureMemory is how long a failed identity lookup is answered
// from memory.
const identityFailureMemory = 10 * time.Second

// idLookup is one GetCallerIdentity call, shared by those who ask while it
// runs (and, when it failed, for identityFailureMemory after).
type idLookup struct {
	key  string
	done chan struct{} // closed when id, err and at are set
	id   Identity
	err  error
	at   time.Time
}

func (c *idLookup) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// lookupIdentity asks STS and caches a success for key.
func (s *Source) lookupIdentity(ctx context.Context, creds aws.Credentials, region string) (Identity, error) {
	out, err := s.callerIdentity(ctx, creds, region)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{ARN: aws.ToString(out.Arn), Account: aws.ToString(out.Account)}
	s.mu.Lock()
	s.identity, s.idKey = &id, creds.AccessKeyID
	s.mu.Unlock()
	return id, nil
}

func (s *Source) callerIdentity(ctx context.Context, creds aws.Credentials, region string) (*sts.GetCallerIdentityOutput, error) {
	client := sts.NewFromConfig(s.cfg, s.stsOpts, func(o *sts.Options) {
		o.Credentials = staticProvider{creds}
		if o.Region == "" {
			o.Region = region
		}
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("sts:GetCallerIdentity: %s", redactSecrets(err.Error()))
	}
	return out, nil
}

// WhoAmI is what `rds-iam-proxy whoami` shows: the identity tokens are
// signed as, and where its credentials came from.
type WhoAmI struct {
	Account, ARN, UserID string
	AccessKeyID          string
	Source               string   // the SDK provider that supplied the credentials
	Roles                []string // assumed on top, in order
	Expires              time.Time
	CanExpire            bool
}

// WhoAmI fetches credentials as a token would and asks STS whose they are.
func (s *Source) WhoAmI(ctx context.Context, region string) (WhoAmI, error) {
	creds, err := s.current(ctx)
	if err != nil {
		return WhoAmI{}, err
	}
	out, err := s.callerIdentity(ctx, creds, region)
	if err != nil {
		return WhoAmI{}, err
	}
	return WhoAmI{
		Account: aws.ToString(out.Account), ARN: aws.ToString(out.Arn), UserID: aws.ToString(out.UserId),
		AccessKeyID: creds.AccessKeyID, Source: creds.Source, Roles: s.roles,
		Expires: creds.Expires, CanExpire: creds.CanExpire,
	}, nil
}

// staticProvider hands BuildAuthToken credentials we already retrieved, so a
// token costs one cache lookup and not two.
type staticProvider struct{ c aws.Credentials }

func (p staticProvider) Retrieve(context.Context) (aws.Credentials, error) { return p.c, nil }
