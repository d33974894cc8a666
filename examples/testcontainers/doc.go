// Package tciamtest shows iamtest in front of a PostgreSQL that
// testcontainers-go starts. It needs a Docker engine, which the machines
// that test rds-iam-proxy do not have, so its CI only compiles it (go vet);
// it is a module of its own so that testcontainers stays out of
// rds-iam-proxy's own go.mod.
package tciamtest
