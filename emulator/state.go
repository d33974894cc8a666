package emulator

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"
)

// State is a copy of everything about an AWS that tests change through its
// setters: the clock, session lifetimes, injected faults, principals and
// their policies, the instance profile and container credentials, and the
// emulated databases. A suite that shares one AWS between tests compares
// the State before and after each test to find the test that left a change
// behind. Changing a State changes nothing in the AWS.
//
// No secret is in it: the container credentials' Authorization token is
// only a digest, and keys, session tokens and SSO access tokens are left out.
type State struct {
	ClockOffset     time.Duration
	SessionDuration time.Duration
	// Faults are the faults injected and not cleared, by endpoint, as
	// injected (the hits counted so far left out).
	Faults map[string]Fault

	// InstanceProfile is the role instance metadata hands out ("" none).
	// InstanceCredentials is how long the credentials it would hand out
	// next last: those it holds while it would still serve them, else
	// SessionDuration. ContainerCredentials is the same for the container
	// endpoint.
	InstanceProfile     string
	InstanceCredentials time.Duration
	ContainerRole       string
	// ContainerTokenDigest is a short SHA-256 digest of the Authorization
	// token the container endpoint requires, "" for none: enough to tell
	// tokens apart, not to recover one.
	ContainerTokenDigest string
	ContainerCredentials time.Duration

	Users map[string]Policy    // by ARN
	Roles map[string]RoleState // by ARN
	// OIDCProviders are the registered issuers (without https://) and
	// their audiences; SSOGrants the roles SSO access tokens may get, as
	// "ACCOUNT/ROLE", one per grant, sorted.
	OIDCProviders map[string][]string
	SSOGrants     []string

	// DBs are the emulated instances and clusters the RDS API lists,
	// sorted by endpoint and port.
	DBs []DBState
}

// RoleState is a role's policy and trust policy (nil: none, anyone known
// may assume it).
type RoleState struct {
	Policy Policy
	Trust  *Trust
}

// DBState is what the RDS API says about one emulated front.
type DBState struct {
	Engine, Endpoint  string
	Port              int
	ResourceID        string
	IAMAuth           bool
	ClusterID         string
	ClusterResourceID string
	// VerifyRate and FailNextVerifies are the emulated throttle on IAM
	// logins (SetVerifyRate, FailNextVerifies: what is left of it).
	VerifyRate       float64
	FailNextVerifies int
}

// State returns a copy of the AWS's changeable state (see [State]).
func (a *AWS) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.nowLocked()
	s := State{
		ClockOffset:     a.clockOffset,
		SessionDuration: a.sessionDuration,
		Faults:          make(map[string]Fault, len(a.faults)),
		InstanceProfile: a.instanceProfile,
		ContainerRole:   a.containerRole,
		Users:           make(map[string]Policy, len(a.users)),
		Roles:           make(map[string]RoleState, len(a.roles)),
		OIDCProviders:   make(map[string][]string, len(a.oidc)),
	}
	for e, f := range a.faults {
		c := *f
		c.hits = 0
		s.Faults[e] = c
	}
	if r, ok := a.roleByNameLocked(a.instanceProfile); ok {
		s.InstanceCredentials = a.nextLifetimeLocked(a.imdsSession, r, now)
	}
	if r, ok := a.roleByNameLocked(a.containerRole); ok {
		s.ContainerCredentials = a.nextLifetimeLocked(a.containerSession, r, now)
	}
	if a.containerToken != "" {
		sum := sha256.Sum256([]byte(a.containerToken))
		s.ContainerTokenDigest = hex.EncodeToString(sum[:6])
	}
	for arn, u := range a.users {
		s.Users[arn] = u.policy.clone()
	}
	for arn, r := range a.roles {
		rs := RoleState{Policy: r.policy.clone()}
		if r.trust != nil {
			t := r.trust.clone()
			rs.Trust = &t
		}
		s.Roles[arn] = rs
	}
	for name, p := range a.oidc {
		s.OIDCProviders[name] = slices.Sorted(slices.Values(p.clientIDs))
	}
	for _, g := range a.ssoGrants {
		s.SSOGrants = append(s.SSOGrants, g.account+"/"+g.role)
	}
	slices.Sort(s.SSOGrants)
	for _, d := range a.dbs {
		s.DBs = append(s.DBs, DBState{Engine: d.engine, Endpoint: d.endpoint, Port: d.port, ResourceID: d.resourceID,
			IAMAuth: d.iamAuth, ClusterID: d.clusterID, ClusterResourceID: d.clusterResourceID,
			VerifyRate: d.verifyRate, FailNextVerifies: d.failVerifies})
	}
	slices.SortFunc(s.DBs, func(x, y DBState) int {
		return cmp.Or(cmp.Compare(x.Endpoint, y.Endpoint), cmp.Compare(x.Port, y.Port))
	})
	return s
}

// nextLifetimeLocked is how long the credentials of role r handed out
// next would last: held's, while instance metadata or the container
// endpoint would serve it again (the rule they follow), else a new
// session's. The caller holds a.mu.
func (a *AWS) nextLifetimeLocked(held *session, r *iamRole, now time.Time) time.Duration {
	window := min(imdsRefreshWindow, a.sessionDuration/2)
	if held == nil || held.role != r || !now.Before(held.expires.Add(-window)) || !a.sessionKeptLocked(held) {
		return a.sessionDuration
	}
	return held.expires.Sub(held.issued)
}

// IAMUsers returns the users this MySQL front treats as IAM users (see
// [MySQLOptions.IAMUsers] and [MySQL.SetIAMUser]), sorted.
func (m *MySQL) IAMUsers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for u, iam := range m.iamUsers {
		if iam {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}
