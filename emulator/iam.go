package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	defaultAccountID       = "123456789012"
	defaultRegion          = "us-east-1"
	defaultSessionDuration = time.Hour
)

// Options configures an emulated AWS account.
type Options struct {
	// AccountID is the 12-digit account everything lives in. Default
	// "123456789012".
	AccountID string
	// Region is the region the emulated STS and instance metadata report.
	// Default "us-east-1".
	Region string
	// Logger receives the real reason of every rejection (RDS-style clients
	// only see a generic message) and a line for each credential issued.
	// Secret keys, session tokens and token signatures are never logged.
	// Default: discard.
	Logger *slog.Logger
}

// AWS is an emulated AWS account: IAM users and roles with their policies,
// the sessions STS and instance metadata have issued, and a clock that tests
// can move. Its [AWS.Handler] serves STS and IMDSv2 to the real SDK, and
// [AWS.VerifyRDSToken] checks RDS IAM auth tokens against it.
//
// An AWS is safe for concurrent use. The zero value is not usable; call
// [NewAWS].
type AWS struct {
	accountID  string
	region     string
	log        *slog.Logger
	instanceID string // of the emulated EC2 instance behind IMDS

	// trust decides whether a principal may assume a role. nil (the default)
	// lets any known principal assume any role; trust policies plug in here.
	trust func(assumeRequest) error

	mu              sync.Mutex
	clockOffset     time.Duration
	sessionDuration time.Duration
	users           map[string]*iamUser // by name
	roles           map[string]*iamRole // by name
	userKeys        map[string]*userKey // by access key id (AKIA...)
	sessions        map[string]*session // by access key id (ASIA...)
	instanceProfile string              // role name, "" for none
	imdsSession     *session            // current instance profile credentials
	imdsTokens      map[string]time.Time
	seen            map[string]struct{}
}

type iamUser struct {
	name, arn, id string // id: unique id (AIDA...), aws:userid
	policy        Policy
}

type iamRole struct {
	name, arn, id string // id: unique id (AROA...)
	policy        Policy
}

type userKey struct {
	id, secret string
	user       *iamUser
}

// session is a set of temporary credentials issued for a role.
type session struct {
	accessKeyID, secret, token string
	role                       *iamRole
	name                       string // role session name
	issued, expires            time.Time
	externalID                 string
	issuedTo                   string // who asked: caller ARN, "web identity", "instance profile"
}

// assumeRequest is what a trust check sees of an attempt to assume a role.
type assumeRequest struct {
	action      string // "sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "ec2:InstanceProfile"
	roleARN     string
	roleName    string
	callerARN   string // empty for web identity
	externalID  string
	webIdentity webIdentityClaims
}

// principal is who signed a request, with what an authorization decision
// needs to know about them.
type principal struct {
	arn          string // as sts:GetCallerIdentity reports it
	userID       string // aws:userid
	principalARN string // aws:PrincipalArn: the user, or the role of a session
	kind         string // aws:PrincipalType: "User" or "AssumedRole"
	userName     string // aws:username, users only
	accessKeyID  string
	policy       Policy
	session      bool
	roleARN      string // sessions only
}

// credential is what the emulator knows about one access key id.
type credential struct {
	secret       string
	sessionToken string    // "" for a long-term key
	expires      time.Time // zero for a long-term key
	who          principal
}

// NewAWS makes an empty emulated account.
func NewAWS(o Options) *AWS {
	a := &AWS{
		accountID:       o.AccountID,
		region:          o.Region,
		log:             o.Logger,
		instanceID:      "i-" + strings.ToLower(randomText(17)),
		sessionDuration: defaultSessionDuration,
		users:           map[string]*iamUser{},
		roles:           map[string]*iamRole{},
		userKeys:        map[string]*userKey{},
		sessions:        map[string]*session{},
		imdsTokens:      map[string]time.Time{},
		seen:            map[string]struct{}{},
	}
	if a.accountID == "" {
		a.accountID = defaultAccountID
	}
	if a.region == "" {
		a.region = defaultRegion
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return a
}

// AccountID returns the emulated account's id.
func (a *AWS) AccountID() string { return a.accountID }

// Region returns the emulated region.
func (a *AWS) Region() string { return a.region }

// Now returns the emulator's clock: real time plus the offset set by
// [AWS.SetClockOffset]. Every expiry the emulator checks uses this clock.
func (a *AWS) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nowLocked()
}

func (a *AWS) nowLocked() time.Time { return time.Now().Add(a.clockOffset) }

// SetClockOffset moves the emulator's clock by d from real time, so tests can
// make tokens and sessions expire, or reproduce clock skew between a client
// and AWS, without waiting.
func (a *AWS) SetClockOffset(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clockOffset = d
}

// SessionDuration returns how long session credentials last when the request
// does not say (AssumeRole without DurationSeconds, instance metadata).
func (a *AWS) SessionDuration() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessionDuration
}

// SetSessionDuration sets the default lifetime of issued session credentials.
// d <= 0 restores the default of one hour. Values below STS's 15-minute
// minimum are allowed, so tests can watch credentials expire quickly.
func (a *AWS) SetSessionDuration(d time.Duration) {
	if d <= 0 {
		d = defaultSessionDuration
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sessionDuration = d
}

// AddUser creates the IAM user arn:aws:iam::ACCOUNT:user/NAME with policy p
// and returns a new long-term access key (AKIA...) and its secret. Calling it
// again for the same name replaces the user's policy and adds another key;
// earlier keys stay valid.
func (a *AWS) AddUser(name string, p Policy) (accessKeyID, secretKey string) {
	key := &userKey{id: "AKIA" + randomText(16), secret: randomSecret()}
	a.mu.Lock()
	u, ok := a.users[name]
	if !ok {
		u = &iamUser{name: name, arn: a.iamARN("user", name), id: "AIDA" + randomText(17)}
		a.users[name] = u
	}
	u.policy = p.clone()
	key.user = u
	a.userKeys[key.id] = key
	a.rememberLocked(key.secret)
	a.mu.Unlock()
	a.log.Info("iam user key created", "user", u.arn, "access_key_id", key.id)
	return key.id, key.secret
}

// AddRole creates the IAM role arn:aws:iam::ACCOUNT:role/NAME with policy p
// and returns its ARN. Calling it again for the same name replaces the
// policy. Any known principal may assume any role.
func (a *AWS) AddRole(name string, p Policy) (roleARN string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.roles[name]
	if !ok {
		r = &iamRole{name: name, arn: a.iamARN("role", name), id: "AROA" + randomText(17)}
		a.roles[name] = r
	}
	r.policy = p.clone()
	return r.arn
}

// SetRolePolicy replaces the policy of an existing role. As on AWS, the change
// applies to sessions already issued for the role.
func (a *AWS) SetRolePolicy(name string, p Policy) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.roles[name]
	if !ok {
		return fmt.Errorf("emulator: no role named %q", name)
	}
	r.policy = p.clone()
	return nil
}

// SetInstanceProfile makes roleName the role whose credentials instance
// metadata hands out. An empty name removes the instance profile, so that
// instance metadata answers 404 for credentials, as on an instance without
// one.
func (a *AWS) SetInstanceProfile(roleName string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if roleName != "" {
		if _, ok := a.roles[roleName]; !ok {
			return fmt.Errorf("emulator: no role named %q", roleName)
		}
	}
	if roleName != a.instanceProfile {
		a.imdsSession = nil
	}
	a.instanceProfile = roleName
	return nil
}

// SeenSecrets returns every secret access key, session token and IMDS token
// the emulator issued, and every token signature and session token it was
// asked to verify, so that a test can assert none of them appears in its
// logs. The order is unspecified.
func (a *AWS) SeenSecrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.seen))
	for s := range a.seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (a *AWS) remember(secrets ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rememberLocked(secrets...)
}

func (a *AWS) rememberLocked(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			a.seen[s] = struct{}{}
		}
	}
}

func (a *AWS) iamARN(kind, name string) string {
	return "arn:aws:iam::" + a.accountID + ":" + kind + "/" + name
}

// roleByARN finds a role by its ARN; the caller holds a.mu.
func (a *AWS) roleByARNLocked(arn string) (*iamRole, bool) {
	prefix := "arn:aws:iam::" + a.accountID + ":role/"
	name, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return nil, false
	}
	r, ok := a.roles[name]
	return r, ok
}

// lookupCredential returns what the emulator knows about an access key id,
// long-term or session, expired or not.
func (a *AWS) lookupCredential(accessKeyID string) (credential, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k, ok := a.userKeys[accessKeyID]; ok {
		return credential{
			secret: k.secret,
			who: principal{
				arn:          k.user.arn,
				userID:       k.user.id,
				principalARN: k.user.arn,
				kind:         "User",
				userName:     k.user.name,
				accessKeyID:  k.id,
				policy:       k.user.policy,
			},
		}, true
	}
	if s, ok := a.sessions[accessKeyID]; ok {
		return credential{
			secret:       s.secret,
			sessionToken: s.token,
			expires:      s.expires,
			who:          a.sessionPrincipalLocked(s),
		}, true
	}
	return credential{}, false
}

func (a *AWS) sessionPrincipalLocked(s *session) principal {
	return principal{
		arn:          "arn:aws:sts::" + a.accountID + ":assumed-role/" + s.role.name + "/" + s.name,
		userID:       s.role.id + ":" + s.name,
		principalARN: s.role.arn,
		kind:         "AssumedRole",
		accessKeyID:  s.accessKeyID,
		policy:       s.role.policy,
		session:      true,
		roleARN:      s.role.arn,
	}
}

// issueSession creates temporary credentials for role r; the caller holds
// a.mu.
func (a *AWS) issueSessionLocked(r *iamRole, name string, d time.Duration, externalID, issuedTo string) *session {
	now := a.nowLocked().UTC().Truncate(time.Second)
	s := &session{
		accessKeyID: "ASIA" + randomText(16),
		secret:      randomSecret(),
		token:       randomSessionToken(),
		role:        r,
		name:        name,
		issued:      now,
		expires:     now.Add(d),
		externalID:  externalID,
		issuedTo:    issuedTo,
	}
	a.sessions[s.accessKeyID] = s
	a.rememberLocked(s.secret, s.token)
	return s
}

// checkTrust runs the trust seam, if any.
func (a *AWS) checkTrust(req assumeRequest) error {
	if a.trust == nil {
		return nil
	}
	if err := a.trust(req); err != nil {
		return fmt.Errorf("trust policy of %s: %w", req.roleARN, err)
	}
	return nil
}

// randomText returns n characters of A-Z and 2-7 (the base32 alphabet AWS
// uses for key ids), from crypto/rand.
func randomText(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rand.Text())
	}
	return b.String()[:n]
}

// randomSecret returns a 40-character secret access key.
func randomSecret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(b)
}

// randomSessionToken returns a session token about as long as the ones real
// STS issues (several hundred characters, with + / = that need escaping in a
// URL), so that length limits downstream are exercised.
func randomSessionToken() string {
	b := make([]byte, 720)
	_, _ = rand.Read(b)
	return "IQoJb3JpZ2luX2Vj" + base64.StdEncoding.EncodeToString(b)
}

// newRequestID returns a random UUID (version 4), the form of AWS request ids.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
