package validate

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/sqlquote"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// Names of doctor's steps, in the order they run.
const (
	StepCredentials = "aws credentials"
	StepCallerID    = "sts:GetCallerIdentity"
	StepClock       = "clock"
	StepEndpoint    = "endpoint"
	StepDNS         = "dns"
	StepTCP         = "tcp"
	StepTLS         = "tls"
	StepIAMAuth     = "iam database authentication"
	StepPolicy      = "rds-db:connect policy"
	StepLogin       = "token login"
	StepDatabase    = "database"
)

// MaxClockSkew is how far this machine's clock may be from AWS's before
// tokens are refused: RDS rejects a token signed more than 5 minutes in
// its future, and one signed 15 minutes in its past has expired.
const MaxClockSkew = 5 * time.Minute

// DoctorOptions say what doctor checks: the upstream as the proxy would
// be configured for it, and the database user.
type DoctorOptions struct {
	// Config is the upstream's settings, as run takes them: engine,
	// endpoint, dial address, region, TLS and CA bundle, profile, roles.
	Config launch.Config
	// DBUser is the database user to log in as (case-sensitive).
	DBUser string
	// Database is the database to log in to; default "postgres" for
	// PostgreSQL, none for MySQL.
	Database string
	// ResourceID is the DB's resource id (db-... or cluster-...) for the
	// policy check when DescribeDBInstances/DescribeDBClusters may not be
	// called (--resource-id).
	ResourceID string
	// ValidateDB runs the database-side checks after the token login
	// worked; nil skips them with a pointer to `rds-iam-proxy validate`.
	ValidateDB func(ctx context.Context) *Report
	// StepTimeout bounds each step; default 30s.
	StepTimeout time.Duration
	// Logger receives the credential chain's and the CA loader's logs;
	// default: discard.
	Logger *slog.Logger
}

// Doctor runs every step from AWS credentials to a token login, in order,
// and stops at the first that fails, whose Check says what is wrong and
// how to fix it. AWS questions doctor may not ask (AccessDenied), or that
// AWS throttles, are skipped as "could not check (...)", not failed.
func Doctor(ctx context.Context, o DoctorOptions) *Report {
	d := &doctor{o: o, log: o.Logger, rep: &Report{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.o.StepTimeout <= 0 {
		d.o.StepTimeout = 30 * time.Second
	}
	// The upstream is resolved the proxy's way (launch), stage by stage,
	// so that each stage's failure is reported as its step.
	up, err := launch.Parse(o.Config)
	if err != nil {
		d.rep.Add(Check{Name: StepEndpoint, Status: Fail, Detail: err.Error(),
			Fix: "pass --endpoint HOST:PORT, the RDS endpoint (aws rds describe-db-instances --query 'DBInstances[].Endpoint')"})
		return d.rep
	}
	d.up, d.cfg = up, up.Config
	d.host, d.port = up.Endpoint.Host, up.Endpoint.Port
	if d.o.Database == "" && d.cfg.Engine == config.Postgres {
		d.o.Database = "postgres"
	}
	if d.o.DBUser == "" {
		d.rep.Add(Check{Name: StepLogin, Status: Fail, Detail: "no database user", Fix: "pass --db-user USER"})
		return d.rep
	}
	if err := up.Open(ctx, d.log); err != nil {
		d.rep.Add(Check{Name: StepCredentials, Status: Fail, Detail: "cannot load the AWS configuration: " + err.Error(),
			Fix: "check AWS_PROFILE / --profile and ~/.aws/config"})
		return d.rep
	}
	defer up.Close()
	d.awsCfg = up.Tokens.AWSConfig()
	d.regionErr = up.FindRegion()
	d.region, d.regionNote = up.Region, up.RegionSource

	steps := []func(context.Context) Check{
		d.credentials, d.callerIdentity, d.clock, d.endpoint, d.dns, d.tcp, d.tls,
		d.iamAuth, d.policy, d.login,
	}
	if d.cfg.Engine == config.DSQL {
		steps = d.dsqlSteps()
	}
	steps = append(steps, d.clusterSteps()...)
	for _, step := range steps {
		sctx, cancel := context.WithTimeout(ctx, d.o.StepTimeout)
		c := step(sctx)
		cancel()
		d.rep.Add(c)
		if c.Status == Fail {
			return d.rep
		}
	}
	if d.o.ValidateDB == nil {
		d.rep.Add(Check{Name: StepDatabase, Status: Skip, Detail: "database checks: run rds-iam-proxy validate"})
		return d.rep
	}
	if sub := d.o.ValidateDB(ctx); sub != nil {
		for _, c := range sub.Checks {
			d.rep.Add(c)
		}
	}
	return d.rep
}

// doctor is one run's state: what each step learned for the next.
type doctor struct {
	o   DoctorOptions
	up  *launch.Upstream // resolved stage by stage, as the steps go
	cfg launch.Config    // up.Config
	log *slog.Logger
	rep *Report

	host       string
	port       int
	region     string
	regionNote string
	regionErr  error

	awsCfg     aws.Config
	creds      aws.Credentials
	mfa        authtoken.MFAState
	mfaAt      time.Time // when this run did the MFA step with a code (zero: it did not)
	mfaDoubt   string    // the policy needs MFA that these credentials may lack
	callerARN  string
	account    string
	serverTime time.Time
	clockErr   string // STS refused the signature's time

	tlsUp  tlsca.Upstream
	myErr  error // MySQL: the login run by the TLS step
	myDone bool

	db          *DBInfo // nil: the RDS API could not be asked
	resourceID  string
	policyOK    bool
	policySrc   string
	policyARN   string
	iamVerified bool
}

// explained is an error that says its cause and its fix apart
// (authtoken's CredentialsError and RoleError, tlsca's
// PlaintextRefusedError).
type explained interface {
	error
	Cause() string
	Fix() string
}

// causeAndFix is what err says of its cause and fix, when it says them
// apart; ok is false for any other error.
func causeAndFix(err error) (cause, fix string, ok bool) {
	x, ok := errors.AsType[explained](err)
	if !ok {
		return "", "", false
	}
	return x.Cause(), x.Fix(), true
}

func (d *doctor) stsRegion() string {
	if d.region != "" {
		return d.region
	}
	return "us-east-1"
}

func (d *doctor) credentials(ctx context.Context) Check {
	c := Check{Name: StepCredentials}
	// The MFA step first, as run does before it listens: the AWS CLI
	// cache, --mfa-code or the terminal's prompt.
	err := d.up.Tokens.Prepare(ctx)
	if st := d.up.Tokens.MFAState(); err == nil && st.Present && st.From == "code" {
		d.mfaAt = time.Now()
	}
	var creds aws.Credentials
	if err == nil {
		creds, err = d.awsCfg.Credentials.Retrieve(ctx)
	}
	if err != nil {
		c.Status = Fail
		c.Detail = err.Error()
		if cause, fix, ok := causeAndFix(err); ok {
			c.Detail, c.Fix = cause, fix
		}
		if c.Fix == "" {
			c.Fix = "give the proxy AWS credentials: AWS_PROFILE (aws sso login for SSO profiles), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance profile, IRSA or EKS Pod Identity; rds-iam-proxy whoami shows what the chain finds"
		}
		return c
	}
	d.creds = creds
	c.Status = OK
	c.Detail = "from " + creds.Source
	if roles, _ := d.cfg.Roles(); len(roles) > 0 {
		c.Detail += " (assumed " + strings.Join(roles, " -> ") + ")"
	}
	c.Detail += ", access key " + creds.AccessKeyID
	if creds.CanExpire {
		c.Detail += fmt.Sprintf(", expire %s (in %s; refreshed ahead of expiry)", creds.Expires.UTC().Format(time.RFC3339), time.Until(creds.Expires).Round(time.Second))
	} else if longTermKeys(creds.AccessKeyID, creds.CanExpire) {
		c.Detail += ", long-term keys (never expire)"
	} else {
		c.Detail += ", temporary keys whose expiry was not given"
	}
	d.mfa = d.up.Tokens.MFAState()
	c.Detail += "; MFA: " + MFALine(d.mfa, creds.AccessKeyID, creds.CanExpire)
	return c
}

// throttleCodes are AWS's throttling error codes.
func isThrottle(code string) bool {
	switch code {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled", "SlowDown":
		return true
	}
	return false
}

func (d *doctor) callerIdentity(ctx context.Context) Check {
	c := Check{Name: StepCallerID}
	out, err := d.up.STS().GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err == nil {
		d.callerARN, d.account = aws.ToString(out.Arn), aws.ToString(out.Account)
		if t, ok := awsmiddleware.GetServerTime(out.ResultMetadata); ok {
			d.serverTime = t
		}
		c.Status, c.Detail = OK, fmt.Sprintf("tokens are signed as %s (account %s)", d.callerARN, d.account)
		return c
	}
	c.Status = Fail
	var api smithy.APIError
	if !errors.As(err, &api) {
		c.Detail = "STS did not answer: " + err.Error()
		c.Fix = "check the network path to STS (VPC endpoint, HTTP proxy, --sts-endpoint, AWS_ENDPOINT_URL_STS)"
		return c
	}
	code, msg := api.ErrorCode(), api.ErrorMessage()
	switch {
	case code == "ExpiredToken" || code == "ExpiredTokenException" || code == "RequestExpired":
		c.Detail = fmt.Sprintf("the credentials from %s have expired (STS: %s: %s); signing a token is offline, so the proxy would build tokens that RDS rejects with \"PAM authentication failed\"", d.creds.Source, code, msg)
		c.Fix = "renew the credentials: aws sso login for an SSO profile, new temporary keys (AWS_SESSION_TOKEN) from whatever issued them, or let the chain use a role (instance profile, IRSA, Pod Identity) that refreshes itself"
	case code == "InvalidClientTokenId" || code == "UnrecognizedClientException":
		c.Detail = fmt.Sprintf("STS does not recognise the access key %s (%s: %s): it was deleted or deactivated, belongs to another partition, or a session key came without its own session token", d.creds.AccessKeyID, code, msg)
		c.Fix = "use a current key (aws iam list-access-keys --user-name USER); temporary keys need their AWS_SESSION_TOKEN"
	case code == "SignatureDoesNotMatch" && (strings.Contains(msg, "Signature expired") || strings.Contains(msg, "not yet current")):
		d.clockErr = msg
		return d.clockFailure(fmt.Sprintf("STS refused the request's time: %s", msg))
	case code == "SignatureDoesNotMatch":
		c.Detail = fmt.Sprintf("the secret access key does not belong to the access key %s (%s)", d.creds.AccessKeyID, code)
		c.Fix = "check AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key"
	case isThrottle(code):
		c.Detail = fmt.Sprintf("STS throttled sts:GetCallerIdentity even after retries (%s: %s)", code, msg)
		c.Fix = "try again later, and find what else calls STS with these credentials at a high rate (the proxy calls STS only to refresh credentials)"
	default:
		c.Detail = fmt.Sprintf("sts:GetCallerIdentity failed (%s: %s)", code, msg)
		c.Fix = "check the credentials with: aws sts get-caller-identity"
	}
	return c
}

func (d *doctor) clockFailure(detail string) Check {
	return Check{Name: StepClock, Status: Fail,
		Detail: detail + "; RDS checks a token's signing time the same way (at most 5 minutes ahead of its clock, expired 15 minutes after signing), so every token this machine signs is rejected with \"PAM authentication failed\" / \"Access denied\"",
		Fix:    "sync this machine's clock with NTP (timedatectl set-ntp true, chronyd; Amazon Time Sync Service at 169.254.169.123); in a container or VM, the host's clock"}
}

func (d *doctor) clock(context.Context) Check {
	if d.serverTime.IsZero() {
		return Check{Name: StepClock, Status: Skip, Detail: "could not check (STS sent no Date header)"}
	}
	skew := time.Until(d.serverTime)
	// The Date header has one-second precision.
	abs := skew.Abs().Truncate(time.Second)
	switch {
	case abs >= MaxClockSkew:
		return d.clockFailure(fmt.Sprintf("this machine's clock is %s %s AWS's (STS answered at %s)", abs, aheadBehind(skew), d.serverTime.UTC().Format(time.RFC3339)))
	case abs >= time.Minute:
		return Check{Name: StepClock, Status: Warn,
			Detail: fmt.Sprintf("this machine's clock is %s %s AWS's; tokens are refused beyond %s", abs, aheadBehind(skew), MaxClockSkew),
			Fix:    "sync this machine's clock with NTP (timedatectl set-ntp true, chronyd)"}
	}
	return Check{Name: StepClock, Status: OK, Detail: fmt.Sprintf("within %s of AWS's clock", max(abs, time.Second))}
}

func aheadBehind(skew time.Duration) string {
	if skew > 0 {
		return "behind"
	}
	return "ahead of"
}

func (d *doctor) endpoint(ctx context.Context) Check {
	c := Check{Name: StepEndpoint, Status: Fail}
	hp := net.JoinHostPort(d.host, strconv.Itoa(d.port))
	dialHint := "--dial-address " + hp
	if ip := net.ParseIP(d.host); ip != nil {
		c.Detail = fmt.Sprintf("--endpoint %s is an IP address: tokens are signed for the endpoint name and RDS rejects one signed for anything but its own name; TLS verify-full needs the name too", hp)
		c.Fix = fmt.Sprintf("--endpoint NAME.ID.REGION.rds.amazonaws.com:%d (the RDS endpoint) with %s to keep connecting to this address", d.port, dialHint)
		return c
	}
	if sn := d.cfg.TLSServerName; sn != "" && !strings.EqualFold(sn, d.host) {
		c.Detail = fmt.Sprintf("host mismatch: tokens are signed for --endpoint %s, but the DB is %s (--tls-server-name); RDS rejects a token that names another host", d.host, sn)
		c.Fix = fmt.Sprintf("--endpoint %s:%d %s (drop --tls-server-name)", sn, d.port, dialHint)
		return c
	}
	if !tlsca.IsRDSName(d.host) {
		c.Detail = fmt.Sprintf("--endpoint %s is not an RDS endpoint name (a CNAME, a load balancer or a tunnel's name?): tokens are signed for this name and RDS accepts only its own", d.host)
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cname, err := net.DefaultResolver.LookupCNAME(rctx, d.host)
		cancel()
		cname = strings.TrimSuffix(cname, ".")
		if err == nil && !strings.EqualFold(cname, d.host) {
			c.Detail += fmt.Sprintf("; it is a CNAME for %s", cname)
			if tlsca.IsRDSName(cname) {
				c.Fix = fmt.Sprintf("--endpoint %s:%d", cname, d.port)
				return c
			}
		}
		c.Fix = fmt.Sprintf("--endpoint must be the RDS name (aws rds describe-db-instances --query 'DBInstances[].Endpoint.Address'); to connect through a tunnel or another name, keep that --endpoint and add %s", dialHint)
		return c
	}
	if d.regionErr != nil {
		c.Detail, c.Fix = d.regionErr.Error(), "pass --region, the DB's region"
		return c
	}
	fromName := authtoken.RegionFromEndpoint(d.host)
	if d.cfg.Region != "" && fromName != "" && d.cfg.Region != fromName {
		c.Detail = fmt.Sprintf("token region mismatch: --region %s, but the endpoint %s is in %s; RDS rejects a token signed for another region", d.cfg.Region, d.host, fromName)
		c.Fix = fmt.Sprintf("drop --region (the endpoint's region is used) or pass --region %s", fromName)
		return c
	}
	kind, _ := EndpointKind(d.host)
	c.Status, c.Detail = OK, fmt.Sprintf("%s, an RDS %s endpoint; tokens are signed for it in %s (%s)", hp, kind, d.region, d.regionNote)
	if !d.up.Endpoint.PortGiven {
		c.Status = Warn
		c.Detail = fmt.Sprintf("--endpoint %s has no port: tokens name port %d, the %s default, and RDS rejects a token that names another port than the DB's; %s", d.host, d.port, d.cfg.Engine, c.Detail)
		c.Fix = fmt.Sprintf("--endpoint %s:PORT with the DB's port (aws rds describe-db-instances --query 'DBInstances[].Endpoint.Port')", d.host)
	}
	return c
}

func (d *doctor) dialAddr() string { return d.up.DialAddr() }

func (d *doctor) dns(ctx context.Context) Check {
	if d.cfg.DialAddress != "" {
		return Check{Name: StepDNS, Status: Skip, Detail: fmt.Sprintf("not resolved: --dial-address %s is dialed instead (a tunnel)", d.cfg.DialAddress)}
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, d.host)
	if err != nil {
		return Check{Name: StepDNS, Status: Fail, Detail: fmt.Sprintf("cannot resolve %s: %v", d.host, err),
			Fix: "check the endpoint name (aws rds describe-db-instances) and this machine's DNS: a private endpoint resolves to private addresses, reachable only from the VPC, a peered VPC or a VPN; to go through a tunnel set --dial-address"}
	}
	return Check{Name: StepDNS, Status: OK, Detail: fmt.Sprintf("%s resolves to %s", d.host, strings.Join(addrs, ", "))}
}

func (d *doctor) tcp(ctx context.Context) Check {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", d.dialAddr())
	if err != nil {
		return Check{Name: StepTCP, Status: Fail, Detail: fmt.Sprintf("cannot connect to %s: %v", d.dialAddr(), err),
			Fix: fmt.Sprintf("check that the DB is available and that the network lets this machine reach port %d: the DB's security group inbound rules, network ACLs, routes, the tunnel (--dial-address)", d.port)}
	}
	conn.Close()
	return Check{Name: StepTCP, Status: OK, Detail: "connected to " + d.dialAddr()}
}

func (d *doctor) tls(ctx context.Context) Check {
	c := Check{Name: StepTLS, Status: Fail}
	if err := d.up.CheckTLS(); err != nil {
		c.Detail = err.Error()
		return c
	}
	if err := d.up.LoadTrust(ctx, d.log); err != nil {
		c.Detail = err.Error()
		if d.up.TLS.Mode != tlsca.Disable {
			c.Detail = "cannot load the RDS CA bundle: " + err.Error()
			c.Fix = "pass --ca-bundle FILE with the RDS bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), or let this machine reach truststore.pki.rds.amazonaws.com"
		}
		return c
	}
	u, conf := d.up.Trust.Current()
	d.tlsUp = u
	if conf == nil {
		return Check{Name: StepTLS, Status: Warn, Detail: "TLS is disabled (--tls-mode disable): the token crosses the network in plaintext; loopback only"}
	}
	if d.cfg.Engine == config.MySQL {
		// MySQL starts TLS inside its login handshake, and a handshake
		// broken off counts against the server's max_connect_errors: the
		// login runs here and its TLS part is reported.
		d.myErr, d.myDone = d.tokenLogin(ctx), true
		var te *mywire.TLSError
		switch {
		case errors.As(d.myErr, &te):
			return d.tlsFailure(te.Err)
		case errors.Is(d.myErr, mywire.ErrNoTLS):
			c.Detail = fmt.Sprintf("the server at %s does not offer TLS; RDS always does, and tokens are only sent over TLS", d.dialAddr())
			c.Fix = "point --endpoint/--dial-address at the RDS endpoint, not another server"
			return c
		}
		return Check{Name: StepTLS, Status: OK, Detail: fmt.Sprintf("%s's certificate verified against %s during the MySQL handshake", u.ExpectedName(), bundleName(u))}
	}
	// Postgres: the TLS handshake on its own, to show the certificate;
	// the login step then logs in the proxy's way.
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", d.dialAddr())
	if err != nil {
		c.Detail = fmt.Sprintf("cannot connect to %s: %v", d.dialAddr(), err)
		return c
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// SSLRequest: length 8, code 80877103.
	if _, err := conn.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		c.Detail = fmt.Sprintf("cannot send the SSLRequest to %s: %v", d.dialAddr(), err)
		return c
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(conn, answer); err != nil {
		c.Detail = fmt.Sprintf("no answer to the SSLRequest from %s: %v", d.dialAddr(), err)
		c.Fix = "check that --endpoint/--dial-address point at a PostgreSQL server"
		return c
	}
	switch answer[0] {
	case 'S':
	case 'N':
		c.Detail = fmt.Sprintf("the server at %s refused TLS; RDS always offers it, and tokens are only sent over TLS", d.dialAddr())
		c.Fix = "point --endpoint/--dial-address at the RDS endpoint, not another server"
		return c
	default:
		c.Detail = fmt.Sprintf("the server at %s answered the SSLRequest with %q: not PostgreSQL", d.dialAddr(), answer[0])
		c.Fix = "check that --endpoint/--dial-address point at a PostgreSQL server (or pass --engine mysql)"
		return c
	}
	tc, err := tlsca.Handshake(ctx, conn, conf)
	if err != nil {
		return d.tlsFailure(err)
	}
	cs := tc.ConnectionState()
	detail := fmt.Sprintf("%s's certificate verified against %s (%s)", u.ExpectedName(), bundleName(u), tls.VersionName(cs.Version))
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		detail += fmt.Sprintf("; issued by '%s', valid until %s", leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return Check{Name: StepTLS, Status: OK, Detail: detail}
}

func bundleName(u tlsca.Upstream) string {
	if u.Bundle == nil {
		return "(no bundle)"
	}
	return u.Bundle.Describe()
}

func (d *doctor) tlsFailure(err error) Check {
	c := Check{Name: StepTLS, Status: Fail}
	if f, ok := d.tlsUp.Explain(err, time.Now()); ok {
		c.Detail, c.Fix = f.Cause, f.Fix
		return c
	}
	c.Detail = fmt.Sprintf("TLS with %s failed: %v", d.dialAddr(), err)
	return c
}

// describeFix is how to answer the IAM auth question by hand.
func (d *doctor) describeFix() string {
	kind, id := EndpointKind(d.host)
	if kind == "cluster" {
		return fmt.Sprintf("let this identity call rds:DescribeDBClusters, or check by hand: aws rds describe-db-clusters --region %s --db-cluster-identifier %s --query 'DBClusters[0].[IAMDatabaseAuthenticationEnabled,DbClusterResourceId]'", d.region, id)
	}
	return fmt.Sprintf("let this identity call rds:DescribeDBInstances, or check by hand: aws rds describe-db-instances --region %s --db-instance-identifier %s --query 'DBInstances[0].[IAMDatabaseAuthenticationEnabled,DbiResourceId]'", d.region, id)
}

func (d *doctor) iamAuth(ctx context.Context) Check {
	c := Check{Name: StepIAMAuth, Status: Fail}
	info, err := DescribeEndpoint(ctx, d.up.RDS(), d.host)
	if err != nil {
		var cnc *CouldNotCheck
		if errors.As(err, &cnc) {
			return Check{Name: StepIAMAuth, Status: Skip, Detail: cnc.Error(), Fix: d.describeFix()}
		}
		_, id := EndpointKind(d.host)
		c.Detail = fmt.Sprintf("no DB %s in %s is visible to account %s (%v)", id, d.region, d.account, err)
		c.Fix = "check --endpoint and the region; tokens must be signed in the DB's account: for a DB in another account, assume a role there (--role-arn)"
		return c
	}
	d.db = &info
	what := info.Kind + " " + info.Identifier
	if info.ClusterID != "" {
		what = fmt.Sprintf("instance %s of cluster %s", info.Identifier, info.ClusterID)
	}
	if info.Kind == "instance" && info.Address != "" && !strings.EqualFold(info.Address, d.host) {
		c.Detail = fmt.Sprintf("host mismatch: the %s's endpoint is %s, not %s; RDS rejects a token that names another host", what, info.Address, d.host)
		c.Fix = fmt.Sprintf("--endpoint %s:%d", info.Address, info.Port)
		return c
	}
	if info.Port != 0 && info.Port != d.port {
		c.Detail = fmt.Sprintf("port mismatch: the %s listens on port %d, but tokens name port %d (from --endpoint %s); RDS rejects a token for another port", what, info.Port, d.port, d.cfg.Endpoint)
		c.Fix = fmt.Sprintf("--endpoint %s:%d", d.host, info.Port)
		return c
	}
	if !info.IAMAuth {
		c.Detail = fmt.Sprintf("IAM database authentication is not enabled on the %s (%s says IAMDatabaseAuthenticationEnabled=false): RDS checks no token; PostgreSQL answers \"password authentication failed\", MySQL \"Plugin 'AWSAuthenticationPlugin' is not loaded\"", what, info.Action)
		if info.Kind == "cluster" || info.ClusterID != "" {
			id := info.ClusterID
			if id == "" {
				id = info.Identifier
			}
			c.Fix = fmt.Sprintf("aws rds modify-db-cluster --region %s --db-cluster-identifier %s --enable-iam-database-authentication --apply-immediately", d.region, id)
		} else {
			c.Fix = fmt.Sprintf("aws rds modify-db-instance --region %s --db-instance-identifier %s --enable-iam-database-authentication --apply-immediately", d.region, info.Identifier)
		}
		return c
	}
	d.iamVerified = true
	d.resourceID = info.ResourceID
	return Check{Name: StepIAMAuth, Status: OK, Detail: fmt.Sprintf("enabled on the %s (resource id %s, engine %s)", what, info.ResourceID, info.Engine)}
}

// policyFix is the policy to attach, compact, for a Fix line.
func (d *doctor) policyFix(account, resourceID string) string {
	js, err := ConnectPolicyJSON(ConnectTarget{Region: d.region, Account: account, ResourceID: resourceID, Users: []string{d.o.DBUser}})
	if err != nil {
		return "rds-iam-proxy setup policy prints the policy to attach"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, js); err != nil {
		return string(js)
	}
	who := "the identity that signs tokens"
	if d.policySrc != "" {
		who = d.policySrc
	}
	return fmt.Sprintf("attach to %s (rds-iam-proxy setup policy prints it): %s", who, b.String())
}

func (d *doctor) policy(ctx context.Context) Check {
	c := Check{Name: StepPolicy, Status: Fail}
	resourceID := d.resourceID
	if resourceID == "" {
		resourceID = d.o.ResourceID
	}
	if resourceID == "" {
		return Check{Name: StepPolicy, Status: Skip,
			Detail: "could not check (the DB's resource id is unknown: the RDS API could not be asked)",
			Fix:    "pass --resource-id (DbiResourceId db-... of an instance, DbClusterResourceId cluster-... of an Aurora cluster)"}
	}
	account := d.account
	if d.db != nil && d.db.Account() != "" {
		account = d.db.Account()
	}
	arn := authtoken.DBUserARN(d.region, account, resourceID, d.o.DBUser)
	d.policyARN = arn
	source, err := PolicySourceARN(d.callerARN)
	if err != nil {
		return Check{Name: StepPolicy, Status: Skip, Detail: "could not check (" + err.Error() + ")", Fix: d.policyFix(account, resourceID)}
	}
	d.policySrc = source
	client := iam.NewFromConfig(d.awsCfg, func(o *iam.Options) {
		if o.Region == "" {
			o.Region = d.stsRegion()
		}
	})
	sim, err := SimulateConnect(ctx, client, source, arn)
	if err != nil {
		var cnc *CouldNotCheck
		if errors.As(err, &cnc) {
			return Check{Name: StepPolicy, Status: Skip, Detail: cnc.Error(),
				Fix: "let this identity call iam:SimulatePrincipalPolicy on " + source + ", or make sure its policy allows rds-db:connect on " + arn}
		}
		c.Detail = err.Error()
		return c
	}
	if sim.Decision == "allowed" {
		d.policyOK = true
		return Check{Name: StepPolicy, Status: OK, Detail: fmt.Sprintf("%s may rds-db:connect on %s", source, arn)}
	}
	// Refused without the MFA keys, which the simulator never supplies:
	// is MFA what the policy asks for?
	if mc, ok := d.mfaPolicy(ctx, client, source, arn); ok {
		d.policyOK = mc.Status != Fail
		if mc.Status == Warn {
			d.mfaDoubt = fmt.Sprintf("credentials that carry MFA, recent enough: %s allows rds-db:connect only with it (MFA of these credentials: %s)",
				source, MFALine(d.mfa, d.creds.AccessKeyID, d.creds.CanExpire))
		}
		return mc
	}
	if sim.Decision == "explicitDeny" {
		c.Detail = fmt.Sprintf("an explicit Deny in the policies of %s refuses rds-db:connect on %s (a Deny wins over every Allow)", source, arn)
		c.Fix = "remove or narrow the Deny statement (check the role's policies, permission boundary and the account's SCPs)"
		return c
	}
	if bad := unsupportedConnectKeys(sim.Missing); len(bad) > 0 {
		c.Detail = fmt.Sprintf("unsupported policy condition keys: the statement of %s that allows rds-db:connect on %s has a condition on %s, which AWS does not supply for rds-db:connect: the statement never matches", source, arn, strings.Join(bad, ", "))
		c.Fix = "drop the condition on " + strings.Join(bad, ", ") + " (limit the network with the DB's security group instead); " + d.policyFix(account, resourceID)
		return c
	}
	if len(sim.Missing) > 0 {
		c.Detail = fmt.Sprintf("the statement of %s that allows rds-db:connect on %s is conditioned on %s, which the request does not supply", source, arn, strings.Join(sim.Missing, ", "))
		c.Fix = "drop the condition; " + d.policyFix(account, resourceID)
		return c
	}
	if lower := strings.ToLower(d.o.DBUser); lower != d.o.DBUser {
		if s2, err := SimulateConnect(ctx, client, source, authtoken.DBUserARN(d.region, account, resourceID, lower)); err == nil && s2.Decision == "allowed" {
			c.Detail = fmt.Sprintf("user case mismatch: %s may connect as %q but not as %q; database user names and the dbuser ARN are case-sensitive", source, lower, d.o.DBUser)
			c.Fix = fmt.Sprintf("--db-user %s if that is the user's name in the database (PostgreSQL folds unquoted names to lower case); otherwise %s", lower, d.policyFix(account, resourceID))
			return c
		}
	}
	c.Detail = fmt.Sprintf("no policy of %s allows rds-db:connect on %s", source, arn)
	if strings.HasPrefix(resourceID, "cluster-") {
		c.Detail += "; for Aurora the ARN names the cluster's resource id (cluster-...), not an instance's (db-...)"
	} else {
		c.Detail += "; the ARN names the instance's resource id (db-...), not its name"
	}
	c.Fix = d.policyFix(account, resourceID)
	return c
}

// tokenLogin logs in with a fresh token through the proxy's own upstream
// login (see launch.Upstream.Login).
func (d *doctor) tokenLogin(ctx context.Context) error {
	return d.up.Login(ctx, launch.Login{User: d.o.DBUser, Database: d.o.Database, Application: "rds-iam-proxy doctor"})
}

// unverified lists what the steps before could not verify, as causes of a
// rejected token.
func (d *doctor) unverified() string {
	var causes []string
	if !d.iamVerified {
		causes = append(causes, "IAM database authentication enabled on the DB (not checked)")
	}
	if !d.policyOK {
		arn := d.policyARN
		if arn == "" {
			arn = authtoken.DBUserARN(d.region, d.account, "*", d.o.DBUser)
		}
		who := d.callerARN
		if src, err := PolicySourceARN(d.callerARN); err == nil {
			who = src
		}
		causes = append(causes, fmt.Sprintf("a policy of %s allowing rds-db:connect on %s (not checked)", who, arn))
	}
	if d.mfaDoubt != "" {
		causes = append(causes, d.mfaDoubt)
	}
	causes = append(causes,
		fmt.Sprintf("the token names %s:%d in %s: the DB's own endpoint name, port and region", d.host, d.port, d.region),
		fmt.Sprintf("the user is %q exactly (names are case-sensitive)", d.o.DBUser),
		"a policy changed in the last seconds may not have reached RDS yet")
	return strings.Join(causes, "; ")
}

func (d *doctor) login(ctx context.Context) Check {
	c := Check{Name: StepLogin, Status: Fail}
	err := d.myErr
	if !d.myDone {
		err = d.tokenLogin(ctx)
	}
	target := fmt.Sprintf("%s@%s:%d", d.o.DBUser, d.host, d.port)
	if err == nil {
		return Check{Name: StepLogin, Status: OK, Detail: fmt.Sprintf("logged in as %s with a token signed by %s for %s", target, d.callerARN, d.region)}
	}
	if strings.Contains(err.Error(), "too many competing requests") {
		c.Detail = fmt.Sprintf("RDS is throttling IAM logins to %s (%v): above about 200 new IAM connections per second per instance it refuses some", d.host, err)
		c.Fix = "open fewer new connections: pool them (one proxy serves many clients over few upstream logins), add backoff and retry on this error"
		return c
	}
	if ce, ok := errors.AsType[*authtoken.CredentialsError](err); ok {
		c.Detail, c.Fix = ce.Cause(), ce.Fix()
		return c
	}
	var pgErr *pgconn.PgError
	var myErr *mywire.ServerError
	var plugin *mywire.UnsupportedPluginError
	switch {
	case errors.As(err, &pgErr):
		return d.explainPG(c, target, pgErr)
	case errors.As(err, &plugin):
		c.Detail = fmt.Sprintf("the server asked %s for the auth plugin %q instead of mysql_clear_password: %q is not an IAM user", target, plugin.Plugin, d.o.DBUser)
		c.Fix = mysql.IAMUserFix(d.o.DBUser) + " REQUIRE SSL; clients that log in without the proxy must enable the cleartext plugin (mysql --enable-cleartext-plugin, go-sql-driver allowCleartextPasswords=true)"
		return c
	case errors.As(err, &myErr):
		return d.explainMySQL(c, target, myErr)
	}
	if f, ok := d.tlsUp.Explain(err, time.Now()); ok {
		c.Detail, c.Fix = f.Cause, f.Fix
		return c
	}
	c.Detail = fmt.Sprintf("cannot log in as %s: %v", target, err)
	return c
}

func (d *doctor) explainPG(c Check, target string, e *pgconn.PgError) Check {
	msg := e.Message
	switch refusal := postgres.Classify(e); {
	case refusal == postgres.TokenRejected:
		c.Detail = fmt.Sprintf("RDS rejected the token for %s (%s); what is left to check: %s", target, msg, d.unverified())
		c.Fix = "fix the first cause above that applies; RDS writes the real reason (expired or mis-signed token, wrong region or host, too many competing requests) to the DB's iam-db-auth-error log: " + d.authLogCommand()
	case refusal == postgres.NotIAMUser:
		if d.iamVerified {
			c.Detail = fmt.Sprintf("the server checked the token as a password for %s (%s): %q is not a member of rds_iam, or does not exist (names are case-sensitive)", target, msg, d.o.DBUser)
		} else {
			c.Detail = fmt.Sprintf("the server checked the token as a password for %s (%s): IAM database authentication is not enabled on the DB, or %q is not a member of rds_iam (or does not exist; names are case-sensitive)", target, msg, d.o.DBUser)
		}
		c.Fix = fmt.Sprintf("as the master user: %s; (CREATE USER %s first if it does not exist)", postgres.GrantFix(d.o.DBUser), sqlquote.PGRole(d.o.DBUser))
		if !d.iamVerified {
			c.Fix += "; and " + d.modifyCommand()
		}
	case e.Code == "3D000" || e.Code == "42501":
		c.Status = Warn
		c.Detail = fmt.Sprintf("the token was accepted for %s, but the login stopped: %s", target, msg)
		c.Fix = "pass --db-name with a database the user may CONNECT to"
	default:
		c.Detail = fmt.Sprintf("the server refused the login as %s: %s (SQLSTATE %s)", target, msg, e.Code)
	}
	return c
}

func (d *doctor) explainMySQL(c Check, target string, e *mywire.ServerError) Check {
	switch {
	case e.Code == mywire.ErPluginNotLoaded:
		c.Detail = fmt.Sprintf("IAM database authentication is not enabled on the DB: the server says %q", e.Message)
		c.Fix = d.modifyCommand()
	case e.Code == mywire.ErAccessDenied:
		c.Detail = fmt.Sprintf("the server refused %s (%s): %q is not an IAM user (CREATE USER ... IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS', which switches the login to the cleartext plugin), or RDS rejected the token; also check: %s", target, e.Message, d.o.DBUser, d.unverified())
		c.Fix = fmt.Sprintf("CREATE USER %s IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL; (or ALTER USER for an existing user); RDS writes why it rejected a token to the DB's iam-db-auth-error log: %s", sqlquote.MySQLAccount(d.o.DBUser, "%"), d.authLogCommand())
	case e.Code == 1049: // ER_BAD_DB_ERROR
		c.Status = Warn
		c.Detail = fmt.Sprintf("the token was accepted for %s, but the login stopped: %s", target, e.Message)
		c.Fix = "pass --db-name with an existing database, or none"
	default:
		c.Detail = fmt.Sprintf("the server refused the login as %s: %s (error %d)", target, e.Message, e.Code)
	}
	return c
}

// authLogCommand exports the DB's IAM authentication error log to
// CloudWatch Logs, where RDS says why it rejected each token.
func (d *doctor) authLogCommand() string {
	kind, id := EndpointKind(d.host)
	if kind == "cluster" {
		return fmt.Sprintf(`aws rds modify-db-cluster --region %s --db-cluster-identifier %s --cloudwatch-logs-export-configuration '{"EnableLogTypes":["iam-db-auth-error"]}'`, d.region, id)
	}
	return fmt.Sprintf(`aws rds modify-db-instance --region %s --db-instance-identifier %s --cloudwatch-logs-export-configuration '{"EnableLogTypes":["iam-db-auth-error"]}'`, d.region, id)
}

// modifyCommand is the AWS CLI command that enables IAM auth on the DB.
func (d *doctor) modifyCommand() string {
	kind, id := EndpointKind(d.host)
	if kind == "cluster" {
		return fmt.Sprintf("aws rds modify-db-cluster --region %s --db-cluster-identifier %s --enable-iam-database-authentication --apply-immediately", d.region, id)
	}
	return fmt.Sprintf("aws rds modify-db-instance --region %s --db-instance-identifier %s --enable-iam-database-authentication --apply-immediately (for an Aurora instance: modify-db-cluster)", d.region, id)
}
