// Package launch wires one proxy together from its configuration: CA
// bundle, AWS credentials, region, engine front, listener and accept loop.
// The run command, the demo and the integration tests all start the proxy
// through it, so what is tested is what runs.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/mysql"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy/postgres"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// Config is one upstream and how to serve it.
type Config struct {
	Engine string // "postgres" or "mysql"
	// Endpoint is the RDS endpoint, host:port (the port defaults to the
	// engine's). Tokens are signed and TLS is verified for this name.
	Endpoint string
	// DialAddress, when set, is dialed instead of Endpoint (tunnels, the
	// emulator).
	DialAddress string
	Listen      string // default 127.0.0.1:6432 for postgres, 127.0.0.1:3307 for mysql
	Region      string // "" = from the endpoint name, else the AWS chain
	DBUser      string // pins the upstream user
	CABundle    string // file; "" = download and cache the global bundle
	CACacheDir  string
	Profile     string

	// CABundleURL downloads the bundle from here instead of AWS's
	// (--ca-bundle-url); https, or http to a loopback address.
	CABundleURL string
	// CABundleRegion downloads AWS's regional bundle for this region
	// (--ca-bundle-region); "auto" means the DB's region. Default: the
	// global bundle of the DB's partition (commercial, GovCloud, China).
	CABundleRegion string
	// CAHTTPClient downloads the bundle (tests point it at a local HTTPS
	// server); nil: the default client.
	CAHTTPClient *http.Client
	// TLSMode is verify-full (""), verify-ca, or disable (loopback only).
	TLSMode string
	// TLSServerName is the name the upstream certificate must carry when
	// it is not the endpoint's (--tls-server-name).
	TLSServerName string
	// CARefresh is how often a running proxy reloads the bundle (a file is
	// re-read, a download revalidated) and applies a changed one to new
	// connections; 0 means tlsca.DefaultMaxAge (a day), negative never.
	CARefresh time.Duration

	// Name labels this upstream in logs and metrics; default the engine.
	Name string
	// MaxConnections caps this upstream's client connections; 0 means no
	// cap. Shared is a cap over several upstreams (nil: none).
	MaxConnections   int
	Shared           *proxy.Limit
	HandshakeTimeout time.Duration
	ConnectTimeout   time.Duration
	// IdleTimeout ends sessions idle this long (0: never).
	IdleTimeout time.Duration
	// UpstreamTCPTimeout bounds how long the network path to the upstream
	// may be dead before a session ends with an error (see
	// proxy.DialUpstream; 0: proxy.DefaultUpstreamTCPTimeout, negative: off).
	UpstreamTCPTimeout time.Duration
	// AllowNonLoopback lets Listen be an address other machines can reach
	// (anyone who reaches it logs in as the database user).
	AllowNonLoopback bool
	// SocketMode is a unix socket listener's file mode (default 0600).
	SocketMode fs.FileMode
	// KeepAlive is the TCP keepalive period of client connections (0: 15s,
	// negative: off).
	KeepAlive time.Duration
	// Observer hears about connections (metrics); nil: none.
	Observer proxy.Observer

	// MaxHandshakes caps the connections accepted and not yet relaying
	// (see proxy.Server.LimitHandshakes): 0 means DefaultMaxHandshakes,
	// negative no cap.
	MaxHandshakes int
	// FirstPacketTimeout bounds the wait for a client's first packet (0:
	// proxy.DefaultFirstPacketTimeout).
	FirstPacketTimeout time.Duration
	// MaxUnansweredGreetings caps MySQL's upstream connections held for
	// clients that have not answered the greeting (see
	// mysql.Config.MaxUnansweredGreetings): 0 means the default, negative
	// no cap.
	MaxUnansweredGreetings int
	// AllowLocalInfile lets MySQL clients use LOAD DATA LOCAL INFILE.
	AllowLocalInfile bool

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

// DefaultMaxHandshakes is Config.MaxHandshakes's default: far above what
// a sidecar's application opens at once (a pool's burst at start, a
// storm of a thousand clients), far below what exhausts file descriptors
// or memory.
const DefaultMaxHandshakes = 1024

// defaultPort is an engine's port, used when an endpoint has none.
func defaultPort(engine string) int {
	if engine == "mysql" {
		return 3306
	}
	return 5432
}

// DefaultListen is where an engine's proxy listens unless told: loopback,
// one above the engine's port so a local server can keep its own.
func DefaultListen(engine string) string {
	if engine == "mysql" {
		return "127.0.0.1:3307"
	}
	return "127.0.0.1:6432"
}

// Running is a started proxy.
type Running struct {
	trust    *tlsca.Trust
	engine   string
	upstream mysql.Upstream // for MySQL probes
	dialAddr string
	name     string
	limit    *proxy.Limit
	ln       net.Listener
	srv      *proxy.Server
	cancel   context.CancelFunc
	done     chan error
	log      *slog.Logger
	tokens   *authtoken.Source
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
	if c.Engine != "postgres" && c.Engine != "mysql" {
		return nil, fmt.Errorf("--engine %q: supported engines: postgres, mysql", c.Engine)
	}
	if c.AllowLocalInfile && c.Engine != "mysql" {
		return nil, fmt.Errorf("--allow-local-infile is for mysql upstreams (LOAD DATA LOCAL INFILE); this one is %s", c.Engine)
	}
	host, port, err := SplitEndpoint(c.Endpoint, c.Engine)
	if err != nil {
		return nil, err
	}
	if c.Listen == "" {
		c.Listen = DefaultListen(c.Engine)
	}
	if c.Name == "" {
		c.Name = c.Engine
	}
	spec, err := ParseListen(c.Listen, c.Engine, port)
	if err != nil {
		return nil, fmt.Errorf("listen %w", err)
	}
	if !spec.Loopback() && !c.AllowNonLoopback {
		return nil, fmt.Errorf("listen %s is not a loopback address: anyone who can reach it logs in as the database user. Fix: listen on 127.0.0.1 or a unix socket, or pass --allow-non-loopback (and firewall the port)", spec)
	}
	log = log.With("upstream_name", c.Name)
	limit := proxy.NewLimit(c.MaxConnections, "")

	tlsUp, err := tlsSettings(c, host)
	if err != nil {
		return nil, err
	}

	tokens, err := authtoken.New(ctx, c.TokenOptions(host, log))
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			tokens.Close() // stops its background refresh
		}
	}()
	region, note, err := authtoken.ResolveRegion(c.Region, host, tokens.ChainRegion())
	if err != nil {
		return nil, err
	}

	trust, bundleOpts, err := loadTrust(ctx, c, tlsUp, region, log)
	if err != nil {
		return nil, err
	}
	tlsUp, tlsConf := trust.Current()
	bundleSource := ""
	if tlsUp.Bundle != nil {
		bundleSource = tlsUp.Bundle.Source
	}

	settings := proxy.Settings{
		Region: region, DBUser: c.DBUser, Tokens: tokens, Limits: []*proxy.Limit{limit, c.Shared},
		IdleTimeout: c.IdleTimeout, HandshakeTimeout: c.HandshakeTimeout, ConnectTimeout: c.ConnectTimeout,
		FirstPacketTimeout: c.FirstPacketTimeout, Logger: log, Observer: c.Observer,
	}
	var h proxy.Handler
	switch c.Engine {
	case "mysql":
		h, err = mysql.New(mysql.Config{
			Upstream:               mysql.Upstream{Host: host, Port: port, DialAddress: c.DialAddress, Trust: trust, TCPTimeout: c.UpstreamTCPTimeout},
			MaxUnansweredGreetings: c.MaxUnansweredGreetings, AllowLocalInfile: c.AllowLocalInfile,
			Settings: settings,
		})
	default:
		h, err = postgres.New(postgres.Config{
			Upstream: postgres.Upstream{Host: host, Port: port, DialAddress: c.DialAddress, TLS: tlsConf, TLSSettings: tlsUp, Trust: trust, TCPTimeout: c.UpstreamTCPTimeout},
			CABundle: bundleSource,
			Settings: settings,
		})
	}
	if err != nil {
		return nil, err
	}

	ln, err := Listen(ctx, spec, ListenOptions{KeepAlive: c.KeepAlive, SocketMode: c.SocketMode})
	if err != nil {
		return nil, err
	}
	if !spec.Loopback() {
		log.Warn("listening on a non-loopback address (--allow-non-loopback): anyone who can reach it logs in as the database user", "listen", ln.Addr().String())
	}
	if c.AllowLocalInfile {
		log.Warn("LOAD DATA LOCAL INFILE is allowed (allow_local_infile): the server can ask a client for any file the client can read")
	}
	srv := proxy.NewServer(h, log)
	maxHandshakes := c.MaxHandshakes
	if maxHandshakes == 0 {
		maxHandshakes = DefaultMaxHandshakes
	}
	srv.LimitHandshakes(maxHandshakes, 0)
	sctx, cancel := context.WithCancel(context.Background())
	r := &Running{ln: ln, srv: srv, engine: c.Engine, upstream: mysql.Upstream{Host: host, Port: port, DialAddress: c.DialAddress, Trust: trust}, cancel: cancel, done: make(chan error, 1), log: log, name: c.Name, limit: limit, tokens: tokens, trust: trust, dialAddr: dialAddr(c.DialAddress, host, port)}
	go func() { r.done <- r.srv.Serve(sctx, ln) }()
	refresh := c.CARefresh
	if refresh == 0 {
		refresh = tlsca.DefaultMaxAge
	}
	if tlsUp.Mode != tlsca.Disable && refresh > 0 {
		go trust.KeepFresh(sctx, bundleOpts, refresh)
	}
	attrs := []any{"engine", c.Engine, "listen", ln.Addr().String(), "endpoint", net.JoinHostPort(host, strconv.Itoa(port)),
		"region", region, "region_source", note, "tls_mode", string(tlsUp.Mode), "tls_server_name", tlsUp.ExpectedName()}
	if tlsUp.Bundle != nil {
		attrs = append(attrs, "ca_bundle", tlsUp.Bundle.Source, "cas", len(tlsUp.Bundle.Certs))
	}
	if c.DialAddress != "" {
		attrs = append(attrs, "dial_address", c.DialAddress)
	}
	if c.DBUser != "" {
		attrs = append(attrs, "db_user", c.DBUser)
	}
	log.Info("proxy ready", attrs...)
	started = true
	return r, nil
}

// tlsSettings reads the TLS flags and refuses what must be refused before
// anything else starts: unknown modes, verify-ca or disable for RDS names,
// disable to a non-loopback address, contradictory bundle flags.
func tlsSettings(c Config, host string) (tlsca.Upstream, error) {
	mode, err := tlsca.ParseMode(c.TLSMode)
	if err != nil {
		return tlsca.Upstream{}, err
	}
	u := tlsca.Upstream{Mode: mode, Host: host, ServerName: c.TLSServerName, DialAddress: c.DialAddress}
	if err := u.Check(); err != nil {
		return tlsca.Upstream{}, err
	}
	if c.CABundle != "" && (c.CABundleURL != "" || c.CABundleRegion != "") {
		return tlsca.Upstream{}, errors.New("--ca-bundle names a file: drop --ca-bundle-url and --ca-bundle-region, which choose what to download")
	}
	if c.CABundleURL != "" && c.CABundleRegion != "" {
		return tlsca.Upstream{}, errors.New("--ca-bundle-url and --ca-bundle-region both choose what to download: pass one")
	}
	return u, nil
}

// loadTrust loads the CA bundle for u (none for disable, which it warns
// about loudly) and returns the upstream's trust, plus the options a
// refresh loads the bundle with. Engine-independent: every engine's
// upstream TLS comes from here.
func loadTrust(ctx context.Context, c Config, u tlsca.Upstream, region string, log *slog.Logger) (*tlsca.Trust, tlsca.Options, error) {
	var opts tlsca.Options
	if u.Mode == tlsca.Disable {
		log.Warn("UPSTREAM TLS IS DISABLED (--tls-mode disable): IAM tokens and all data go to the upstream in plaintext; allowed only because it is on a loopback address. Never use this beyond local development.",
			"endpoint", u.Host, "dial_address", c.DialAddress)
	} else {
		bundleRegion := c.CABundleRegion
		if bundleRegion == "auto" {
			bundleRegion = region
		}
		opts = tlsca.Options{File: c.CABundle, URL: c.CABundleURL, Region: bundleRegion, DBRegion: region,
			CacheDir: c.CACacheDir, HTTPClient: c.CAHTTPClient, Logger: log}
		bundle, err := tlsca.Load(ctx, opts)
		if err != nil {
			return nil, opts, err
		}
		u.Bundle = bundle
	}
	trust, err := tlsca.NewTrust(u)
	return trust, opts, err
}

// Name is the upstream's name.
func (r *Running) Name() string { return r.name }

// Limit is this upstream's own connection limit (nil: none).
func (r *Running) Limit() *proxy.Limit { return r.limit }

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
	// Closed here, not only by the accept loop's goroutine: the process may
	// exit as soon as Shutdown returns, and a unix socket file is removed
	// by Close.
	r.ln.Close()
	defer r.tokens.Close()
	return r.srv.Shutdown(ctx)
}

// CABundle is the CA bundle new connections trust (nil with --tls-mode
// disable), for its age and size in metrics.
func (r *Running) CABundle() *tlsca.Bundle {
	up, _ := r.trust.Current()
	return up.Bundle
}

// DialAddr is the upstream address dialed, for the readiness backend check.
func (r *Running) DialAddr() string { return r.dialAddr }

func dialAddr(dial, host string, port int) string {
	if dial != "" {
		return dial
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
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

// SplitEndpoint parses --endpoint: host[:port], the port defaulting to the
// engine's.
func SplitEndpoint(ep, engine string) (string, int, error) {
	if ep == "" {
		return "", 0, errors.New("no endpoint: pass --endpoint HOST:PORT, the RDS endpoint (e.g. mydb.abc123.us-east-1.rds.amazonaws.com:5432)")
	}
	host, portText, err := net.SplitHostPort(ep)
	if err != nil {
		if strings.ContainsAny(ep, ":/[]") {
			return "", 0, fmt.Errorf("--endpoint %q: want HOST or HOST:PORT, the RDS endpoint name", ep)
		}
		// No port: take the engine's default.
		return ep, defaultPort(engine), nil
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("--endpoint %q: invalid port", ep)
	}
	return host, port, nil
}
