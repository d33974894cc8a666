package emulator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Statement is one statement of an IAM identity policy, in the subset of the
// policy language that decides rds-db:connect.
//
// Action patterns match case-insensitively, Resource patterns
// case-sensitively; both accept the wildcards * (any run of characters) and ?
// (one character), as IAM does. A statement with no Action or no Resource
// matches nothing.
//
// Condition maps a condition operator to keys and their accepted values:
//
//	Condition: map[string]map[string][]string{
//		"StringEquals": {"aws:PrincipalArn": {"arn:aws:iam::123456789012:role/app"}},
//	}
//
// Keys under one operator, and operators, must all hold (AND); the values of
// one key are alternatives (OR). Supported operators are StringEquals,
// StringNotEquals, StringLike, StringNotLike, Bool, Null, NumericEquals,
// NumericNotEquals, NumericLessThan(Equals) and NumericGreaterThan(Equals),
// each also with IfExists (true when the key is absent); a statement with
// any other operator does not match. Condition key names are case-insensitive, values
// case-sensitive. As on AWS, a missing key makes StringEquals and StringLike
// false and StringNotEquals and StringNotLike true.
//
// RDS supplies no network condition keys for rds-db:connect, so for that
// action a statement that has a condition on aws:SourceIp, aws:SourceVpc,
// aws:SourceVpce or aws:VpcSourceIp never matches, whatever the operator. An
// Allow restricted to an office network therefore allows nothing, which is
// the surprise this emulator exists to reproduce.
type Statement struct {
	Effect    string                         // "Allow" or "Deny"; anything else is ignored
	Action    []string                       // e.g. "rds-db:connect", "rds-db:*"
	Resource  []string                       // e.g. "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app_user"
	Condition map[string]map[string][]string // operator -> key -> values
}

// Policy is an IAM identity policy: the statements attached to a user or role.
// The zero Policy allows nothing.
type Policy struct{ Statements []Statement }

// isNetworkConditionKey reports whether lk (lower case) is one of the
// condition keys AWS does not supply for rds-db:connect.
func isNetworkConditionKey(lk string) bool {
	switch lk {
	case "aws:sourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:vpcsourceip":
		return true
	}
	return false
}

const rdsConnectAction = "rds-db:connect"

// Allows evaluates the policy for one request as IAM does: an explicit Deny
// wins over everything, then any Allow allows, and otherwise the request is
// implicitly denied. ctx holds the condition keys the request supplies (for
// example aws:PrincipalArn); key names are matched case-insensitively.
//
// The string says what decided, for logs: "explicit Deny in statement N",
// "allowed by statement N" (statements are numbered from 1) or
// "no statement allows".
func (p Policy) Allows(action, resource string, ctx map[string]string) (bool, string) {
	keys := make(map[string]string, len(ctx))
	for k, v := range ctx {
		keys[strings.ToLower(k)] = v
	}
	allowedBy := 0
	for i, s := range p.Statements {
		if s.Effect != "Allow" && s.Effect != "Deny" {
			continue
		}
		if !s.matches(action, resource, keys) {
			continue
		}
		if s.Effect == "Deny" {
			return false, fmt.Sprintf("explicit Deny in statement %d", i+1)
		}
		if allowedBy == 0 {
			allowedBy = i + 1
		}
	}
	if allowedBy > 0 {
		return true, fmt.Sprintf("allowed by statement %d", allowedBy)
	}
	return false, "no statement allows"
}

// matches reports whether the statement applies to the request; keys has
// lower-case names.
func (s Statement) matches(action, resource string, keys map[string]string) bool {
	if !slices.ContainsFunc(s.Action, func(pat string) bool {
		return wildcardMatch(strings.ToLower(pat), strings.ToLower(action))
	}) {
		return false
	}
	if !slices.ContainsFunc(s.Resource, func(pat string) bool { return wildcardMatch(pat, resource) }) {
		return false
	}
	return s.conditionsHold(action, keys)
}

func (s Statement) conditionsHold(action string, keys map[string]string) bool {
	rdsConnect := strings.EqualFold(action, rdsConnectAction)
	for op, kv := range s.Condition {
		for key, values := range kv {
			lk := strings.ToLower(key)
			if rdsConnect && isNetworkConditionKey(lk) {
				return false
			}
			v, present := keys[lk]
			if !conditionHolds(op, v, present, values) {
				return false
			}
		}
	}
	return true
}

// conditionHolds evaluates one condition operator for one key: v is the
// request's value, present whether the request supplies the key at all.
// Any operator may end in IfExists, which makes it true when the key is
// absent. An unknown operator is false.
func conditionHolds(op, v string, present bool, values []string) bool {
	if base, ok := strings.CutSuffix(op, "IfExists"); ok && op != "Null" {
		if !present {
			return true
		}
		op = base
	}
	anyValue := func(f func(string) bool) bool { return slices.ContainsFunc(values, f) }
	switch op {
	case "StringEquals":
		return present && slices.Contains(values, v)
	case "StringNotEquals":
		return !present || !slices.Contains(values, v)
	case "StringLike":
		return present && anyValue(func(pat string) bool { return wildcardMatch(pat, v) })
	case "StringNotLike":
		return !present || !anyValue(func(pat string) bool { return wildcardMatch(pat, v) })
	case "Bool":
		return present && anyValue(func(want string) bool { return strings.EqualFold(want, v) })
	case "Null":
		// "true": the key must be absent; "false": present.
		return anyValue(func(want string) bool { return strings.EqualFold(want, strconv.FormatBool(!present)) })
	case "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
		"NumericGreaterThan", "NumericGreaterThanEquals":
		if !present {
			return op == "NumericNotEquals"
		}
		got, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return false
		}
		hit := anyValue(func(want string) bool {
			w, err := strconv.ParseFloat(want, 64)
			if err != nil {
				return false
			}
			switch op {
			case "NumericEquals", "NumericNotEquals":
				return got == w
			case "NumericLessThan":
				return got < w
			case "NumericLessThanEquals":
				return got <= w
			case "NumericGreaterThan":
				return got > w
			default:
				return got >= w
			}
		})
		if op == "NumericNotEquals" {
			return !hit
		}
		return hit
	}
	return false
}

// wildcardMatch reports whether s matches pattern, where * matches any run of
// characters (including none) and ? exactly one. It runs in O(len(pattern) *
// len(s)) at worst, with no recursion.
func wildcardMatch(pattern, s string) bool {
	p, pr := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(pr) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == pr[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// clone returns a deep copy, so that a caller changing its Policy after
// handing it over cannot race with evaluation.
func (p Policy) clone() Policy {
	out := Policy{Statements: make([]Statement, len(p.Statements))}
	for i, s := range p.Statements {
		c := Statement{
			Effect:   s.Effect,
			Action:   slices.Clone(s.Action),
			Resource: slices.Clone(s.Resource),
		}
		c.Condition = cloneCondition(s.Condition)
		out.Statements[i] = c
	}
	return out
}

// cloneCondition deep-copies a condition block; nil stays nil.
func cloneCondition(cond map[string]map[string][]string) map[string]map[string][]string {
	if cond == nil {
		return nil
	}
	out := make(map[string]map[string][]string, len(cond))
	for op, kv := range cond {
		m := maps.Clone(kv)
		for k, v := range m {
			m[k] = slices.Clone(v)
		}
		out[op] = m
	}
	return out
}

// Trust is a role's trust policy, in the subset that decides who may assume
// it. A role without one (the default) may be assumed by any known
// principal.
type Trust struct {
	// AWS lists the principals that may sts:AssumeRole: a user ARN, a role
	// ARN (any session of that role, for role chaining), "*", or
	// "arn:aws:iam::ACCOUNT:root" (any principal of ACCOUNT whose own
	// identity policy allows sts:AssumeRole on the role, as on AWS).
	AWS []string
	// Services lists service principals that may use the role:
	// "ec2.amazonaws.com" (instance profile), "ecs-tasks.amazonaws.com"
	// and "pods.eks.amazonaws.com" (container credentials).
	Services []string
	// ExternalID, when set, must be sent with AssumeRole (the
	// sts:ExternalId condition of a cross-account trust).
	ExternalID string
	// WebIdentity lists the OIDC providers whose tokens may
	// sts:AssumeRoleWithWebIdentity.
	WebIdentity []WebIdentityTrust
	// Condition applies to sts:AssumeRole by AWS principals, as a
	// statement's Condition does (operator -> key -> values); the request
	// supplies aws:MultiFactorAuthPresent and aws:MultiFactorAuthAge.
	Condition map[string]map[string][]string
}

// WebIdentityTrust allows tokens of one OIDC provider.
type WebIdentityTrust struct {
	// Issuer is the token's iss claim, with or without "https://", e.g.
	// "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE".
	Issuer string
	// Audience must equal the aud claim; "" accepts any.
	Audience string
	// Subject is a pattern (* and ?) the sub claim must match; "" accepts
	// any, e.g. "system:serviceaccount:default:app".
	Subject string
}

func (t Trust) clone() Trust {
	return Trust{AWS: slices.Clone(t.AWS), Services: slices.Clone(t.Services), ExternalID: t.ExternalID,
		WebIdentity: slices.Clone(t.WebIdentity), Condition: cloneCondition(t.Condition)}
}

// allows evaluates the trust policy for req; the error says why not, for
// the emulator's log.
func (t Trust) allows(req assumeRequest) error {
	switch {
	case req.action == "sts:AssumeRoleWithWebIdentity":
		c := req.webIdentity
		if c.issuer == "" {
			return errors.New("the web identity token is not a JWT with an iss claim")
		}
		iss := strings.TrimPrefix(c.issuer, "https://")
		for _, w := range t.WebIdentity {
			if strings.TrimPrefix(w.Issuer, "https://") != iss {
				continue
			}
			if w.Audience != "" && w.Audience != c.audience {
				return fmt.Errorf("audience %q is not the trusted %q for issuer %s", c.audience, w.Audience, iss)
			}
			if w.Subject != "" && !wildcardMatch(w.Subject, c.subject) {
				return fmt.Errorf("subject %q does not match the trusted %q for issuer %s", c.subject, w.Subject, iss)
			}
			return nil
		}
		return fmt.Errorf("issuer %s is not a trusted web identity provider", iss)
	case req.service != "":
		if slices.Contains(t.Services, req.service) {
			return nil
		}
		return fmt.Errorf("service principal %s is not trusted", req.service)
	}
	who := req.caller
	trusted := false
	for _, p := range t.AWS {
		switch {
		case p == "*", p == who.arn, p == who.principalARN:
			trusted = true
		case p == "arn:"+arnPartition(who.arn)+":iam::"+who.account+":root":
			if ok, _ := who.policy.Allows("sts:AssumeRole", req.roleARN, req.keys); ok {
				trusted = true
			}
		}
	}
	if !trusted {
		return fmt.Errorf("principal %s is not trusted", who.arn)
	}
	if len(t.Condition) > 0 {
		keys := make(map[string]string, len(req.keys))
		for k, v := range req.keys {
			keys[strings.ToLower(k)] = v
		}
		if !(Statement{Condition: t.Condition}).conditionsHold(req.action, keys) {
			return fmt.Errorf("the trust policy's condition %v does not hold for %s (request keys %v)", t.Condition, who.arn, req.keys)
		}
	}
	if t.ExternalID != "" {
		switch req.externalID {
		case t.ExternalID:
		case "":
			return errors.New("the trust policy requires an external ID and none was sent")
		default:
			return errors.New("the external ID sent is not the one the trust policy requires")
		}
	}
	return nil
}
