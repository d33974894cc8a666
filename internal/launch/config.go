package launch

import (
	"context"
	"net/http"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/rds-iam-proxy/rds-iam-proxy/authtoken"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Config is one upstream and how to serve it. The upstream and the
// serving settings are config's own types, not copies of them: what a
// file, a variable or a flag says reaches the proxy with the meaning
// config documents. The rest is what the program that embeds the proxy
// adds.
type Config struct {
	// Upstream is the upstream as configured. config checks it when it
	// comes from a file or flags; Resolve and Start check again whatever
	// they need, for the programs and tests that build a Config by hand.
	config.Upstream
	// Serving are the timeouts and caps; start from
	// config.DefaultServing(): a zero Serving has no caps at all.
	config.Serving

	// Shared is a cap on client connections over several upstreams (nil:
	// none).
	Shared *proxy.Limit
	// Guard paces IAM logins per endpoint over several upstreams (nil:
	// one of this upstream's own, from the serving settings).
	Guard *proxy.LoginGuard
	// Observer hears about connections (metrics); nil: none.
	Observer proxy.Observer

	// AWSLoadOptions are extra options for the AWS configuration (tests
	// and the demo point the SDK at the emulator).
	AWSLoadOptions []func(*awsconfig.LoadOptions) error
	// CAHTTPClient downloads the CA bundle (tests point it at a local
	// HTTPS server); nil: the default client.
	CAHTTPClient *http.Client
	// CredentialRefresh tunes the background credentials refresh.
	CredentialRefresh authtoken.Refresh
	// MFAPrompt asks a person for an MFA code (the run command's, on the
	// terminal); nil: no terminal, so a code must come from mfa_code or
	// the AWS CLI cache.
	MFAPrompt func(ctx context.Context, serial string) (string, error)
	// MFASessions shares MFA sessions between the upstreams of one
	// process, so one code serves them all; nil: none shared.
	MFASessions *authtoken.MFASessions
}

// NewConfig is a Config for the engine's upstream at endpoint with the
// default serving settings, for programs and tests that build one by hand
// rather than from config (the demo, the benchmarks, the tests); set the
// rest as fields (c.DialAddress, c.CABundle, ...).
func NewConfig(e config.Engine, endpoint string) Config {
	c := Config{Serving: config.DefaultServing()}
	c.Engine, c.Endpoint = e, endpoint
	return c
}
