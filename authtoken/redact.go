package authtoken

import (
	"errors"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
)

// describeCredentialsFailure says why the credential chain failed in text
// fit for a client's screen and a log. Some providers quote what they were
// given: credential_process puts the command's whole output into its parse
// error, and that output holds the secret key and session token. Such
// errors get a fixed sentence; everything else is redacted as a second
// line of defence.
func describeCredentialsFailure(err error) string {
	var pe *processcreds.ProviderError
	if errors.As(err, &pe) && strings.Contains(pe.Error(), "parse failed of process output") {
		return "the profile's credential_process printed something that is not the expected credentials JSON (its output is not shown: it may hold secrets); run the command by hand to see why"
	}
	return redactSecrets(err.Error())
}

var (
	// Values of secret-named keys: JSON ("SessionToken": "..."), and
	// key=value or key:value written without a space (a query string, Go's
	// %+v). "token: open ..." in a file error is prose, not a pair.
	secretJSON = regexp.MustCompile(`(?i)("(?:secret_?access_?key|session_?token|security_?token|token|password)"\s*:\s*)"[^"]*"`)
	secretPair = regexp.MustCompile(`(?i)\b((?:secret_?access_?key|session_?token|security_?token|x-amz-security-token|x-amz-signature|password|token)[:=])([^\s,;&}"]+)`)
	// Long runs of the base64 alphabet: secret keys are 40 characters,
	// session tokens hundreds. ARNs break into shorter runs at '-' and ':'.
	longOpaque = regexp.MustCompile(`[A-Za-z0-9+/=]{40,}`)
	digit      = regexp.MustCompile(`[0-9]`)
	upper      = regexp.MustCompile(`[A-Z]`)
	lower      = regexp.MustCompile(`[a-z]`)
)

// redactSecrets removes anything in s that looks like a secret: values of
// secret-named keys, and long random-looking runs (digits and both cases:
// a long role or path name is left alone).
func redactSecrets(s string) string {
	s = secretJSON.ReplaceAllString(s, `${1}"[redacted]"`)
	s = secretPair.ReplaceAllString(s, "${1}[redacted]")
	return longOpaque.ReplaceAllStringFunc(s, func(run string) string {
		if digit.MatchString(run) && upper.MatchString(run) && lower.MatchString(run) {
			return "[redacted]"
		}
		return run
	})
}
