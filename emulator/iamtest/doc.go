// Package iamtest puts emulated AWS and an emulated RDS IAM front before a
// PostgreSQL or MySQL/MariaDB server that a test already has (a CI service
// container, a testcontainers-go container, a local server), so that code
// which logs in with IAM database authentication can be tested without
// AWS.
//
// Given the server's address and an admin login, Start creates the IAM
// user as RDS would have it (PostgreSQL: a member of rds_iam; MySQL: a
// user that must use TLS), starts the emulator's STS, IMDS and RDS IAM
// front, and returns what the code under test needs: the RDS-like
// endpoint and the address to dial it at, the CA to verify it with, and
// the AWS environment whose credentials may rds-db:connect as the user.
// Its cleanup drops the user again.
//
// The front logs in to the server as the IAM user with a password only it
// knows (the server may use scram or mysql_native_password, as a CI
// service does): the only way in as that user is through the front, with
// a valid IAM token, as on RDS.
//
// Like the rest of the emulator, iamtest never imports the proxy: a test
// that runs the proxy against it checks the proxy against a second
// implementation.
package iamtest
