// Package emulator runs the AWS side of RDS IAM database authentication on one
// machine: an STS endpoint, an EC2 instance metadata service (IMDSv2), the IAM
// principals and policies behind them, and the token check an RDS instance
// performs when a client logs in with an IAM auth token.
//
// # Why it exists
//
// IAM database authentication has many ways to fail (an expired token, a token
// signed for the wrong host, port or region, a db user whose case differs, a
// session token that was dropped, a policy that does not allow rds-db:connect,
// a condition key RDS never supplies), and on real AWS every one of them ends
// in the same opaque "PAM authentication failed". Testing a client or a proxy
// against that needs an AWS account, a database instance and a lot of patience.
//
// This package lets tests exercise the real code paths instead. The
// aws-sdk-go-v2 credential chain reads its endpoints from the environment
// (AWS_ENDPOINT_URL_STS, AWS_EC2_METADATA_SERVICE_ENDPOINT), so a test points
// the unmodified SDK at [AWS.Handler] and gets credentials exactly as it would
// in production: by signing STS calls, by assuming roles, by a web identity
// token file, or from instance metadata. A token built from those credentials
// with feature/rds/auth is then checked by [AWS.VerifyRDSToken] the way RDS
// checks it: the SigV4 signature is recomputed from the secret the emulator
// issued, and host, port, region, service, action, db user, expiry, session
// token and the caller's policy are each enforced.
//
// Nothing is waved through. A wrong secret fails with SignatureDoesNotMatch,
// a session used after its expiry fails with ExpiredToken, a policy whose only
// Allow carries an aws:SourceIp condition does not allow rds-db:connect. The
// emulator is strict so that a test passing here means something on AWS.
//
// # Diagnostics
//
// Like RDS, a database front built on this package should show clients only a
// generic authentication failure. The emulator logs the real reason of every
// rejection to [Options.Logger], and [TokenError.Reason] carries it to the
// caller. Neither ever contains a secret key, a session token or a token
// signature; [AWS.SeenSecrets] lists every such value so a test can assert
// that none of them leaked into its logs.
//
// # Web identity
//
// AssumeRoleWithWebIdentity accepts only tokens STS would accept: a JWT
// whose issuer is an OIDC provider registered in the account
// ([AWS.AddOIDCProvider]), signed with RS256 by that provider's key,
// unexpired on the emulator's clock, and for one of the provider's client
// IDs (default sts.amazonaws.com). The emulator is the issuer: it holds
// each provider's RSA key pair, and [OIDCProvider.Mint] signs tokens for
// tests (an EKS service account token, a CI system's token). Anything else
// is refused with STS's codes: InvalidIdentityToken (not a JWT, unknown
// issuer, alg other than RS256, another key, a forged payload, a wrong
// audience) or ExpiredTokenException; then the role's trust policy decides
// (issuer, audience, subject). Not modelled: fetching keys from the
// issuer's JWKS URL (the key is in memory), key rotation, thumbprints.
//
// # Memory
//
// What requests make the emulator remember is bounded, so a storm or a
// long run cannot grow it without limit: at most 10,000 sessions (about
// 1.2 KB each; a session is kept until an hour after it expires, so its
// caller hears ExpiredToken, not an unknown key, for that hour), 10,000
// IMDS tokens (kept until they expire), and 100,000 seen secrets or 32 MiB
// of them (signatures and tokens presented, kept an hour). A full store
// first forgets what is past its time, then what is nearest to it, down
// to three quarters. Users, roles, policies and grants that tests create
// through the API are not bounded. In all, about 50 MB at most.
//
// # Independence from the proxy
//
// The fronts speak PostgreSQL and MySQL through the codecs in wire/pgwire
// and wire/mywire, with an accept loop, relay and backend logins of their
// own; nothing here imports the proxy. A test that runs the proxy against
// the emulator therefore checks the proxy against a second implementation
// that shares only the wire format with it, not its connection handling.
//
// # Certificates
//
// [CA] makes a throwaway certificate authority at start, so a database front
// can serve TLS for a realistic RDS endpoint name and a client can verify it
// with verify-full, as it would against the RDS CA bundle.
//
// # Scope
//
// The emulator models the subset of IAM that matters for rds-db:connect:
// users with long-term keys, roles, identity policies with Allow and Deny
// statements, wildcards and string conditions, and trust policies ([Trust]:
// AWS principals, an external ID, service principals, web identity issuer,
// audience and subject). The DB lives in the emulator's own account; users
// and roles of other accounts can be added, so that cross-account access is
// real: such a principal must assume a role of the DB's account (its own
// policy allowing sts:AssumeRole, the role's trust allowing it) before it
// may connect. A role without a trust policy may be assumed by any known
// principal. Session policies, permission boundaries and SCPs are not
// modelled. The instance metadata service rotates credentials ahead of
// expiry as EC2 does, a container credentials endpoint plays ECS and EKS
// Pod Identity, the IAM Identity Center portal answers SSO profiles
// (AWS_ENDPOINT_URL_SSO), and [AWS.InjectFault] makes any endpoint slow,
// throttled or down.
//
// The RDS API answers DescribeDBInstances and DescribeDBClusters about the
// fronts started here (endpoint, port, DbiResourceId or
// DbClusterResourceId, IAMDatabaseAuthenticationEnabled), and the IAM API
// answers SimulatePrincipalPolicy over the emulated policies
// (AWS_ENDPOINT_URL_RDS, AWS_ENDPOINT_URL_IAM; [Server.SDKEnv] sets both).
// Callers need rds:DescribeDBInstances, rds:DescribeDBClusters or
// iam:SimulatePrincipalPolicy in their own policy, as on AWS, or get
// AccessDenied; callers of another account see no DBs. A front's
// SetIAMAuth(false) switches IAM authentication off (PostgreSQL then
// answers "password authentication failed", MySQL error 1524) and
// JoinCluster makes it an Aurora cluster endpoint, whose tokens are
// authorized on the cluster- resource id. A cluster started by
// [AWS.StartAuroraPostgres] or [AWS.StartAuroraMySQL] is listed once by
// DescribeDBClusters (engine aurora-postgresql or aurora-mysql), with its
// writer and reader endpoints and DBClusterMembers (IsClusterWriter
// follows Failover), and each member by DescribeDBInstances with its
// instance endpoint. An Aurora MySQL cluster runs over MariaDB servers:
// each member's front answers the topology queries the proxy asks
// (information_schema.replica_host_status, @@aurora_server_id,
// @@innodb_read_only) from the cluster's state, and readers refuse writes
// with error 1290 through MariaDB's read_only. All state is in memory and belongs to one [AWS] value;
// there is no package-level mutable state, so parallel tests can each run
// their own emulator.
package emulator
