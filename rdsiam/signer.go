package rdsiam

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// Options name the database and how to sign for it. They mean what the
// proxy's settings of the same names mean (rds-iam-proxy help run).
type Options struct {
	// Engine is "postgres" (default) or "mysql" (also Aurora MySQL and
	// MariaDB).
	Engine string
	// Endpoint is the RDS endpoint HOST[:PORT] (the port defaults to the
	// engine's): tokens are signed for this name and port and TLS
	// verifies the name.
	Endpoint string
	// User is the database user to log in as and sign tokens for
	// (case-sensitive). Required.
	User string
	// DialAddress, when set, is where connections go instead of the
	// endpoint (an SSH or SSM tunnel, the emulator).
	DialAddress string

	// Region is the DB's region; default: from the endpoint name, else
	// the AWS configuration.
	Region string
	// Profile is the AWS profile; default: the SDK's chain.
	Profile string
	// RoleARN is a role, or a comma-separated chain of roles, to assume
	// before signing; ExternalID and RoleSessionName go with it.
	RoleARN, ExternalID, RoleSessionName string

	// CABundle is a PEM file of CAs; default: the RDS bundle, downloaded
	// and cached (CABundleURL, CABundleRegion, CacheDir choose which and
	// where, as the proxy's settings).
	CABundle, CABundleURL, CABundleRegion, CacheDir string
	// CARefresh is how often the CA bundle is reloaded (0: every 24 h;
	// negative: never).
	CARefresh time.Duration
	// TLSServerName is the name the certificate must carry when it is not
	// the endpoint's (a custom DNS name in front of RDS).
	TLSServerName string

	// AWSLoadOptions are extra options for the AWS configuration.
	AWSLoadOptions []func(*awsconfig.LoadOptions) error
	// Logger receives the signer's log (credential refreshes, CA bundle
	// reloads); nil: none. Tokens and keys are never logged.
	Logger *slog.Logger
}

// Signer signs IAM tokens for one database user on one endpoint and
// knows how to verify that endpoint. It is safe for concurrent use; Close
// it when done.
type Signer struct {
	up   *launch.Upstream
	user string
	log  *slog.Logger

	stop context.CancelFunc
	done sync.WaitGroup
}

// New resolves the endpoint as the proxy does: the AWS configuration and
// credential chain (with the roles to assume), the region, the CA bundle.
// A missing MFA code or an unreadable CA bundle fails here, not at the
// first connection. No token is signed yet.
func New(ctx context.Context, o Options) (*Signer, error) {
	if o.User == "" {
		return nil, errors.New("rdsiam: Options.User (the database user) is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := launch.NewConfig(config.Engine(o.Engine), o.Endpoint)
	c.DBUser, c.DialAddress, c.Region, c.Profile = o.User, o.DialAddress, o.Region, o.Profile
	c.RoleARN, c.ExternalID, c.RoleSessionName = o.RoleARN, o.ExternalID, o.RoleSessionName
	c.CABundle, c.CABundleURL, c.CABundleRegion, c.CacheDir = o.CABundle, o.CABundleURL, o.CABundleRegion, o.CacheDir
	c.TLSMode, c.TLSServerName = "verify-full", o.TLSServerName
	c.AWSLoadOptions = o.AWSLoadOptions
	up, err := launch.Resolve(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if err := up.Tokens.Prepare(ctx); err != nil {
		up.Close()
		return nil, err
	}
	fresh, stop := context.WithCancel(context.Background())
	s := &Signer{up: up, user: o.User, log: log, stop: stop}
	s.done.Go(func() { up.KeepTrustFresh(fresh, o.CARefresh) })
	return s, nil
}

// Close stops the credential refresh and the CA bundle reloads.
func (s *Signer) Close() error {
	s.stop()
	s.done.Wait()
	s.up.Close()
	return nil
}

// Token signs a fresh IAM auth token for the user (valid 15 minutes, for
// one login). The hooks below call it for every connection.
func (s *Signer) Token(ctx context.Context) (string, error) {
	return s.up.Token(ctx, s.user)
}

// User is the database user tokens are signed for.
func (s *Signer) User() string { return s.user }

// Endpoint is the endpoint's name, which tokens are signed for and TLS
// verifies; Port is its port.
func (s *Signer) Endpoint() string { return s.up.Endpoint.Host }

// Port is the endpoint's port.
func (s *Signer) Port() int { return s.up.Endpoint.Port }

// Region is the region tokens are signed for.
func (s *Signer) Region() string { return s.up.Region }

// DialAddr is where connections go: the dial address, else the endpoint.
func (s *Signer) DialAddr() string { return s.up.DialAddr() }

// TLSConfig is the verify-full configuration for a new connection, from
// the CA bundle as it is now (it is reloaded in the background): take a
// new one for every connection.
func (s *Signer) TLSConfig() *tls.Config {
	_, conf := s.up.Trust.Current()
	return conf.Clone()
}
