package emulator

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// presignedToken says what kind of SigV4 presigned-URL token a front
// takes as a password: RDS's (service rds-db, host:port, Action=connect
// and DBUser) and Aurora DSQL's (service dsql, the bare host, Action
// DbConnect or DbConnectAdmin). verifyPresigned checks what both share,
// in one order, so the two fronts cannot drift apart.
type presignedToken struct {
	name       string   // who takes the token, for reasons: "RDS", "DSQL"
	service    string   // the credential scope's service
	params     []string // the query parameters besides the X-Amz-* ones, which are also signed
	withPort   bool     // the token names host:port (RDS) rather than the host alone (DSQL)
	maxExpires int      // the longest X-Amz-Expires taken, in seconds
	region     string   // the region the scope must name
	// request checks the endpoint and the request's own parameters (after
	// parsing, before the signature), returning a reason to reject or "".
	request func(host string, port int, q url.Values) string
}

// verifiedToken is a token whose signature held: its query and the
// credential that signed it.
type verifiedToken struct {
	q      url.Values
	akid   string
	cred   credential
	now    time.Time
	signed time.Time
}

// verifyPresigned parses token and checks, each with its own reason: the
// size, the form (host[:port], "/?" or "?", each parameter once and only
// those expected), the front's request checks, the algorithm, the
// credential scope (service, region, date), the signing time (not more
// than 5 minutes ahead, X-Amz-Expires at most maxExpires and not passed),
// the access key (known long-term key without a session token, or a
// session key issued here, unexpired, with its own session token) and the
// SigV4 signature, recomputed with the SDK's signer from the stored secret
// and compared in constant time. Authorization is the caller's.
func (a *AWS) verifyPresigned(token string, p presignedToken, tc *tokenCheck) (verifiedToken, string) {
	var v verifiedToken
	reject := func(format string, args ...any) (verifiedToken, string) {
		return v, fmt.Sprintf(format, args...)
	}
	if len(token) > maxTokenLen {
		return reject("malformed token: %d bytes, longer than %d", len(token), maxTokenLen)
	}
	endpoint, rawQuery, ok := strings.Cut(token, "?")
	if !ok {
		return reject("malformed token: no '?' before the query (is the password an IAM token at all?)")
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	host, port := endpoint, 0
	if p.withPort {
		h, portStr, err := net.SplitHostPort(endpoint)
		if err != nil {
			return reject("malformed token: endpoint %q is not host:port (the port is required)", endpoint)
		}
		port, err = strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 {
			return reject("malformed token: port %q is not a port number", portStr)
		}
		host = h
	} else if strings.ContainsAny(endpoint, ":/") {
		return reject("malformed token: endpoint %q is not a bare host name (a %s token names no port or path)", endpoint, p.service)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return reject("malformed token: query does not parse: %v", err)
	}
	for k, vals := range q {
		if len(vals) != 1 {
			return reject("malformed token: parameter %s appears %d times", k, len(vals))
		}
	}
	a.remember(q.Get("X-Amz-Signature"), q.Get("X-Amz-Security-Token"))
	for k := range q {
		switch k {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
			"X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature":
		default:
			if !slices.Contains(p.params, k) {
				return reject("malformed token: unexpected parameter %q", k)
			}
		}
	}
	if why := p.request(host, port, q); why != "" {
		return reject("%s", why)
	}

	// SigV4 parameters.
	if got := q.Get("X-Amz-Algorithm"); got != sigAlgorithm {
		return reject("X-Amz-Algorithm is %q, want %s", got, sigAlgorithm)
	}
	if got := q.Get("X-Amz-SignedHeaders"); got != "host" {
		return reject("X-Amz-SignedHeaders is %q, want \"host\"", got)
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[0] == "" {
		return reject("malformed X-Amz-Credential: want AKID/DATE/REGION/%s/aws4_request", p.service)
	}
	tc.accessKeyID = scope[0]
	akid, scopeDate, scopeRegion, scopeService := scope[0], scope[1], scope[2], scope[3]
	if scopeService != p.service {
		return reject("service %q in credential scope, want %s", scopeService, p.service)
	}
	if scope[4] != "aws4_request" {
		return reject("credential scope terminator %q, want aws4_request", scope[4])
	}
	if scopeRegion != p.region {
		return reject("region %s in credential scope, DB is in %s", scopeRegion, p.region)
	}
	dateStr := q.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDate, dateStr)
	if err != nil {
		return reject("X-Amz-Date %q is not YYYYMMDDTHHMMSSZ", dateStr)
	}
	if scopeDate != dateStr[:8] {
		return reject("credential scope date %s does not match X-Amz-Date %s", scopeDate, dateStr)
	}
	expStr := q.Get("X-Amz-Expires")
	expires, err := strconv.Atoi(expStr)
	if err != nil || expires < 1 {
		return reject("X-Amz-Expires %q is not a positive number of seconds", expStr)
	}
	if expires > p.maxExpires {
		return reject("X-Amz-Expires=%d exceeds the %d seconds %s allows", expires, p.maxExpires, p.name)
	}
	now := a.Now().UTC()
	if signedAt.After(now.Add(maxTokenFuture)) {
		return reject("token signed at %s, more than %s after the emulator clock %s (client clock ahead?)",
			signedAt.Format(time.RFC3339), maxTokenFuture, now.Format(time.RFC3339))
	}
	if expiry := signedAt.Add(time.Duration(expires) * time.Second); now.After(expiry) {
		return reject("token expired at %s (signed %s, valid %ds; emulator clock %s)",
			expiry.Format(time.RFC3339), signedAt.Format(time.RFC3339), expires, now.Format(time.RFC3339))
	}

	// Access key and session token.
	cred, ok := a.lookupCredential(akid)
	if !ok {
		return reject("unknown access key id %s", akid)
	}
	tok := q.Get("X-Amz-Security-Token")
	if cred.sessionToken == "" && tok != "" {
		return reject("long-term key %s carries an X-Amz-Security-Token", akid)
	}
	if cred.sessionToken != "" {
		if tok == "" {
			return reject("session key %s used without its X-Amz-Security-Token", akid)
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(cred.sessionToken)) != 1 {
			return reject("X-Amz-Security-Token is not the session token issued with %s", akid)
		}
		if !now.Before(cred.expires) {
			return reject("session credentials %s expired at %s (emulator clock %s); the token was signed with expired credentials",
				akid, cred.expires.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}

	// Signature.
	sig, err := presignToken(endpoint, akid, q, p, cred, scopeRegion, signedAt)
	if err != nil {
		return reject("cannot recompute signature: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(sig), []byte(q.Get("X-Amz-Signature"))) != 1 {
		return reject("signature mismatch for access key %s (wrong secret key, or the token was altered after signing)", akid)
	}
	return verifiedToken{q: q, akid: akid, cred: cred, now: now, signed: signedAt}, ""
}

// presignToken recomputes a token's signature the way the SDK builds it: a
// presigned GET of https://ENDPOINT/ with the request's parameters and
// X-Amz-Expires, empty payload, the token kind's service.
func presignToken(endpoint, akid string, q url.Values, p presignedToken, cred credential, region string, signedAt time.Time) (string, error) {
	u := &url.URL{Scheme: "https", Host: endpoint, Path: "/"}
	signed := url.Values{"X-Amz-Expires": {q.Get("X-Amz-Expires")}}
	for _, k := range p.params {
		if q.Has(k) {
			signed[k] = []string{q.Get(k)}
		}
	}
	u.RawQuery = signed.Encode()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: cred.secret, SessionToken: cred.sessionToken}
	out, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, emptyPayloadHash, p.service, region, signedAt)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	su, err := url.Parse(out)
	if err != nil {
		return "", fmt.Errorf("parse presigned url: %w", err)
	}
	return su.Query().Get("X-Amz-Signature"), nil
}

// authorizeToken checks that the token's signer may do action on resource: in
// the emulated account, and allowed by its policy with the request's
// condition keys (no network keys: neither RDS nor DSQL supplies them).
// It returns the caller, or a reason.
func (a *AWS) authorizeToken(v verifiedToken, action, resource string) (*Caller, string) {
	who := v.cred.who
	ctx := map[string]string{
		"aws:PrincipalArn":     who.principalARN,
		"aws:PrincipalAccount": who.account,
		"aws:PrincipalType":    who.kind,
		"aws:userid":           who.userID,
	}
	if who.userName != "" {
		ctx["aws:username"] = who.userName
	}
	ctx = mfaKeys(ctx, who, v.now)
	if who.account != a.accountID {
		return nil, fmt.Sprintf("%s is in account %s but the DB is in account %s: %s is only granted to principals of the DB's account (assume a role there)", who.arn, who.account, a.accountID, action)
	}
	allowed, why := who.policy.Allows(action, resource, ctx)
	if !allowed {
		return nil, fmt.Sprintf("policy: %s %s on %s for %s", why, action, resource, who.arn)
	}
	return &Caller{ARN: who.arn, AccountID: who.account, AccessKeyID: v.akid}, ""
}
