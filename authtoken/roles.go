package authtoken

import (
	"context"
	"errors"
	"fmt"
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"os"
	"os/user"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// RoleError is a failure to assume one role of the --role-arn chain. Its
// text names the role, the caller (when STS said who it was) and the likely
// fix; it never holds a secret.
type RoleError struct {
	Role   string // ARN of the role that could not be assumed
	Index  int    // position in the chain, from 0
	Caller string // who asked, as STS named it ("" if unknown)
	Code   string // the STS error code, e.g. AccessDenied
	Err    error
}

var callerInMessage = regexp.MustCompile(`User: (\S+) is not authorized`)

// Error is the cause and the fix in one sentence.
func (e *RoleError) Error() string { return failure.Join(e.Cause(), e.Fix()) }

// Cause names the role, the caller and what STS said.
func (e *RoleError) Cause() string {
	return fmt.Sprintf("cannot assume role %s as %s: %s", e.Role, e.caller(), redactSecrets(e.Err.Error()))
}

// Fix is the likely fix for the STS error code ("" if none is known).
func (e *RoleError) Fix() string {
	caller := e.caller()
	switch e.Code {
	case "AccessDenied":
		return fmt.Sprintf("the trust policy of %s must allow %s (and, if it requires one, the right --external-id), and %s must itself be allowed sts:AssumeRole on %s (always needed across accounts)", e.Role, caller, caller, e.Role) +
			"; if the trust policy requires MFA (aws:MultiFactorAuthPresent, aws:MultiFactorAuthAge), pass --mfa-serial with a code (--mfa-code, or type it in a terminal), or use a profile with mfa_serial"
	case "ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return "the credentials used to assume the role are not valid; refresh them (aws sso login, a new session) and check `rds-iam-proxy whoami`"
	case "ValidationError":
		return "check --role-arn, --role-session-name and --role-duration (at most 1h for a role assumed from another role's session)"
	}
	return ""
}

// caller is who asked STS, as it named them, or who it must have been.
func (e *RoleError) caller() string {
	if e.Caller != "" {
		return e.Caller
	}
	if e.Index > 0 {
		return "the session of the previous role in --role-arn"
	}
	return "the base credentials"
}

func (e *RoleError) Unwrap() error { return e.Err }

// roleProvider assumes one role with the SDK's AssumeRoleProvider and turns
// its failures into a RoleError.
type roleProvider struct {
	inner *stscreds.AssumeRoleProvider
	role  string
	index int
}

func (p *roleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		// A failure to get the credentials to sign with is not this role's:
		// pass on the earlier role's error, or the chain's own.
		var earlier *RoleError
		if errors.As(err, &earlier) {
			return c, earlier
		}
		var se *sourceError
		if errors.As(err, &se) {
			return c, se.err
		}
		re := &RoleError{Role: p.role, Index: p.index, Err: err}
		var api smithy.APIError
		if errors.As(err, &api) {
			re.Code = api.ErrorCode()
			if m := callerInMessage.FindStringSubmatch(api.ErrorMessage()); m != nil {
				re.Caller = m[1]
			}
		}
		return c, re
	}
	return c, nil
}

// sourceError marks a failure of the AWS chain under a role chain.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// markSource tags the chain's errors, so roleProvider can tell them from
// its own.
type markSource struct {
	p     aws.CredentialsProvider
	onErr func(error) // sees the chain's own error, before STS retries wrap it
}

func (m markSource) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.p.Retrieve(ctx)
	if err != nil {
		m.onErr(err)
		return c, &sourceError{err}
	}
	return c, nil
}

// chainRoles puts the roles of o.Roles on top of base, in order: each role
// is assumed with the credentials of the one before. Every step is cached;
// the last role's provider is returned uncached (the Source holds and
// refreshes its credentials, with its own bound on each fetch). The roles
// before it are refreshed a minute ahead, so a session used to assume the
// next role is never about to expire.
func chainRoles(cfg aws.Config, base aws.CredentialsProvider, o Options, onSourceErr func(error)) aws.CredentialsProvider {
	prev := aws.CredentialsProvider(markSource{base, onSourceErr})
	name := o.RoleSessionName
	if name == "" {
		name = DefaultSessionName()
	}
	for i, arn := range o.Roles {
		client := sts.NewFromConfig(cfg, func(so *sts.Options) {
			so.Credentials = prev
			if so.Region == "" {
				so.Region = o.Region
			}
			if o.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(o.STSEndpoint)
			}
		})
		p := stscreds.NewAssumeRoleProvider(client, arn, func(ro *stscreds.AssumeRoleOptions) {
			ro.RoleSessionName = name
			if o.ExternalID != "" {
				ro.ExternalID = aws.String(o.ExternalID)
			}
			if o.RoleDuration > 0 {
				ro.Duration = o.RoleDuration
			}
		})
		rp := &roleProvider{inner: p, role: arn, index: i}
		if i == len(o.Roles)-1 {
			prev = rp
			break
		}
		prev = aws.NewCredentialsCache(rp, func(c *aws.CredentialsCacheOptions) { c.ExpiryWindow = time.Minute })
	}
	return prev
}

var sessionNameBad = regexp.MustCompile(`[^\w+=,.@-]+`)

// DefaultSessionName is the role session name used when none is given:
// "rds-iam-proxy@HOST.USER", so CloudTrail shows which machine and which
// person assumed the role. It fits STS's limits (2-64 characters of
// [\w+=,.@-]).
func DefaultSessionName() string {
	host, _ := os.Hostname()
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return SessionName("rds-iam-proxy", host, who)
}

// SessionName joins parts into a valid role session name: characters STS
// refuses become '-', empty parts are dropped, and the result is cut to 64
// characters.
func SessionName(prefix, host, who string) string {
	name := prefix
	if host != "" {
		name += "@" + host
	}
	if who != "" {
		name += "." + who
	}
	name = sessionNameBad.ReplaceAllString(name, "-")
	if len(name) > 64 {
		name = name[:64]
	}
	if len(name) < 2 {
		name = "rds-iam-proxy"
	}
	return name
}

// ParseRoleARNs splits a --role-arn value ("arn1,arn2") into the chain it
// names, checking each looks like a role ARN.
func ParseRoleARNs(v string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.HasPrefix(part, "arn:") || !strings.Contains(part, ":role/") {
			return nil, fmt.Errorf("--role-arn %q is not a role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME, PARTITION being aws, aws-us-gov or aws-cn)", part)
		}
		out = append(out, part)
	}
	return out, nil
}
