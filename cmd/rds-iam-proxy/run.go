package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/serve"
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
	fs := newFlagSet("run", runSynopsis, stderr)
	flags := config.Register(fs)
	if err := parseFlags(fs, args); err != nil {
		return exitForFlagError(err, stderr)
	}
	s, err := flags.Load()
	if err != nil {
		fmt.Fprintf(stderr, "rds-iam-proxy: the configuration has problems:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	log, err := newLogger(stderr, s.LogLevel, s.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "rds-iam-proxy:", err)
		return 2
	}
	return serve.Run(ctx, s, serve.Options{
		Log: log, Stderr: stderr,
		// A second SIGINT/SIGTERM during the drain exits at once.
		OnDrain: func() { signal.Reset(os.Interrupt, syscall.SIGTERM) },
	})
}

const runSynopsis = `rds-iam-proxy [run] --endpoint HOST:PORT [flags]
rds-iam-proxy [run] --upstream key=value,... [--upstream ...] [flags]
rds-iam-proxy [run] --config FILE [flags]

Serves PostgreSQL and MySQL clients on local addresses and logs each one in to
its RDS endpoint with a fresh IAM token over verify-full TLS.

Settings come from the YAML file (--config), then RDS_IAM_PROXY_<FLAG>
variables, then flags: the later wins. Upstreams given by flags (--endpoint
or --upstream) replace the file's. Settings such as --region or --tls-mode
are every upstream's default: within the file an upstream's own value wins
over the file's top level; given as a flag or variable, the setting wins
over the whole file, and an --upstream's own value wins over the flag.`
