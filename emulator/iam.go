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

	// trust, if set, is asked after a role's own trust policy; tests of
	// the emulator use it to refuse an assumption outright.
	trust func(assumeRequest) error
	// faults are injected errors and delays, by endpoint.
	faults       map[string]*Fault
	faultRelease chan struct{} // closed by ClearFault: delayed requests go on
	// container credentials: the role they are for and the Authorization
	// token the endpoint requires ("" = none).
	containerRole, containerToken string
	containerSession              *session
	ssoGrants                     []ssoGrant

	mu              sync.Mutex
	clockOffset     time.Duration
	sessionDuration time.Duration
	users           map[string]*iamUser      // by ARN
	roles           map[string]*iamRole      // by ARN
	userKeys        map[string]*userKey      // by access key id (AKIA...)
	sessions        *boundedStore[*session]  // by access key id (ASIA...)
	instanceProfile string                   // role name, "" for none
	imdsSession     *session                 // current instance profile credentials
	imdsTokens      *boundedStore[time.Time] // token -> expiry
	seen            *boundedStore[struct{}]  // secrets issued or presented (SeenSecrets)
	oidc            map[string]*OIDCProvider // by issuer, without https://
	dbs             []*dbRecord              // emulated instances and clusters, for the RDS API
	globals         []*GlobalCluster         // global databases, for the RDS API
	mfaDevices      map[string]*mfaDevice    // by serial
	calls           map[string]int           // successful STS actions, for STSCalls
}

type iamUser struct {
	name, arn, id string // id: unique id (AIDA...), aws:userid
	account       string
	policy        Policy
}

type iamRole struct {
	name, arn, id string // id: unique id (AROA...)
	account       string
	policy        Policy
	trust         *Trust // nil: any known principal may assume it
}

type userKey struct {
	id, secret string
	user       *iamUser
}

// session is a set of temporary credentials issued for a role, or (user
// set, role nil) for an IAM user by GetSessionToken.
type session struct {
	accessKeyID, secret, token string
	role                       *iamRole
	user                       *iamUser
	mfa                        bool      // issued with MFA, or from a session that was
	mfaAt                      time.Time // when the MFA code was checked
	name                       string    // role session name
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
	caller      principal
	service     string // a service principal: "ec2.amazonaws.com", "pods.eks.amazonaws.com"
	externalID  string
	webIdentity webIdentityClaims
	keys        map[string]string // condition keys of the request (MFA)
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
	account      string // the principal's account
	policy       Policy
	session      bool
	roleARN      string    // sessions only
	mfa          bool      // temporary credentials obtained with MFA
	mfaAt        time.Time // when the code was checked (aws:MultiFactorAuthAge)
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
		sessions:        newBoundedStore[*session](maxSessions, 0),
		imdsTokens:      newBoundedStore[time.Time](maxIMDSTokens, 0),
		seen:            newBoundedStore[struct{}](maxSeen, maxSeenBytes),
		oidc:            map[string]*OIDCProvider{},
		faults:          map[string]*Fault{},
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
	return a.AddUserInAccount(a.accountID, name, p)
}

// AddUserInAccount is AddUser for another account (12 digits), so that
// cross-account access can be emulated: a user there can call STS, but
// rds-db:connect on this account's DB only works through a role of this
// account whose trust policy allows the user.
func (a *AWS) AddUserInAccount(account, name string, p Policy) (accessKeyID, secretKey string) {
	key := &userKey{id: "AKIA" + randomText(16), secret: randomSecret()}
	arn := a.iamARNIn(account, "user", name)
	a.mu.Lock()
	u, ok := a.users[arn]
	if !ok {
		u = &iamUser{name: name, arn: arn, id: "AIDA" + randomText(17), account: account}
		a.users[arn] = u
	}
	u.policy = p.clone()
	key.user = u
	a.userKeys[key.id] = key
	a.rememberLocked(time.Time{}, key.secret)
	a.mu.Unlock()
	a.log.Info("iam user key created", "user", u.arn, "access_key_id", key.id)
	return key.id, key.secret
}

// AddRole creates the IAM role arn:aws:iam::ACCOUNT:role/NAME with policy p
// and returns its ARN. Calling it again for the same name replaces the
// policy. Until SetRoleTrust gives it a trust policy, any known principal
// may assume it.
func (a *AWS) AddRole(name string, p Policy) (roleARN string) {
	return a.AddRoleInAccount(a.accountID, name, p)
}

// AddRoleInAccount is AddRole for another account.
func (a *AWS) AddRoleInAccount(account, name string, p Policy) (roleARN string) {
	arn := a.iamARNIn(account, "role", name)
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.roles[arn]
	if !ok {
		r = &iamRole{name: name, arn: arn, id: "AROA" + randomText(17), account: account}
		a.roles[arn] = r
	}
	r.policy = p.clone()
	return r.arn
}

// SetRoleTrust gives the role roleARN a trust policy; nil removes it (any
// known principal may then assume the role).
func (a *AWS) SetRoleTrust(roleARN string, t *Trust) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.roles[roleARN]
	if !ok {
		return fmt.Errorf("emulator: no role %s", roleARN)
	}
	if t != nil {
		c := t.clone()
		t = &c
	}
	r.trust = t
	return nil
}

// SetRolePolicy replaces the policy of an existing role. As on AWS, the change
// applies to sessions already issued for the role.
func (a *AWS) SetRolePolicy(name string, p Policy) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.roles[a.iamARN("role", name)]
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
		if _, ok := a.roles[a.iamARN("role", roleName)]; !ok {
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
// the emulator issued, and every token signature, session token and web
// identity token it was asked to verify, so that a test can assert none of
// them appears in its logs. The order is unspecified. Memory is bounded
// (bounded.go): in a very long run the oldest values the emulator saw
// through requests may have been forgotten; what tests create through the
// API never is.
func (a *AWS) SeenSecrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, a.seen.len())
	a.seen.all(func(s string, _ struct{}) bool {
		out = append(out, s)
		return true
	})
	slices.Sort(out)
	return out
}

// remember records secrets a request presented, to be forgotten
// seenRetention from now if the store fills.
func (a *AWS) remember(secrets ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rememberLocked(a.nowLocked().Add(seenRetention), secrets...)
}

// rememberLocked records secrets that may be forgotten after forget (zero:
// never); a secret already known keeps the later of the two times.
func (a *AWS) rememberLocked(forget time.Time, secrets ...string) {
	now := a.nowLocked()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if old, ok := a.seen.items[s]; ok {
			if old.forget.IsZero() || !forget.IsZero() && !forget.After(old.forget) {
				continue // already kept at least as long
			}
		}
		a.seen.put(s, struct{}{}, forget, len(s), now)
	}
}

func (a *AWS) iamARN(kind, name string) string { return a.iamARNIn(a.accountID, kind, name) }

func (a *AWS) iamARNIn(account, kind, name string) string {
	return "arn:" + a.Partition() + ":iam::" + account + ":" + kind + "/" + name
}

// roleByARN finds a role by its ARN; the caller holds a.mu.
func (a *AWS) roleByARNLocked(arn string) (*iamRole, bool) {
	r, ok := a.roles[arn]
	return r, ok
}

// roleOrDenied finds the role an assume call names, or answers with the
// call's own denied error, as STS does not tell a missing role from a
// refused one; the log keeps the real reason.
func (a *AWS) roleOrDenied(arn string, denied *stsError) (*iamRole, *stsError) {
	a.mu.Lock()
	role, ok := a.roleByARNLocked(arn)
	a.mu.Unlock()
	if !ok {
		denied.reason = "no such role " + arn
		return nil, denied
	}
	return role, nil
}

// roleByName finds a role of the emulator's own account; the caller holds
// a.mu.
func (a *AWS) roleByNameLocked(name string) (*iamRole, bool) {
	r, ok := a.roles[a.iamARN("role", name)]
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
				account:      k.user.account,
				policy:       k.user.policy,
			},
		}, true
	}
	if s, ok := a.sessions.get(accessKeyID); ok {
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
	if s.user != nil {
		// GetSessionToken: the user, with temporary credentials.
		return principal{
			arn:          s.user.arn,
			userID:       s.user.id,
			principalARN: s.user.arn,
			kind:         "User",
			userName:     s.user.name,
			accessKeyID:  s.accessKeyID,
			account:      s.user.account,
			policy:       s.user.policy,
			session:      true,
			mfa:          s.mfa,
			mfaAt:        s.mfaAt,
		}
	}
	return principal{
		mfa:          s.mfa,
		mfaAt:        s.mfaAt,
		arn:          "arn:" + a.Partition() + ":sts::" + s.role.account + ":assumed-role/" + s.role.name + "/" + s.name,
		userID:       s.role.id + ":" + s.name,
		principalARN: s.role.arn,
		kind:         "AssumedRole",
		accessKeyID:  s.accessKeyID,
		account:      s.role.account,
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
	forget := s.expires.Add(sessionRetention)
	a.sessions.put(s.accessKeyID, s, forget, len(s.token)+len(s.secret)+len(s.accessKeyID), a.nowLocked())
	a.rememberLocked(forget, s.secret, s.token)
	return s
}

// sessionKeptLocked reports whether s is still in the session store (a
// full store may have dropped it: its credentials would no longer work);
// the caller holds a.mu.
func (a *AWS) sessionKeptLocked(s *session) bool {
	kept, ok := a.sessions.get(s.accessKeyID)
	return ok && kept == s
}

// checkTrust decides whether req may assume its role: the role's trust
// policy, then (across accounts) the caller's own permission to call
// sts:AssumeRole on the role, then the test seam, if any.
func (a *AWS) checkTrust(req assumeRequest) error {
	a.mu.Lock()
	role, ok := a.roles[req.roleARN]
	var trust *Trust
	if ok {
		trust = role.trust
	}
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("no such role %s", req.roleARN)
	}
	if trust != nil {
		if err := trust.allows(req); err != nil {
			return fmt.Errorf("trust policy of %s: %w", req.roleARN, err)
		}
	}
	if req.action == "sts:AssumeRole" && req.caller.account != "" && req.caller.account != role.account {
		if ok, why := req.caller.policy.Allows("sts:AssumeRole", req.roleARN, req.keys); !ok {
			return fmt.Errorf("cross-account: the identity policy of %s does not allow sts:AssumeRole on %s (%s)", req.caller.arn, req.roleARN, why)
		}
	}
	if a.trust != nil {
		if err := a.trust(req); err != nil {
			return fmt.Errorf("trust policy of %s: %w", req.roleARN, err)
		}
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
