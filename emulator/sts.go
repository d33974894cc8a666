package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	stsVersion   = "2011-06-15"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	amzDate      = "20060102T150405Z"
	sigAlgorithm = "AWS4-HMAC-SHA256"

	maxSTSBody       = 64 << 10
	maxSignatureSkew = 15 * time.Minute
	minSessionSecs   = 900
	maxSessionSecs   = 43200
	roleChainingMax  = time.Hour

	msgInvalidToken = "The security token included in the request is invalid."
	msgExpiredToken = "The security token included in the request is expired"
	msgSigMismatch  = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

var (
	// Compiled once; regexps are safe for concurrent use and never change.
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]*$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
	regionRE      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

// Handler serves the emulated AWS endpoints on one address: paths under
// /latest/ are the EC2 instance metadata service (IMDSv2 only), everything
// else is STS (the query protocol: form-encoded POST or GET with Action=...).
// Point the SDK at it with AWS_ENDPOINT_URL_STS and
// AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (a *AWS) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answer with the emulator's clock, as AWS answers with its own:
		// the SDK corrects its clock skew from this header.
		w.Header().Set("Date", a.Now().UTC().Format(http.TimeFormat))
		if r.URL.Path == "/latest" || strings.HasPrefix(r.URL.Path, "/latest/") {
			if f, ok := a.takeFault(FaultIMDS); ok && !a.applyFault(r, f, FaultIMDS) {
				if f.Status != 0 && r.Context().Err() == nil {
					imdsText(w, f.Status, http.StatusText(f.Status))
				}
				return
			}
			a.serveIMDS(w, r)
			return
		}
		if r.URL.Path == ssoCredentialsPath {
			a.serveSSO(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, containerV1Path) || strings.HasPrefix(r.URL.Path, containerV2Path) {
			a.serveContainer(w, r)
			return
		}
		if a.serveAPI(w, r) {
			return
		}
		a.serveSTS(w, r)
	})
}

// stsError is an STS error answer, plus the precise reason for the log.
type stsError struct {
	status  int
	code    string
	message string // what the client sees, as real STS words it
	reason  string // what the log sees; defaults to message
}

func newSTSError(status int, code, message, reason string) *stsError {
	if reason == "" {
		reason = message
	}
	return &stsError{status: status, code: code, message: message, reason: reason}
}

func validationError(field, constraint, value string) *stsError {
	v := "null"
	if value != "" {
		v = "'" + value + "'"
	}
	return newSTSError(http.StatusBadRequest, "ValidationError",
		fmt.Sprintf("1 validation error detected: Value %s at '%s' failed to satisfy constraint: %s", v, field, constraint), "")
}

func (a *AWS) serveSTS(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	params, body, serr := readSTSRequest(w, r)
	action := params.Get("Action")
	log := a.log.With("service", "sts", "action", action, "request_id", reqID)

	var resp any
	if serr == nil {
		if f, ok := a.takeFault("sts:"+action, FaultSTS); ok && !a.applyFault(r, f, "sts:"+action) {
			if f.Status == 0 || r.Context().Err() != nil {
				return
			}
			serr = newSTSError(f.Status, f.Code, f.Message, "injected fault")
		}
	}
	if serr == nil && params.Get("Version") != stsVersion {
		serr = newSTSError(http.StatusBadRequest, "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version %s", action, params.Get("Version")), "")
	}
	if serr == nil {
		switch action {
		case "GetCallerIdentity":
			resp, serr = a.getCallerIdentity(r, body, log)
		case "AssumeRole":
			resp, serr = a.assumeRole(r, body, params, log)
		case "AssumeRoleWithWebIdentity":
			resp, serr = a.assumeRoleWithWebIdentity(params, log)
		case "GetSessionToken":
			resp, serr = a.getSessionToken(r, body, params)
		case "GetAccessKeyInfo":
			resp, serr = a.getAccessKeyInfo(r, body, params)
		default:
			serr = newSTSError(http.StatusBadRequest, "InvalidAction",
				fmt.Sprintf("Could not find operation %s for version %s", action, stsVersion), "")
		}
	}
	if serr != nil {
		log.Warn("sts request rejected", "status", serr.status, "code", serr.code, "reason", serr.reason)
		writeXML(w, reqID, serr.status, errorResponse{
			Xmlns:     stsNamespace,
			Error:     errorBody{Type: errorType(serr.status), Code: serr.code, Message: serr.message},
			RequestID: reqID,
		})
		return
	}
	setRequestID(resp, reqID)
	writeXML(w, reqID, http.StatusOK, resp)
}

func errorType(status int) string {
	if status >= 500 {
		return "Receiver"
	}
	return "Sender"
}

// readSTSRequest returns the request's parameters (query and form body) and
// the raw body, which signature verification hashes.
func readSTSRequest(w http.ResponseWriter, r *http.Request) (url.Values, []byte, *stsError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return url.Values{}, nil, newSTSError(http.StatusMethodNotAllowed, "InvalidAction",
			"STS accepts only GET and POST", "method "+r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSTSBody))
	if err != nil {
		return url.Values{}, nil, newSTSError(http.StatusBadRequest, "ValidationError",
			"Unable to read the request body", fmt.Sprintf("read body: %v", err))
	}
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return url.Values{}, nil, newSTSError(http.StatusBadRequest, "MalformedQueryString",
			"The query string is malformed", fmt.Sprintf("parse query: %v", err))
	}
	if r.Method == http.MethodPost && len(body) > 0 {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return url.Values{}, nil, newSTSError(http.StatusBadRequest, "MalformedQueryString",
				"The request body is not a valid form", fmt.Sprintf("parse form body: %v", err))
		}
		for k, v := range form {
			params[k] = append(params[k], v...)
		}
	}
	return params, body, nil
}

// sigV4Auth is a parsed SigV4 Authorization header.
type sigV4Auth struct {
	accessKeyID, date, region, service, terminator string
	signedHeaders                                  string
	signature                                      string
}

func parseAuthorization(h string) (sigV4Auth, *stsError) {
	incomplete := func(msg string) (sigV4Auth, *stsError) {
		return sigV4Auth{}, newSTSError(http.StatusForbidden, "IncompleteSignature", msg, "")
	}
	rest, ok := strings.CutPrefix(h, sigAlgorithm+" ")
	if !ok {
		alg, _, _ := strings.Cut(h, " ")
		return incomplete(fmt.Sprintf("Unsupported AWS 'algorithm': '%s'", alg))
	}
	var au sigV4Auth
	var credential string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			au.signedHeaders = v
		case "Signature":
			au.signature = v
		}
	}
	for name, v := range map[string]string{"Credential": credential, "SignedHeaders": au.signedHeaders, "Signature": au.signature} {
		if v == "" {
			return incomplete(fmt.Sprintf("Authorization header requires '%s' parameter.", name))
		}
	}
	fields := strings.Split(credential, "/")
	if len(fields) != 5 || fields[0] == "" {
		return incomplete("Credential should have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term")
	}
	au.accessKeyID, au.date, au.region, au.service, au.terminator = fields[0], fields[1], fields[2], fields[3], fields[4]
	return au, nil
}

// authenticate verifies the SigV4 signature of an STS request the way AWS
// does: it finds the secret for the access key id, re-signs a copy of the
// request carrying only the headers the client signed, and compares.
func (a *AWS) authenticate(r *http.Request, body []byte) (principal, *stsError) {
	return a.authenticateFor(r, body, "sts")
}

// authenticateFor is authenticate for requests signed for service (sts,
// rds, iam).
func (a *AWS) authenticateFor(r *http.Request, body []byte, service string) (principal, *stsError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, newSTSError(http.StatusForbidden, "MissingAuthenticationToken",
			"Request is missing Authentication Token", "no Authorization header (presigned STS requests are not emulated)")
	}
	au, serr := parseAuthorization(h)
	if serr != nil {
		return principal{}, serr
	}
	a.remember(au.signature)
	mismatch := func(msg, reason string) (principal, *stsError) {
		return principal{}, newSTSError(http.StatusForbidden, "SignatureDoesNotMatch", msg, reason)
	}

	dateHdr := r.Header.Get("X-Amz-Date")
	if dateHdr == "" {
		return principal{}, newSTSError(http.StatusForbidden, "IncompleteSignature",
			"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.", "")
	}
	signedAt, err := time.Parse(amzDate, dateHdr)
	if err != nil {
		return principal{}, newSTSError(http.StatusForbidden, "IncompleteSignature",
			fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", dateHdr), "")
	}
	if au.date != dateHdr[:8] {
		return mismatch(fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			au.date, dateHdr[:8], dateHdr), "")
	}
	if au.service != service {
		return mismatch("Credential should be scoped to correct service: '"+service+"'. ", "credential scope names service "+au.service)
	}
	if au.terminator != "aws4_request" {
		return mismatch(fmt.Sprintf("Credential should be scoped with a valid terminator: 'aws4_request', not '%s'. ", au.terminator), "")
	}
	if !regionRE.MatchString(au.region) {
		return mismatch("Credential should be scoped to a valid region. ", "credential scope region "+strconv.Quote(au.region))
	}

	now := a.Now().UTC()
	if signedAt.Before(now.Add(-maxSignatureSkew)) {
		return mismatch(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			dateHdr, now.Add(-maxSignatureSkew).Format(amzDate), now.Format(amzDate)), "")
	}
	if signedAt.After(now.Add(maxSignatureSkew)) {
		return mismatch(fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 15 min.)",
			dateHdr, now.Add(maxSignatureSkew).Format(amzDate), now.Format(amzDate)), "")
	}

	cred, ok := a.lookupCredential(au.accessKeyID)
	if !ok {
		return principal{}, newSTSError(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken,
			"unknown access key id "+au.accessKeyID)
	}
	tok := r.Header.Get("X-Amz-Security-Token")
	a.remember(tok)
	if cred.sessionToken == "" && tok != "" {
		return principal{}, newSTSError(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken,
			"long-term key "+au.accessKeyID+" sent with an X-Amz-Security-Token")
	}
	if cred.sessionToken != "" {
		if tok == "" {
			return principal{}, newSTSError(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken,
				"session key "+au.accessKeyID+" sent without its X-Amz-Security-Token")
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(cred.sessionToken)) != 1 {
			return principal{}, newSTSError(http.StatusForbidden, "InvalidClientTokenId", msgInvalidToken,
				"X-Amz-Security-Token is not the token issued with session key "+au.accessKeyID)
		}
		if !now.Before(cred.expires) {
			return principal{}, newSTSError(http.StatusForbidden, "ExpiredToken", msgExpiredToken,
				fmt.Sprintf("session key %s expired at %s (emulator clock %s)", au.accessKeyID,
					cred.expires.UTC().Format(time.RFC3339), now.Format(time.RFC3339)))
		}
	}

	want, wantHeaders, err := signRequestCopy(r, body, au, cred, signedAt)
	if err != nil {
		return principal{}, newSTSError(http.StatusInternalServerError, "InternalFailure",
			"The request processing has failed because of an unknown error.", fmt.Sprintf("re-sign request: %v", err))
	}
	if wantHeaders != au.signedHeaders {
		return mismatch(msgSigMismatch, fmt.Sprintf("signed headers %q, but the request carries %q of them",
			au.signedHeaders, wantHeaders))
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(au.signature)) != 1 {
		return mismatch(msgSigMismatch, "signature mismatch for access key "+au.accessKeyID+
			" (wrong secret key, or the request was changed after signing)")
	}
	return cred.who, nil
}

// signRequestCopy rebuilds r with only the headers the client signed and the
// same body, signs it with the SDK's signer using the stored secret, and
// returns the signature and signed-headers list that produced.
func signRequestCopy(r *http.Request, body []byte, au sigV4Auth, cred credential, signedAt time.Time) (sig, signedHeaders string, err error) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return "", "", fmt.Errorf("build request copy: %w", err)
	}
	req.Host = r.Host
	names := strings.Split(au.signedHeaders, ";")
	for _, name := range names {
		if name == "host" || name == "content-length" {
			continue
		}
		if vals := r.Header.Values(name); len(vals) > 0 {
			req.Header[textproto.CanonicalMIMEHeaderKey(name)] = slices.Clone(vals)
		}
	}
	if slices.Contains(names, "content-length") {
		req.ContentLength = int64(len(body))
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: au.accessKeyID, SecretAccessKey: cred.secret, SessionToken: cred.sessionToken}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, hex.EncodeToString(sum[:]), au.service, au.region, signedAt); err != nil {
		return "", "", fmt.Errorf("sign request copy: %w", err)
	}
	got, serr := parseAuthorization(req.Header.Get("Authorization"))
	if serr != nil {
		return "", "", fmt.Errorf("parse own signature: %s", serr.message)
	}
	return got.signature, got.signedHeaders, nil
}

func (a *AWS) getCallerIdentity(r *http.Request, body []byte, log *slog.Logger) (any, *stsError) {
	who, serr := a.authenticate(r, body)
	if serr != nil {
		return nil, serr
	}
	log.Info("sts caller identified", "caller", who.arn, "access_key_id", who.accessKeyID)
	resp := &getCallerIdentityResponse{Xmlns: stsNamespace}
	resp.Result.Arn = who.arn
	resp.Result.UserID = who.userID
	resp.Result.Account = who.account
	return resp, nil
}

// sessionParams validates the parameters AssumeRole and
// AssumeRoleWithWebIdentity share, and returns the session duration.
func (a *AWS) sessionParams(params url.Values) (string, time.Duration, *stsError) {
	if params.Get("RoleArn") == "" {
		return "", 0, validationError("roleArn", "Member must not be null", "")
	}
	name := params.Get("RoleSessionName")
	switch {
	case name == "":
		return "", 0, validationError("roleSessionName", "Member must not be null", "")
	case len(name) < 2:
		return "", 0, validationError("roleSessionName", "Member must have length greater than or equal to 2", name)
	case len(name) > 64:
		return "", 0, validationError("roleSessionName", "Member must have length less than or equal to 64", name)
	case !sessionNameRE.MatchString(name):
		return "", 0, validationError("roleSessionName", `Member must satisfy regular expression pattern: [\w+=,.@-]*`, name)
	}
	d := a.SessionDuration()
	if v := params.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return "", 0, newSTSError(http.StatusBadRequest, "ValidationError",
				fmt.Sprintf("Value '%s' for parameter DurationSeconds is invalid. Must be an integer.", v), "")
		case n < minSessionSecs:
			return "", 0, validationError("durationSeconds", "Member must have value greater than or equal to 900", v)
		case n > maxSessionSecs:
			return "", 0, validationError("durationSeconds", "Member must have value less than or equal to 43200", v)
		}
		d = time.Duration(n) * time.Second
	}
	return name, d, nil
}

func (a *AWS) assumeRole(r *http.Request, body []byte, params url.Values, log *slog.Logger) (any, *stsError) {
	who, serr := a.authenticate(r, body)
	if serr != nil {
		return nil, serr
	}
	sessionName, d, serr := a.sessionParams(params)
	if serr != nil {
		return nil, serr
	}
	roleARN := params.Get("RoleArn")
	externalID := params.Get("ExternalId")
	if externalID != "" {
		switch {
		case len(externalID) < 2 || len(externalID) > 1224:
			return nil, validationError("externalId", "Member must have length between 2 and 1224", externalID)
		case !externalIDRE.MatchString(externalID):
			return nil, validationError("externalId", `Member must satisfy regular expression pattern: [\w+=,.@:\/-]*`, externalID)
		}
	}
	if who.session && who.kind == "AssumedRole" {
		// Role chaining: AWS caps these sessions at one hour. (A
		// GetSessionToken session assuming a role is not chaining.)
		if params.Get("DurationSeconds") != "" && d > roleChainingMax {
			return nil, newSTSError(http.StatusBadRequest, "ValidationError",
				"The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.", "")
		}
		d = min(d, roleChainingMax)
	}
	denied := newSTSError(http.StatusForbidden, "AccessDenied",
		fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", who.arn, roleARN), "")

	role, serr := a.roleOrDenied(roleARN, denied)
	if serr != nil {
		return nil, serr
	}
	// MFA: a code checked now, or the MFA context of the calling session.
	mfa, mfaAt := who.mfa, who.mfaAt
	serial := params.Get("SerialNumber")
	if serial != "" {
		at, serr := a.checkMFA(who, serial, params.Get("TokenCode"))
		if serr != nil {
			return nil, serr
		}
		mfa, mfaAt = true, at
	}
	caller := who
	caller.mfa, caller.mfaAt = mfa, mfaAt
	if serial != "" {
		// The code makes this request an MFA-authenticated one, even
		// from long-term keys.
		caller.session = true
	}
	if err := a.checkTrust(assumeRequest{action: "sts:AssumeRole", roleARN: role.arn, roleName: role.name,
		callerARN: who.arn, caller: caller, externalID: externalID, keys: mfaKeys(nil, caller, a.Now())}); err != nil {
		denied.reason = err.Error()
		return nil, denied
	}

	a.mu.Lock()
	s := a.issueSessionLocked(role, sessionName, d, externalID, who.arn)
	s.mfa, s.mfaAt = mfa, mfaAt
	assumed := a.sessionPrincipalLocked(s)
	a.mu.Unlock()
	if serial != "" {
		a.countCall("AssumeRoleMFA")
	} else {
		a.countCall("AssumeRole")
	}
	log.Info("sts role assumed", "caller", who.arn, "role", role.arn, "session", assumed.arn,
		"access_key_id", s.accessKeyID, "external_id", externalID, "mfa", mfa, "expires", s.expires.Format(time.RFC3339))

	resp := &assumeRoleResponse{Xmlns: stsNamespace}
	resp.Result.AssumedRoleUser = assumedRoleUser{Arn: assumed.arn, AssumedRoleID: assumed.userID}
	resp.Result.Credentials = stsCredentialsOf(s)
	return resp, nil
}

// webIdentityClaims are the claims of a verified web identity token that
// the trust policy checks and STS echoes.
type webIdentityClaims struct {
	subject, audience, issuer string
}

func (a *AWS) assumeRoleWithWebIdentity(params url.Values, log *slog.Logger) (any, *stsError) {
	sessionName, d, serr := a.sessionParams(params)
	if serr != nil {
		return nil, serr
	}
	token := params.Get("WebIdentityToken")
	if token == "" {
		return nil, validationError("webIdentityToken", "Member must not be null", "")
	}
	if len(token) < 4 {
		return nil, validationError("webIdentityToken", "Member must have length greater than or equal to 4", "***")
	}
	if len(token) > maxWebIdentityToken {
		return nil, validationError("webIdentityToken", "Member must have length less than or equal to 20000", "***")
	}
	a.remember(token)
	claims, serr := a.verifyWebIdentity(token)
	if serr != nil {
		return nil, serr
	}
	roleARN := params.Get("RoleArn")
	denied := newSTSError(http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", "")
	role, serr := a.roleOrDenied(roleARN, denied)
	if serr != nil {
		return nil, serr
	}
	if err := a.checkTrust(assumeRequest{action: "sts:AssumeRoleWithWebIdentity", roleARN: role.arn,
		roleName: role.name, webIdentity: claims}); err != nil {
		denied.reason = err.Error()
		return nil, denied
	}

	a.mu.Lock()
	s := a.issueSessionLocked(role, sessionName, d, "", "web identity "+claims.subject)
	assumed := a.sessionPrincipalLocked(s)
	a.mu.Unlock()
	log.Info("sts role assumed with web identity", "role", role.arn, "session", assumed.arn,
		"subject", claims.subject, "issuer", claims.issuer, "access_key_id", s.accessKeyID,
		"expires", s.expires.Format(time.RFC3339))

	resp := &assumeRoleWithWebIdentityResponse{Xmlns: stsNamespace}
	resp.Result.SubjectFromWebIdentityToken = claims.subject
	resp.Result.Audience = claims.audience
	resp.Result.AssumedRoleUser = assumedRoleUser{Arn: assumed.arn, AssumedRoleID: assumed.userID}
	resp.Result.Credentials = stsCredentialsOf(s)
	if iss := strings.TrimPrefix(claims.issuer, "https://"); iss != "" {
		resp.Result.Provider = "arn:" + a.Partition() + ":iam::" + role.account + ":oidc-provider/" + iss
	}
	return resp, nil
}

// STS answers, shaped like the real service's.

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

func stsCredentialsOf(s *session) stsCredentials {
	return stsCredentials{
		AccessKeyID:     s.accessKeyID,
		SecretAccessKey: s.secret,
		SessionToken:    s.token,
		Expiration:      s.expires.UTC().Format(time.RFC3339),
	}
}

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
		Credentials     stsCredentials  `xml:"Credentials"`
	} `xml:"AssumeRoleResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		SubjectFromWebIdentityToken string          `xml:"SubjectFromWebIdentityToken"`
		Audience                    string          `xml:"Audience,omitempty"`
		AssumedRoleUser             assumedRoleUser `xml:"AssumedRoleUser"`
		Credentials                 stsCredentials  `xml:"Credentials"`
		Provider                    string          `xml:"Provider,omitempty"`
	} `xml:"AssumeRoleWithWebIdentityResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type errorBody struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type errorResponse struct {
	XMLName   xml.Name  `xml:"ErrorResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	Error     errorBody `xml:"Error"`
	RequestID string    `xml:"RequestId"`
}

func setRequestID(resp any, id string) {
	switch v := resp.(type) {
	case *getCallerIdentityResponse:
		v.ResponseMetadata.RequestID = id
	case *assumeRoleResponse:
		v.ResponseMetadata.RequestID = id
	case *assumeRoleWithWebIdentityResponse:
		v.ResponseMetadata.RequestID = id
	case *getSessionTokenResponse:
		v.ResponseMetadata.RequestID = id
	case *getAccessKeyInfoResponse:
		v.ResponseMetadata.RequestID = id
	}
}

func writeXML(w http.ResponseWriter, reqID string, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		// Only reachable by a programming error in the types above.
		http.Error(w, "emulator: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", reqID)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
