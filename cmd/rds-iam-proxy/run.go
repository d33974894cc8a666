package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// upstreamFlags are the flags that describe one upstream, shared by run and
// token.
type upstreamFlags struct {
	engine, endpoint, dialAddress, region, dbUser, caBundle, caCacheDir, profile string

	caBundleURL, caBundleRegion, tlsMode, tlsServerName string
	creds                                               credFlags
}

func (u *upstreamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&u.engine, "engine", "postgres", "database engine: postgres or mysql")
	fs.StringVar(&u.endpoint, "endpoint", "", "RDS endpoint HOST:PORT; tokens are signed and TLS verified for this name")
	fs.StringVar(&u.dialAddress, "dial-address", "", "connect to this HOST:PORT instead of the endpoint (SSH/SSM tunnel, emulator)")
	fs.StringVar(&u.region, "region", "", "the DB's AWS region (default: from an RDS endpoint name, else AWS_REGION or the profile)")
	fs.StringVar(&u.dbUser, "db-user", "", "log in upstream as this user whatever user the client names")
	fs.StringVar(&u.caBundle, "ca-bundle", "", "PEM file of trusted CAs (default: download AWS's global RDS bundle and cache it)")
	fs.StringVar(&u.caCacheDir, "ca-cache-dir", "", "where to cache the downloaded RDS CA bundle (default: the user cache dir); same as --cache-dir")
	fs.StringVar(&u.caCacheDir, "cache-dir", "", "alias of --ca-cache-dir")
	fs.StringVar(&u.caBundleURL, "ca-bundle-url", "", "download the CA bundle from this https URL instead of AWS's trust store")
	fs.StringVar(&u.caBundleRegion, "ca-bundle-region", "", "download AWS's regional bundle for this region (\"auto\": the DB's region) instead of the global one")
	fs.StringVar(&u.tlsMode, "tls-mode", "verify-full", "upstream TLS: verify-full (the only mode for RDS names), verify-ca, or disable (loopback only; plaintext)")
	fs.StringVar(&u.tlsServerName, "tls-server-name", "", "name the upstream certificate must carry when it differs from --endpoint's (default: the endpoint's)")
	fs.StringVar(&u.profile, "profile", "", "AWS shared-config profile (default: AWS_PROFILE or default)")
	u.creds.register(fs)
}

func (u *upstreamFlags) config() launch.Config {
	c := launch.Config{Engine: u.engine, Endpoint: u.endpoint, DialAddress: u.dialAddress, Region: u.region,
		DBUser: u.dbUser, CABundle: u.caBundle, CACacheDir: u.caCacheDir, Profile: u.profile,
		CABundleURL: u.caBundleURL, CABundleRegion: u.caBundleRegion, TLSMode: u.tlsMode, TLSServerName: u.tlsServerName}
	u.creds.apply(&c)
	return c
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "rds-iam-proxy [run] --endpoint HOST:PORT [flags]\n\nServes PostgreSQL or MySQL clients on a local address and logs each one in to the\nRDS endpoint with a fresh IAM token over verify-full TLS.", stderr)
	var up upstreamFlags
	var lf logFlags
	up.register(fs)
	lf.register(fs)
	listen := fs.String("listen", "", "local address to serve clients on (default 127.0.0.1:6432 for postgres, 127.0.0.1:3307 for mysql)")
	handshake := fs.Duration("handshake-timeout", 30*time.Second, "limit for a client's whole login")
	connect := fs.Duration("connect-timeout", 15*time.Second, "limit for the upstream dial, TLS and login")
	drain := fs.Duration("max-shutdown-delay", 30*time.Second, "on SIGTERM/SIGINT, how long open connections may finish (a second signal exits at once)")
	caRefresh := fs.Duration("ca-refresh", 24*time.Hour, "how often a running proxy reloads the CA bundle (re-reads the file, or revalidates the download) for new connections; 0: never")
	maxConns := fs.Int("max-connections", 0, "cap on client connections; over it clients get \"too many connections\" (0: no cap)")
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy:", err)
		return 2
	}
	cfg := up.config()
	cfg.Listen, cfg.HandshakeTimeout, cfg.ConnectTimeout, cfg.MaxConnections = *listen, *handshake, *connect, *maxConns
	cfg.CARefresh = *caRefresh
	if *caRefresh == 0 {
		cfg.CARefresh = -1 // the flag's 0 means never; launch's 0 means the default
	}
	r, err := launch.Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy:", err)
		return 1
	}
	return serveUntilDone(ctx, r, *drain, stderr)
}

// serveUntilDone waits for a signal (ctx) or a fatal accept error, then
// drains: exit 0 when every connection ended by itself.
func serveUntilDone(ctx context.Context, r *launch.Running, drain time.Duration, stderr io.Writer) int {
	select {
	case err := <-r.Done():
		if err != nil {
			fmt.Fprintln(stderr, "rds-iam-proxy: accept failed:", err)
			return 1
		}
	case <-ctx.Done():
		// A second SIGINT/SIGTERM during the drain exits at once.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if !r.Shutdown(sctx) {
		fmt.Fprintf(stderr, "rds-iam-proxy: connections still open after %s were closed\n", drain)
		return 1
	}
	return 0
}
