// Package authtoken turns AWS credentials into RDS IAM authentication tokens.
//
// Credentials come from the AWS SDK's default chain (environment, shared
// profiles, web identity, container and EC2 instance credentials), exactly as
// the AWS CLI finds them, and are cached and refreshed ahead of expiry by the
// SDK's credentials cache. A token is built per connection: it is only valid
// for 15 minutes and is checked only when a connection logs in, so building it
// late costs nothing and never hands a client a stale one.
//
// Tokens are secrets. Nothing in this package logs them, and errors never
// carry them.
package authtoken
