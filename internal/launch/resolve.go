package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Upstream is an upstream resolved from its settings: everything a login
// to it needs. run, token, whoami, doctor and validate all resolve their
// upstream here, so what one of them checks is what the proxy does.
//
// Resolving goes in stages, each filling in more: Parse (engine,
// endpoint; no I/O), CheckTLS (the TLS mode against the names), Open (the
// AWS configuration and credential chain), FindRegion, LoadTrust (the CA
// bundle). Resolve runs them all; doctor runs them one by one so that it
// can report each.
type Upstream struct {
	// Config is what the upstream was resolved from, with the engine and
	// the name filled in.
	Config Config
	// Endpoint is the name tokens are signed for and TLS verifies, and
	// its port.
	Endpoint config.Endpoint

	// TLS is the upstream's TLS mode and names, checked by CheckTLS (the
	// bundle comes with Trust).
	TLS tlsca.Upstream
	// Tokens signs tokens (from Open); Close stops its refresher.
	Tokens *authtoken.Source
	// Region is the DB's region, which tokens are signed for, and
	// RegionSource says where it came from (from FindRegion).
	Region, RegionSource string
	// Trust is the CA bundle and TLS configuration new logins use, kept
	// fresh by Start (from LoadTrust).
	Trust *tlsca.Trust

	bundle tlsca.Options // how Trust's bundle was loaded, to refresh it
	global *globalRegion // a global database's primary region, followed (global.go)
}

// Parse is the first stage: the engine (Postgres when unset), the
// endpoint and the name (the engine's when unset).
func Parse(c Config) (*Upstream, error) {
	return parse(c, true)
}

// ParseIdentity is Parse for whoami, which may be asked without an
// endpoint: then Endpoint stays zero, and the region comes from the
// settings or the AWS configuration.
func ParseIdentity(c Config) (*Upstream, error) {
	return parse(c, c.Endpoint != "")
}

func parse(c Config, endpoint bool) (*Upstream, error) {
	c.Engine = c.Engine.OrDefault()
	if err := c.Engine.Check(); err != nil {
		return nil, fmt.Errorf("--engine %q: supported engines: postgres, mysql, dsql", string(c.Engine))
	}
	if c.Name == "" {
		c.Name = c.Engine.String()
	}
	u := &Upstream{Config: c}
	if endpoint {
		ep, err := config.ParseEndpoint(c.Endpoint, c.Engine)
		if err != nil {
			return nil, err
		}
		u.Endpoint = ep
	}
	return u, nil
}

// Resolve runs every stage; on error nothing is left running.
func Resolve(ctx context.Context, c Config, log *slog.Logger) (*Upstream, error) {
	u, err := Parse(c)
	if err != nil {
		return nil, err
	}
	if err := u.load(ctx, log); err != nil {
		return nil, err
	}
	return u, nil
}

// load runs the stages after Parse. On error it closes what it opened.
func (u *Upstream) load(ctx context.Context, log *slog.Logger) error {
	if err := u.CheckTLS(); err != nil {
		return err
	}
	if err := u.OpenSigner(ctx, log); err != nil {
		return err
	}
	if err := u.LoadTrust(ctx, log); err != nil {
		u.Close()
		return err
	}
	return nil
}

// OpenSigner runs the stages signing needs, Open and FindRegion, and not
// the CA trust: token, whoami and setup policy stop here. On error it
// closes what it opened.
func (u *Upstream) OpenSigner(ctx context.Context, log *slog.Logger) error {
	if err := u.Open(ctx, log); err != nil {
		return err
	}
	if err := u.FindRegion(); err != nil {
		u.Close()
		return err
	}
	u.findGlobalRegion(ctx, log)
	return nil
}

// Token signs a fresh token for user, for the endpoint in the region.
func (u *Upstream) Token(ctx context.Context, user string) (string, error) {
	if u.Config.Engine == config.DSQL {
		return u.dsqlToken(ctx, user)
	}
	return u.Tokens.Token(ctx, u.Endpoint.Host, u.Endpoint.Port, u.Region, user)
}

// CheckTLS reads the TLS settings and refuses what must be refused before
// anything else starts: unknown modes, verify-ca or disable for RDS
// names, disable to a non-loopback address, contradictory bundle
// settings.
func (u *Upstream) CheckTLS() error {
	c := u.Config
	mode, err := tlsca.ParseMode(c.TLSMode)
	if err != nil {
		return err
	}
	t := tlsca.Upstream{Mode: mode, Host: u.Endpoint.Host, ServerName: c.TLSServerName, DialAddress: c.DialAddress}
	if err := t.Check(); err != nil {
		return err
	}
	if c.CABundle != "" && (c.CABundleURL != "" || c.CABundleRegion != "") {
		return errors.New("--ca-bundle names a file: drop --ca-bundle-url and --ca-bundle-region, which choose what to download")
	}
	if c.CABundleURL != "" && c.CABundleRegion != "" {
		return errors.New("--ca-bundle-url and --ca-bundle-region both choose what to download: pass one")
	}
	u.TLS = t
	return nil
}

// Open loads the AWS configuration and the credential chain, with the
// roles to assume on top of it. Nothing is fetched yet: the first
// credentials come with the first token (or a check that asks for them).
func (u *Upstream) Open(ctx context.Context, log *slog.Logger) error {
	opts, err := u.tokenOptions(log)
	if err != nil {
		return err
	}
	src, err := authtoken.New(ctx, opts)
	if err != nil {
		return err
	}
	u.Tokens = src
	return nil
}

// tokenOptions are the authtoken options the upstream's settings ask for.
func (u *Upstream) tokenOptions(log *slog.Logger) (authtoken.Options, error) {
	c := u.Config
	roles, err := c.Roles()
	if err != nil {
		return authtoken.Options{}, fmt.Errorf("--role-arn: %w", err)
	}
	// STS's region when the AWS configuration names none: the DB's.
	fallback := c.Region
	if fallback == "" {
		fallback = authtoken.RegionFromEndpoint(u.Endpoint.Host)
	}
	return authtoken.Options{Profile: c.Profile, Region: fallback, STSEndpoint: c.STSEndpoint,
		Roles: roles, ExternalID: c.ExternalID, RoleSessionName: c.RoleSessionName, RoleDuration: time.Duration(c.RoleDuration),
		Refresh: c.CredentialRefresh, Logger: log, LoadOptions: c.AWSLoadOptions,
		MFA:         authtoken.MFA{Serial: c.MFASerial, Code: c.MFACode, Duration: time.Duration(c.MFADuration), Prompt: c.MFAPrompt},
		MFASessions: c.MFASessions}, nil
}

// FindRegion settles the region tokens are signed for: the setting, else
// the endpoint name's, else the AWS configuration's. It needs Open.
func (u *Upstream) FindRegion() error {
	region, source, err := authtoken.ResolveRegion(u.Config.Region, u.Endpoint.Host, u.Tokens.ChainRegion())
	if err != nil && authtoken.GlobalClusterName(u.Endpoint.Host) != "" {
		return fmt.Errorf("no AWS region: %s is an Aurora global database endpoint, whose name carries none. Fix: set AWS_REGION (or the profile's region) to any region of the global database, so the proxy can look up its primary and follow it; or pass --region (not followed across switchovers)", u.Endpoint.Host)
	}
	if err != nil {
		return err
	}
	u.Region, u.RegionSource = region, source
	return nil
}

// LoadTrust loads the CA bundle (none for disable, which it warns about
// loudly) and makes the upstream's trust. It needs CheckTLS and
// FindRegion. Every engine's upstream TLS comes from here.
func (u *Upstream) LoadTrust(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, t := u.Config, u.TLS
	if t.Mode == tlsca.Disable {
		log.Warn("UPSTREAM TLS IS DISABLED (--tls-mode disable): IAM tokens and all data go to the upstream in plaintext; allowed only because it is on a loopback address. Never use this beyond local development.",
			"endpoint", t.Host, "dial_address", c.DialAddress)
	} else {
		bundleRegion := c.CABundleRegion
		if bundleRegion == "auto" {
			bundleRegion = u.Region
		}
		u.bundle = tlsca.Options{File: c.CABundle, URL: c.CABundleURL, Region: bundleRegion, DBRegion: u.Region,
			CacheDir: c.CacheDir, HTTPClient: c.CAHTTPClient, Logger: log}
		load := tlsca.Load
		if u.systemRoots() {
			load = systemBundle // DSQL: Amazon Root CA 1, never the RDS bundle
		}
		bundle, err := load(ctx, u.bundle)
		if err != nil {
			return err
		}
		t.Bundle = bundle
	}
	trust, err := tlsca.NewTrust(t)
	if err != nil {
		return err
	}
	u.Trust = trust
	return nil
}

// DialAddr is the address a connection to the upstream goes to: the dial
// address when there is one (a tunnel, the emulator), else the endpoint.
func (u *Upstream) DialAddr() string {
	if u.Config.DialAddress != "" {
		return u.Config.DialAddress
	}
	return u.Endpoint.String()
}

// Close stops the token source's background refresh, if Open ran.
func (u *Upstream) Close() {
	if u.Tokens != nil {
		u.Tokens.Close()
	}
}
