package emulator

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	rdsService       = "rds-db"
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	maxTokenLen      = 16 << 10
	maxTokenExpires  = 900 // seconds; RDS tokens live 15 minutes
	maxTokenFuture   = 5 * time.Minute
)

// TokenTarget is the database a token is presented to: what RDS knows about
// itself when a client logs in.
type TokenTarget struct {
	// Host and Port are the endpoint the database front serves, e.g.
	// mydb.c0ffee123456.us-east-1.rds.amazonaws.com and 5432. The token must
	// have been built for exactly this endpoint (host compared
	// case-insensitively).
	Host string
	Port int
	// Region is the database's region; the token's credential scope must
	// name it.
	Region string
	// DBUser is the user the client logs in as. It must equal the token's
	// DBUser exactly: database user names are case-sensitive.
	DBUser string
	// ResourceID is the instance's resource id (DbiResourceId, e.g.
	// "db-EMULATEDINSTANCE1"), or a cluster's or proxy's. The caller's policy
	// must allow rds-db:connect on
	// arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCEID/DBUSER.
	ResourceID string
}

// Caller is the AWS principal a valid token was signed by.
type Caller struct {
	ARN         string // arn:aws:iam::ACCOUNT:user/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
	AccountID   string
	AccessKeyID string
}

// TokenError is the error [AWS.VerifyRDSToken] returns for a token it
// rejects. RDS tells the client nothing more than "PAM authentication failed";
// Reason says what was really wrong, for logs and test assertions. It never
// contains the token, its signature, a session token or a secret key.
type TokenError struct {
	Reason string
}

func (e *TokenError) Error() string { return "rds iam token rejected: " + e.Reason }

// VerifyRDSToken checks an RDS IAM authentication token as RDS does when a
// client logs in with it as its password, and returns who signed it.
//
// It accepts the token both with and without a "/" before the query
// ("host:port/?Action=connect&..." and "host:port?Action=connect&...", the
// latter being what aws-sdk-go-v2 feature/rds/auth v1.7.9 emits), then
// checks, each with its own [TokenError.Reason]: the endpoint (host and port
// must equal want's), Action=connect, DBUser (exact), the algorithm, the
// credential scope (service rds-db, want's region, the signing date), the
// signing time (not more than 5 minutes ahead of the emulator clock, X-Amz-Expires
// at most 900 and not yet passed), the access key (a known long-term key
// without a session token, or a session key issued here, unexpired, presented
// with its own session token), the SigV4 signature (recomputed with the SDK's
// signer from the stored secret, compared in constant time), and finally that
// the principal's policy allows rds-db:connect on the dbuser ARN. RDS supplies
// no network condition keys, so none are given to the policy.
func (a *AWS) VerifyRDSToken(token string, want TokenTarget) (*Caller, error) {
	t, err := a.verifyRDSToken(token, want)
	if err != nil {
		a.log.Warn("rds iam token rejected", "host", want.Host, "port", want.Port,
			"db_user", want.DBUser, "access_key_id", t.accessKeyID, "reason", err.Reason)
		return nil, err
	}
	a.log.Info("rds iam token accepted", "host", want.Host, "port", want.Port,
		"db_user", want.DBUser, "caller", t.caller.ARN, "access_key_id", t.accessKeyID)
	return t.caller, nil
}

// tokenCheck carries what is known about a token so far, for the log line.
type tokenCheck struct {
	accessKeyID string
	caller      *Caller
}

func (a *AWS) verifyRDSToken(token string, want TokenTarget) (tokenCheck, *TokenError) {
	var tc tokenCheck
	reject := func(format string, args ...any) (tokenCheck, *TokenError) {
		return tc, &TokenError{Reason: fmt.Sprintf(format, args...)}
	}
	if want.ResourceID == "" || want.Host == "" || want.Port == 0 || want.Region == "" {
		return reject("emulator misconfigured: token target needs Host, Port, Region and ResourceID")
	}

	// Parse.
	if len(token) > maxTokenLen {
		return reject("malformed token: %d bytes, longer than %d", len(token), maxTokenLen)
	}
	hostport, rawQuery, ok := strings.Cut(token, "?")
	if !ok {
		return reject("malformed token: no '?' before the query (is the password an IAM token at all?)")
	}
	hostport = strings.TrimSuffix(hostport, "/")
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return reject("malformed token: endpoint %q is not host:port (the port is required)", hostport)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return reject("malformed token: port %q is not a port number", portStr)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return reject("malformed token: query does not parse: %v", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return reject("malformed token: parameter %s appears %d times", k, len(v))
		}
	}
	a.remember(q.Get("X-Amz-Signature"), q.Get("X-Amz-Security-Token"))
	for k := range q {
		switch k {
		case "Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
			"X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature":
		default:
			return reject("malformed token: unexpected parameter %q", k)
		}
	}

	// Endpoint and request.
	if !strings.EqualFold(host, want.Host) {
		return reject("token is for host %q, this endpoint is %q (tokens must name the RDS endpoint itself, not a CNAME, IP or tunnel)", host, want.Host)
	}
	if port != want.Port {
		return reject("token is for port %d, this endpoint listens on %d", port, want.Port)
	}
	if got := q.Get("Action"); got != "connect" {
		return reject("Action is %q, want \"connect\"", got)
	}
	if got := q.Get("DBUser"); got != want.DBUser {
		return reject("DBUser %q does not match login user %q (user names are case-sensitive)", got, want.DBUser)
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
		return reject("malformed X-Amz-Credential: want AKID/DATE/REGION/rds-db/aws4_request")
	}
	tc.accessKeyID = scope[0]
	akid, scopeDate, scopeRegion, scopeService := scope[0], scope[1], scope[2], scope[3]
	if scopeService != rdsService {
		return reject("service %q in credential scope, want %s", scopeService, rdsService)
	}
	if scope[4] != "aws4_request" {
		return reject("credential scope terminator %q, want aws4_request", scope[4])
	}
	if scopeRegion != want.Region {
		return reject("region %s in credential scope, DB is in %s", scopeRegion, want.Region)
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
	if expires > maxTokenExpires {
		return reject("X-Amz-Expires=%d exceeds the %d seconds RDS allows", expires, maxTokenExpires)
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
	sig, err := presignRDSToken(hostport, akid, q, cred, scopeRegion, signedAt)
	if err != nil {
		return reject("cannot recompute signature: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(sig), []byte(q.Get("X-Amz-Signature"))) != 1 {
		return reject("signature mismatch for access key %s (wrong secret key, or the token was altered after signing)", akid)
	}

	// Authorization.
	who := cred.who
	resource := dbUserARN(want.Region, a.accountID, want.ResourceID, want.DBUser)
	ctx := map[string]string{
		"aws:PrincipalArn":     who.principalARN,
		"aws:PrincipalAccount": who.account,
		"aws:PrincipalType":    who.kind,
		"aws:userid":           who.userID,
	}
	if who.userName != "" {
		ctx["aws:username"] = who.userName
	}
	ctx = mfaKeys(ctx, who, now)
	if who.account != a.accountID {
		return reject("%s is in account %s but the DB is in account %s: rds-db:connect is only granted to principals of the DB's account (assume a role there)", who.arn, who.account, a.accountID)
	}
	allowed, why := who.policy.Allows(rdsConnectAction, resource, ctx)
	if !allowed {
		return reject("policy: %s rds-db:connect on %s for %s", why, resource, who.arn)
	}
	tc.caller = &Caller{ARN: who.arn, AccountID: who.account, AccessKeyID: akid}
	return tc, nil
}

// presignRDSToken recomputes the signature of a token the way
// feature/rds/auth builds it: a presigned GET of https://host:port/ with
// Action, DBUser and X-Amz-Expires, empty payload, service rds-db.
func presignRDSToken(hostport, akid string, q url.Values, cred credential, region string, signedAt time.Time) (string, error) {
	u := &url.URL{Scheme: "https", Host: hostport, Path: "/"}
	u.RawQuery = url.Values{
		"Action":        {q.Get("Action")},
		"DBUser":        {q.Get("DBUser")},
		"X-Amz-Expires": {q.Get("X-Amz-Expires")},
	}.Encode()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	creds := aws.Credentials{
		AccessKeyID:     akid,
		SecretAccessKey: cred.secret,
		SessionToken:    cred.sessionToken,
	}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, emptyPayloadHash, rdsService, region, signedAt)
	if err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	su, err := url.Parse(signed)
	if err != nil {
		return "", fmt.Errorf("parse presigned url: %w", err)
	}
	return su.Query().Get("X-Amz-Signature"), nil
}

// dbUserARN is the resource rds-db:connect is checked on. The emulator keeps
// its own copy of the format (rather than the proxy's authtoken.DBUserARN)
// so that it checks the proxy instead of agreeing with it.
func dbUserARN(region, account, resourceID, user string) string {
	return fmt.Sprintf("arn:%s:rds-db:%s:%s:dbuser:%s/%s", partitionOf(region), region, account, resourceID, user)
}
