// Package authtoken turns AWS credentials into RDS IAM authentication tokens.
//
// Credentials come from the AWS SDK's default chain (environment, web
// identity, shared profiles with source_profile, role_arn,
// credential_process and SSO, container credentials, EC2 instance
// credentials), exactly as the AWS CLI finds them, optionally with roles
// assumed on top (Options.Roles: a chain, each assumed with the previous
// session, with an external ID for cross-account trust), through the SDK's
// own stscreds providers.
//
// A Source holds the credentials itself and refreshes them in the
// background ahead of expiry, with jitter, so building a token never waits
// for AWS while valid credentials are held. A failed refresh is logged and
// counted (Source.Stats); the held credentials keep serving until they
// expire; retries back off and every fetch, and every AWS request in it, is
// bounded in time.
//
// A token is built per connection: it is only valid for 15 minutes and is
// checked only when a connection logs in, so building it late costs nothing
// and never hands a client a stale one.
//
// Tokens, secret keys and session tokens are secrets. Nothing in this
// package logs them, and errors never carry them.
package authtoken
