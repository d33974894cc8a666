// Package launch wires one proxy together from its configuration: CA
// bundle, AWS credentials, region, engine front, listener and accept loop.
// The run command, the demo and the integration tests all start the proxy
// through it, so what is tested is what runs.
package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Config is one upstream and how to serve it.
type Config struct {
	Engine string // "postgres"
	// Endpoint is the RDS endpoint, host:port (the port defaults to the
	// engine's). Tokens are signed and TLS is verified for this name.
	Endpoint string
	// DialAddress, when set, is dialed instead of Endpoint (tunnels, the
	// emulator).
	DialAddress string
	Listen      string // default 127.0.0.1:6432 for postgres
	Region      string // "" = from the endpoint name, else the AWS chain
	DBUser      string // pins the upstream user
	CABundle    string // file; "" = download and cache the global bundle
	CACacheDir  string
	Profile     string

	// MaxConnections caps client connections; 0 means no cap.
	MaxConnections   int
	HandshakeTimeout time.Duration
	ConnectTimeout   time.Duration

	// AWSLoadOptions are extra options for the AWS configuration.
	AWSLoadOptions []func(*config.LoadOptions) error

	// Roles to assume in order on top of the chain's credentials
	// (--role-arn a,b), with ExternalID, RoleSessionName and RoleDuration.
	Roles           []string
	ExternalID      string
	RoleSessionName string
	RoleDuration    time.Duration
	// STSEndpoint overrides every STS call's endpoint (--sts-endpoint).
	STSEndpoint string
	// CredentialRefresh tunes the background credentials refresh.
	CredentialRefresh authtoken.Refresh
}

// defaultPort is an engine's port, used when an endpoint has none.
func defaultPort(engine string) int {
	if engine == "mysql" {
		return 3306
	}
	return 5432
}

// Running is a started proxy.
type Running struct {
	ln     net.Listener
	srv    *proxy.Server
	cancel context.CancelFunc
	done   chan error
	log    *slog.Logger
	tokens *authtoken.Source
}

// Start loads what the proxy needs, failing early on anything wrong with the
// configuration, then listens and serves until Shutdown.
func Start(ctx context.Context, c Config, log *slog.Logger) (*Running, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Engine == "" {
		c.Engine = "postgres"
	}
	if c.Engine != "postgres" {
		return nil, fmt.Errorf("--engine %q: supported engines: postgres", c.Engine)
	}
	host, port, err := SplitEndpoint(c.Endpoint, c.Engine)
	if err != nil {
		return nil, err
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:6432"
	}

	bundle, err := tlsca.Load(ctx, tlsca.Options{File: c.CABundle, CacheDir: c.CACacheDir, Logger: log})
	if err != nil {
		return nil, err
	}

	tokens, err := authtoken.New(ctx, c.TokenOptions(host, log))
	if err != nil {
		return nil, err
	}
	region, note, err := authtoken.ResolveRegion(c.Region, host, tokens.ChainRegion())
	if err != nil {
		return nil, err
	}

	p, err := postgres.New(postgres.Config{
		Upstream:         postgres.Upstream{Host: host, Port: port, DialAddress: c.DialAddress, TLS: bundle.ClientConfig(host)},
		Region:           region,
		DBUser:           c.DBUser,
		Tokens:           tokens,
		CABundle:         bundle.Source,
		MaxConnections:   c.MaxConnections,
		HandshakeTimeout: c.HandshakeTimeout,
		ConnectTimeout:   c.ConnectTimeout,
		Logger:           log,
	})
	if err != nil {
		tokens.Close()
		return nil, err
	}

	ln, err := listen(c.Listen)
	if err != nil {
		tokens.Close()
		return nil, err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("listening on a non-loopback address: anyone who can reach it logs in as the database user", "listen", ln.Addr().String())
	}
	sctx, cancel := context.WithCancel(context.Background())
	r := &Running{ln: ln, srv: proxy.NewServer(p, log), cancel: cancel, done: make(chan error, 1), log: log, tokens: tokens}
	go func() { r.done <- r.srv.Serve(sctx, ln) }()
	attrs := []any{"engine", c.Engine, "listen", ln.Addr().String(), "endpoint", net.JoinHostPort(host, strconv.Itoa(port)),
		"region", region, "region_source", note, "ca_bundle", bundle.Source, "cas", len(bundle.Certs)}
	if c.DialAddress != "" {
		attrs = append(attrs, "dial_address", c.DialAddress)
	}
	if c.DBUser != "" {
		attrs = append(attrs, "db_user", c.DBUser)
	}
	log.Info("proxy ready", attrs...)
	return r, nil
}

// Addr is the listening address.
func (r *Running) Addr() net.Addr { return r.ln.Addr() }

// Port is the listening TCP port, for printing and for clients' DSNs.
func (r *Running) Port() string {
	_, port, _ := net.SplitHostPort(r.ln.Addr().String())
	return port
}

// Done delivers the accept loop's end: nil after Shutdown, an error if
// accepting failed.
func (r *Running) Done() <-chan error { return r.done }

// Shutdown stops accepting, waits for open connections until ctx is done,
// then cuts the rest. It reports whether every connection ended by itself.
func (r *Running) Shutdown(ctx context.Context) bool {
	r.cancel()
	defer r.tokens.Close()
	return r.srv.Shutdown(ctx)
}

// Tokens is the proxy's token source, for its counters (Stats).
func (r *Running) Tokens() *authtoken.Source { return r.tokens }

// TokenOptions are the authtoken options c asks for; host is the endpoint
// name (its region is STS's fallback region).
func (c Config) TokenOptions(host string, log *slog.Logger) authtoken.Options {
	fallback := c.Region
	if fallback == "" {
		fallback = authtoken.RegionFromEndpoint(host)
	}
	return authtoken.Options{Profile: c.Profile, Region: fallback, STSEndpoint: c.STSEndpoint,
		Roles: c.Roles, ExternalID: c.ExternalID, RoleSessionName: c.RoleSessionName, RoleDuration: c.RoleDuration,
		Refresh: c.CredentialRefresh, Logger: log, LoadOptions: c.AWSLoadOptions}
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// SplitEndpoint parses --endpoint: host[:port], the port defaulting to the
// engine's.
func SplitEndpoint(ep, engine string) (string, int, error) {
	if ep == "" {
		return "", 0, errors.New("no endpoint: pass --endpoint HOST:PORT, the RDS endpoint (e.g. mydb.abc123.us-east-1.rds.amazonaws.com:5432)")
	}
	host, portText, err := net.SplitHostPort(ep)
	if err != nil {
		// No port: take the engine's default.
		return ep, defaultPort(engine), nil
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("--endpoint %q: invalid port", ep)
	}
	return host, port, nil
}
