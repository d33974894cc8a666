package authtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// The MFA credential path, the way aws-vault does it: with long-term source
// keys, GetSessionToken(serial, code) once (12 h by default), then
// AssumeRole without a code from that session whenever the role's session
// needs renewing (the MFA context carries over); each role session is
// written to the AWS CLI's cache under the profile's key, so `aws` uses it
// too, and a session `aws` cached is used here. When the source is not
// long-term keys (SSO, a role), AssumeRole with the code directly (one
// hour; a new code after it).

// mfaProfile is a profile with role_arn and mfa_serial.
type mfaProfile struct {
	name          string
	sourceProfile string
	args          AssumeArgs // as the profile sets them: the cache key
}

// sharedConfigFiles are the config and credentials files the SDK reads,
// honouring AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE.
func sharedConfigFiles(o *config.LoadSharedConfigOptions) {
	if f := os.Getenv("AWS_CONFIG_FILE"); f != "" {
		o.ConfigFiles = []string{f}
	}
	if f := os.Getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		o.CredentialsFiles = []string{f}
	}
}

// detectMFAProfile returns the selected profile when it has role_arn,
// mfa_serial and source_profile, else nil. (credential_source, and MFA
// deeper in a source_profile chain, are left to the SDK, with the prompt as
// its TokenProvider.)
func detectMFAProfile(ctx context.Context, profile string) *mfaProfile {
	if profile == "" {
		profile = os.Getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	sc, err := config.LoadSharedConfigProfile(ctx, profile, sharedConfigFiles)
	if err != nil || sc.MFASerial == "" || sc.RoleARN == "" || sc.SourceProfileName == "" {
		return nil
	}
	p := &mfaProfile{name: profile, sourceProfile: sc.SourceProfileName, args: AssumeArgs{
		RoleARN: sc.RoleARN, SerialNumber: sc.MFASerial, ExternalID: sc.ExternalID, RoleSessionName: sc.RoleSessionName,
	}}
	if sc.RoleDurationSeconds != nil {
		p.args.DurationSeconds = int(*sc.RoleDurationSeconds / time.Second)
	}
	return p
}

// setMFATokenProvider lets the SDK load a profile with mfa_serial (it
// refuses without a TokenProvider) and, for MFA deeper in a source_profile
// chain, asks with the same code or prompt.
func setMFATokenProvider(ao *stscreds.AssumeRoleOptions, m MFA) {
	if ao.TokenProvider != nil {
		return
	}
	serial := aws.ToString(ao.SerialNumber)
	ao.TokenProvider = func() (string, error) {
		if m.Code != "" {
			return m.Code, nil
		}
		if m.Prompt != nil {
			return m.Prompt(context.Background(), serial)
		}
		return "", &MFAError{Serial: serial, Kind: MFANoCode}
	}
}

// mfaSession is the credentials provider of the MFA path.
type mfaSession struct {
	opts     MFA
	profile  string     // "" for --mfa-serial
	serial   string     // the device
	role     AssumeArgs // RoleARN "" for --mfa-serial (GetSessionToken only)
	roleName string     // the session name sent
	roleDur  time.Duration
	cacheDir string
	source   aws.CredentialsProvider
	sts      func(aws.CredentialsProvider) *sts.Client
	log      *slog.Logger
	tick     time.Duration // how often watchMFA looks
	margin   time.Duration // sessions with less left are not used
	cacheMin time.Duration // a cached session with less left is renewed when it can be

	mu      sync.Mutex
	gst     *aws.Credentials // the GetSessionToken session, nil if none
	role1   *aws.Credentials // the last role session got with MFA
	ends    time.Time        // when a new code is needed
	present bool
	from    string
	lastKey string // access key id of the last role session assumed here
	watched bool   // a Source watches the session's end (one, if shared)
}

// MFASessions lets the Sources of one process share their MFA sessions:
// upstreams with the same profile, device and STS settings then need one
// code, not one each (a code works once, so a second GetSessionToken with
// it would be refused). Safe for concurrent use; the zero value is not
// usable, call NewMFASessions.
type MFASessions struct {
	mu sync.Mutex
	m  map[string]*mfaSession
}

// NewMFASessions makes an empty set of shared MFA sessions.
func NewMFASessions() *MFASessions { return &MFASessions{m: map[string]*mfaSession{}} }

// sharedMFASession returns the session of o and p in o.MFASessions, making
// it with mk when there is none yet.
func sharedMFASession(o Options, p *mfaProfile, mk func() (*mfaSession, error)) (*mfaSession, error) {
	if o.MFASessions == nil {
		return mk()
	}
	var args AssumeArgs
	var profile string
	if p != nil {
		args, profile = p.args, p.name
	}
	key := fmt.Sprintf("%q|%q|%+v|%q|%q|%q|%s|%s|%q", o.Profile, profile, args, o.MFA.Serial, o.STSEndpoint, o.Region,
		o.MFA.Duration, o.RoleSessionName, o.MFA.CacheDir)
	sh := o.MFASessions
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if m, ok := sh.m[key]; ok {
		return m, nil
	}
	m, err := mk()
	if err != nil {
		return nil, err
	}
	sh.m[key] = m
	return m, nil
}

// newMFASession sets up the MFA path for profile p (nil: GetSessionToken
// with o.MFA.Serial on top of cfg's credentials). opts are the Source's
// load options, for the source profile's configuration.
func newMFASession(ctx context.Context, o Options, p *mfaProfile, opts []func(*config.LoadOptions) error, cfg aws.Config, log *slog.Logger) (*mfaSession, error) {
	window := o.Refresh.Window
	if window == 0 {
		window = o.ExpiryWindow
	}
	// The CLI's 15 minutes, or more: a cached session the Source would
	// refresh at once must not be taken again and again.
	m := &mfaSession{opts: o.MFA, cacheDir: o.MFA.CacheDir, log: log, tick: 10 * time.Second,
		margin: time.Minute, cacheMin: max(cacheFreshEnough, window+time.Minute)}
	if m.cacheDir == "" {
		m.cacheDir = DefaultCLICacheDir()
	}
	srcCfg := cfg
	if p != nil {
		m.profile, m.serial, m.role = p.name, p.args.SerialNumber, p.args
		m.roleName = p.args.RoleSessionName
		if m.roleName == "" {
			m.roleName = o.RoleSessionName
		}
		if m.roleName == "" {
			m.roleName = DefaultSessionName()
		}
		m.roleDur = mfaRoleDuration
		if p.args.DurationSeconds > 0 {
			m.roleDur = time.Duration(p.args.DurationSeconds) * time.Second
		}
		var err error
		srcCfg, err = config.LoadDefaultConfig(ctx, append(opts, config.WithSharedConfigProfile(p.sourceProfile))...)
		if err != nil {
			return nil, fmt.Errorf("load source_profile %q of profile %q: %w", p.sourceProfile, p.name, err)
		}
		if srcCfg.Region == "" {
			srcCfg.Region = cfg.Region
		}
	} else {
		m.serial = o.MFA.Serial
	}
	m.source = srcCfg.Credentials
	if m.source == nil {
		m.source = aws.AnonymousCredentials{}
	}
	m.sts = func(creds aws.CredentialsProvider) *sts.Client {
		return sts.NewFromConfig(srcCfg, func(so *sts.Options) {
			so.Credentials = creds
			if so.Region == "" {
				so.Region = o.Region
			}
			if o.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(o.STSEndpoint)
			}
		})
	}
	return m, nil
}

func (m *mfaSession) state() MFAState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MFAState{Configured: true, Profile: m.profile, Serial: m.serial, Present: m.present, Ends: m.ends, From: m.from}
}

// Retrieve never asks for a code: it uses the AWS CLI cache, or renews the
// role from the MFA session; when neither can serve, the error says a code
// is needed.
func (m *mfaSession) Retrieve(ctx context.Context) (aws.Credentials, error) {
	now := time.Now()
	m.mu.Lock()
	gst, held := m.gst, m.role1
	m.mu.Unlock()
	gstOK := gst != nil && gst.Expires.After(now.Add(m.margin))
	if m.role.RoleARN == "" {
		if gstOK {
			return *gst, nil
		}
		return aws.Credentials{}, m.needCode(gst)
	}
	key := CLICacheKey(m.role)
	cached, cerr := ReadCLICache(m.cacheDir, key)
	if cerr == nil {
		left := cached.Credentials.Expires.Sub(now)
		// Fresh by the CLI's measure, or the best there is when no
		// session can renew it.
		if left > m.cacheMin || !gstOK && left > m.margin {
			m.mu.Lock()
			if cached.Credentials.AccessKeyID == m.lastKey {
				// What this proxy wrote: its own session.
				cached.Credentials.Source = "AssumeRole (MFA)"
			} else {
				m.from = "AWS CLI cache"
			}
			m.present = true
			if !gstOK {
				m.ends = cached.Credentials.Expires
			}
			m.mu.Unlock()
			return cached.Credentials, nil
		}
	} else if !errors.Is(cerr, os.ErrNotExist) {
		m.log.Warn("ignoring an unreadable AWS CLI cache entry", "error", cerr)
	}
	if gstOK {
		c, err := m.assume(ctx, aws.NewCredentialsCache(staticProvider{*gst}), "", "")
		if err != nil {
			return aws.Credentials{}, err
		}
		return c, nil
	}
	if held != nil && held.Expires.After(now.Add(m.margin)) {
		return *held, nil
	}
	return aws.Credentials{}, m.needCode(gst)
}

func (m *mfaSession) needCode(gst *aws.Credentials) error {
	e := &MFAError{Profile: m.profile, Serial: m.serial, Kind: MFANoCode}
	m.mu.Lock()
	ended := m.ends
	m.mu.Unlock()
	if gst != nil || !ended.IsZero() {
		e.Kind, e.Ended = MFAEnded, ended
	}
	return e
}

// authenticate spends code: GetSessionToken from long-term source keys
// (then the role is assumed from it), or AssumeRole with the code.
func (m *mfaSession) authenticate(ctx context.Context, code string) error {
	src, err := m.source.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("source credentials for the MFA step: %w", err)
	}
	refused := func(err error) error {
		return &MFAError{Profile: m.profile, Serial: m.serial, Kind: MFARefused, Err: err}
	}
	if isLongTerm(src) {
		d := m.opts.Duration
		if d == 0 {
			d = mfaDefaultGST
		}
		out, err := m.sts(staticProvider{src}).GetSessionToken(ctx, &sts.GetSessionTokenInput{
			DurationSeconds: aws.Int32(int32(d / time.Second)),
			SerialNumber:    aws.String(m.serial),
			TokenCode:       aws.String(code),
		})
		if err != nil {
			return refused(err)
		}
		c := out.Credentials
		gst := aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey),
			SessionToken: aws.ToString(c.SessionToken), CanExpire: true, Expires: aws.ToTime(c.Expiration),
			Source: "GetSessionToken (MFA)"}
		m.mu.Lock()
		m.gst, m.ends, m.present, m.from = &gst, gst.Expires, true, "code"
		m.mu.Unlock()
		if m.role.RoleARN != "" {
			if _, err := m.assume(ctx, staticProvider{gst}, "", ""); err != nil {
				return err
			}
		}
		return nil
	}
	if m.role.RoleARN == "" {
		return refused(fmt.Errorf("GetSessionToken needs an IAM user's long-term access keys, and the credentials from %s are temporary", src.Source))
	}
	c, err := m.assume(ctx, staticProvider{src}, m.serial, code)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.role1, m.ends, m.present, m.from = &c, c.Expires, true, "code"
	m.mu.Unlock()
	return nil
}

// assume assumes the profile's role as creds (with serial and code when
// given), writes the session to the AWS CLI cache and returns it.
func (m *mfaSession) assume(ctx context.Context, creds aws.CredentialsProvider, serial, code string) (aws.Credentials, error) {
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(m.role.RoleARN),
		RoleSessionName: aws.String(m.roleName),
		DurationSeconds: aws.Int32(int32(m.roleDur / time.Second)),
	}
	if m.role.ExternalID != "" {
		in.ExternalId = aws.String(m.role.ExternalID)
	}
	if serial != "" {
		in.SerialNumber, in.TokenCode = aws.String(serial), aws.String(code)
	}
	out, err := m.sts(creds).AssumeRole(ctx, in)
	if err != nil {
		if serial != "" {
			return aws.Credentials{}, &MFAError{Profile: m.profile, Serial: m.serial, Kind: MFARefused, Err: err}
		}
		// From the MFA session: the trust may require a fresher code
		// (aws:MultiFactorAuthAge), so a new code is the way on.
		m.log.Warn("assuming the role from the MFA session failed; a new MFA code is needed if this lasts",
			"role", m.role.RoleARN, "error", redactSecrets(stsMessage(err)))
		return aws.Credentials{}, &RoleError{Role: m.role.RoleARN, Code: apiCode(err), Err: err}
	}
	c := out.Credentials
	cr := CachedRole{Credentials: aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken: aws.ToString(c.SessionToken), CanExpire: true, Expires: aws.ToTime(c.Expiration), Source: "AssumeRole (MFA)"}}
	if u := out.AssumedRoleUser; u != nil {
		cr.AssumedRoleARN, cr.AssumedRoleID = aws.ToString(u.Arn), aws.ToString(u.AssumedRoleId)
		if a, err := parseARNAccount(cr.AssumedRoleARN); err == nil {
			cr.Credentials.AccountID = a
		}
	}
	if m.cacheDir != "" {
		if err := WriteCLICache(m.cacheDir, CLICacheKey(m.role), cr); err != nil {
			m.log.Warn("could not write the AWS CLI cache; aws will ask for its own code", "error", err)
		}
	}
	m.mu.Lock()
	m.present, m.lastKey = true, cr.Credentials.AccessKeyID
	m.mu.Unlock()
	return cr.Credentials, nil
}

func apiCode(err error) string {
	if api, ok := errors.AsType[smithy.APIError](err); ok {
		return api.ErrorCode()
	}
	return ""
}

// parseARNAccount returns the account field of an ARN.
func parseARNAccount(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || parts[4] == "" {
		return "", fmt.Errorf("%q is not an ARN with an account", arn)
	}
	return parts[4], nil
}
