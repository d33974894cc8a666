package emulator

import (
	"fmt"
	"net/url"
	"strings"
	"time"
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
	if want.ResourceID == "" || want.Host == "" || want.Port == 0 || want.Region == "" {
		return tc, &TokenError{Reason: "emulator misconfigured: token target needs Host, Port, Region and ResourceID"}
	}
	v, why := a.verifyPresigned(token, presignedToken{name: "RDS", service: rdsService, params: []string{"Action", "DBUser"},
		withPort: true, maxExpires: maxTokenExpires, region: want.Region,
		request: func(host string, port int, q url.Values) string {
			switch {
			case !strings.EqualFold(host, want.Host):
				return fmt.Sprintf("token is for host %q, this endpoint is %q (tokens must name the RDS endpoint itself, not a CNAME, IP or tunnel)", host, want.Host)
			case port != want.Port:
				return fmt.Sprintf("token is for port %d, this endpoint listens on %d", port, want.Port)
			case q.Get("Action") != "connect":
				return fmt.Sprintf("Action is %q, want \"connect\"", q.Get("Action"))
			case q.Get("DBUser") != want.DBUser:
				return fmt.Sprintf("DBUser %q does not match login user %q (user names are case-sensitive)", q.Get("DBUser"), want.DBUser)
			}
			return ""
		}}, &tc)
	if why != "" {
		return tc, &TokenError{Reason: why}
	}
	caller, why := a.authorizeToken(v, rdsConnectAction, dbUserARN(want.Region, a.accountID, want.ResourceID, want.DBUser))
	if why != "" {
		return tc, &TokenError{Reason: why}
	}
	tc.caller = caller
	return tc, nil
}

// dbUserARN is the resource rds-db:connect is checked on. The emulator keeps
// its own copy of the format (rather than the proxy's authtoken.DBUserARN)
// so that it checks the proxy instead of agreeing with it.
func dbUserARN(region, account, resourceID, user string) string {
	return fmt.Sprintf("arn:%s:rds-db:%s:%s:dbuser:%s/%s", partitionOf(region), region, account, resourceID, user)
}
