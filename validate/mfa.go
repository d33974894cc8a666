package validate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
)

// MFA in doctor and whoami: whether the credentials carry MFA, and whether
// the rds-db:connect decision hangs on it. The policy simulator never
// supplies the caller's own MFA keys, so a policy that requires MFA is
// "implicitDeny, missing aws:MultiFactorAuthPresent" (or explicitDeny, for
// AWS's "Deny when BoolIfExists aws:MultiFactorAuthPresent false") to
// every caller. Doctor asks again with the MFA keys supplied: a decision
// that flips to allowed is one that MFA decides.

// MFALine says whether credentials carry MFA: known when the proxy did the
// MFA step itself; long-term keys never do; otherwise unknown (SSO, a
// role's session, keys from elsewhere). It is whoami's "MFA:" line and part
// of doctor's credentials step.
func MFALine(st authtoken.MFAState, accessKeyID string, canExpire bool) string {
	switch {
	case st.Configured && st.Present:
		line := "yes (device " + st.Serial + ", from " + st.From
		if !st.Ends.IsZero() {
			line += "; a new code is needed after " + st.Ends.UTC().Format(time.RFC3339)
		}
		return line + ")"
	case st.Configured:
		return "no (device " + st.Serial + " configured, no MFA session yet)"
	case longTermKeys(accessKeyID, canExpire):
		return "no (long-term keys carry no MFA)"
	}
	return "unknown (the credentials came from elsewhere; the proxy did not do MFA itself)"
}

// longTermKeys reports an IAM user's long-term access key: one that does
// not expire and is not a temporary key. Session keys handed over in
// AWS_SESSION_TOKEN do not say when they expire either, but their ids
// start with ASIA (long-term ones with AKIA), as AWS documents.
func longTermKeys(accessKeyID string, canExpire bool) bool {
	return accessKeyID != "" && !canExpire && !strings.HasPrefix(accessKeyID, "ASIA")
}

// mfaCarried is what doctor knows of its credentials' MFA: yes, no, or
// unknown.
type mfaCarried int

const (
	mfaUnknown mfaCarried = iota
	mfaNo
	mfaYes
)

func (d *doctor) mfaCarried() mfaCarried {
	switch {
	case d.mfa.Configured && d.mfa.Present:
		return mfaYes
	case d.mfa.Configured, longTermKeys(d.creds.AccessKeyID, d.creds.CanExpire):
		return mfaNo
	}
	return mfaUnknown
}

// maxMFAAge is the longest an MFA session can be (GetSessionToken's 36
// hours): a policy that refuses MFA this old limits aws:MultiFactorAuthAge.
const maxMFAAge = 36 * time.Hour

// mfaContext is the simulator's context for a request made with MFA
// checked age ago.
func mfaContext(age time.Duration) []iamtypes.ContextEntry {
	return []iamtypes.ContextEntry{
		{ContextKeyName: aws.String("aws:MultiFactorAuthPresent"), ContextKeyType: iamtypes.ContextKeyTypeEnumBoolean, ContextKeyValues: []string{"true"}},
		{ContextKeyName: aws.String("aws:MultiFactorAuthAge"), ContextKeyType: iamtypes.ContextKeyTypeEnumNumeric,
			ContextKeyValues: []string{strconv.FormatInt(int64(max(age, time.Second)/time.Second), 10)}},
	}
}

// mfaPolicy is the policy step's answer when rds-db:connect was not
// allowed without the MFA keys: ok is false when MFA does not decide it
// (the decision stays a refusal with fresh MFA too, or the simulator could
// not be asked again), and the step goes on explaining the refusal.
func (d *doctor) mfaPolicy(ctx context.Context, client *iam.Client, source, arn string) (Check, bool) {
	fresh, err := SimulateConnect(ctx, client, source, arn, mfaContext(time.Second)...)
	if err != nil || fresh.Decision != "allowed" {
		return Check{}, false
	}
	// Does the age matter? A session as old as any can be is refused
	// only by a policy that limits aws:MultiFactorAuthAge.
	old, err := SimulateConnect(ctx, client, source, arn, mfaContext(maxMFAAge)...)
	ageLimited := err == nil && old.Decision != "allowed"
	keys := "aws:MultiFactorAuthPresent"
	if ageLimited {
		keys += " and aws:MultiFactorAuthAge (a recent code)"
	}
	need := fmt.Sprintf("the policies of %s allow rds-db:connect on %s only with MFA (%s)", source, arn, keys)
	carried := "; MFA of these credentials: " + MFALine(d.mfa, d.creds.AccessKeyID, d.creds.CanExpire)
	c := Check{Name: StepPolicy}
	switch d.mfaCarried() {
	case mfaYes:
		if !ageLimited {
			c.Status, c.Detail = OK, need+carried
			return c, true
		}
		if !d.mfaAt.IsZero() {
			// The code was typed for this run: the session is as old
			// as this run's MFA step.
			now, err := SimulateConnect(ctx, client, source, arn, mfaContext(time.Since(d.mfaAt))...)
			if err == nil && now.Decision == "allowed" {
				c.Status, c.Detail = OK, need+carried+", checked moments ago"
				return c, true
			}
		}
		c.Status = Warn
		c.Detail = need + carried + ", which may be older than the policy allows"
		c.Fix = "if the login is refused, start a new MFA session: " + mfaFix(d.mfa, true)
		return c, true
	case mfaNo:
		c.Status = Fail
		c.Detail = "MFA required: " + need + carried + "; RDS rejects their tokens (\"PAM authentication failed\" / \"Access denied\")"
		c.Fix = mfaFix(d.mfa, ageLimited)
		return c, true
	}
	c.Status = Warn
	c.Detail = need + carried + "; without MFA RDS rejects their tokens"
	c.Fix = mfaFix(d.mfa, ageLimited)
	return c, true
}

// mfaFix is how to get credentials with MFA (recent MFA when fresh).
func mfaFix(st authtoken.MFAState, fresh bool) string {
	var b strings.Builder
	if fresh {
		b.WriteString("type a fresh MFA code (the policy limits aws:MultiFactorAuthAge, the time since the code was checked): ")
	}
	switch {
	case st.Profile != "":
		fmt.Fprintf(&b, "run in a terminal with profile %q (mfa_serial %s) and type the code when asked, or pass --mfa-code CODE", st.Profile, st.Serial)
	case st.Serial != "":
		fmt.Fprintf(&b, "pass --mfa-serial %s with --mfa-code CODE, or run in a terminal and type the code when asked", st.Serial)
	default:
		b.WriteString("use a profile with mfa_serial (role_arn and source_profile) and type the code when asked, " +
			"or pass --mfa-serial arn:aws:iam::ACCOUNT:mfa/NAME (your MFA device: aws iam list-mfa-devices) with --mfa-code CODE, or run in a terminal without --mfa-code to be asked")
	}
	if fresh && st.Profile != "" {
		b.WriteString("; a session in the AWS CLI cache keeps its old MFA age: remove it from ~/.aws/cli/cache first")
	}
	return b.String()
}
