package tlspg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// UseStaticKeys leaves made-up static AWS keys as the process's only AWS
// settings: the proxy signs a real token per login with them, and the
// server trusts every login, so the figures are the proxy's cost rather
// than an IAM check's. No profile, config file or instance metadata is
// consulted.
func (s *Server) UseStaticKeys() {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	os.Setenv("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK0000000")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "benchmark-secret-key-not-a-real-one-000")
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(s.Dir, "none"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(s.Dir, "none"))
}

// ProxyConfig is a proxy for endpoint in front of this server, verifying
// its certificate with the bench CA and listening on a free loopback port.
func (s *Server) ProxyConfig(endpoint string) launch.Config {
	pc := launch.NewConfig(config.Postgres, fmt.Sprintf("%s:%d", endpoint, s.PG.Port))
	pc.DialAddress, pc.Listen, pc.CABundle = s.PG.Addr(), "127.0.0.1:0", s.CAFile
	return pc
}
