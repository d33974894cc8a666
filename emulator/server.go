package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Server serves an AWS world (STS and IMDS) over HTTP on a loopback port.
type Server struct {
	AWS *AWS
	CA  *CA
	srv *http.Server
	ln  net.Listener
}

// StartServer creates an AWS world and its CA and serves STS and IMDS on
// addr ("" = 127.0.0.1:0).
func StartServer(o Options, addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ca, err := NewCA("rds-iam-proxy emulator root CA")
	if err != nil {
		return nil, err
	}
	a := NewAWS(o)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	s := &Server{AWS: a, CA: ca, ln: ln,
		srv: &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("emulator HTTP server ended", "err", err)
		}
	}()
	return s, nil
}

// URL is the base URL of STS and IMDS.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// SDKEnv is the environment that points the AWS SDKs and CLI at this
// emulator: STS calls (also those inside the credential chain, which ignore
// AWS_ENDPOINT_URL), the RDS and IAM APIs (DescribeDBInstances,
// DescribeDBClusters, SimulatePrincipalPolicy) and IMDSv2 only.
func (s *Server) SDKEnv() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_STS":              s.URL(),
		"AWS_ENDPOINT_URL_RDS":              s.URL(),
		"AWS_ENDPOINT_URL_IAM":              s.URL(),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": s.URL() + "/",
		"AWS_EC2_METADATA_V1_DISABLED":      "true",
		"AWS_REGION":                        s.AWS.Region(),
	}
}

// IsolateProcessEnv points this process's AWS SDK chain at the emulator
// and at nothing else: every AWS_* variable is cleared (keys in the
// environment would win over the instance profile), SDKEnv is set, and the
// shared config and credentials files point at missing files in dir. It
// changes the process environment, so it is for demos and TestMain, not for
// code running beside other AWS users.
func (s *Server) IsolateProcessEnv(dir string) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AWS_") {
			os.Unsetenv(name)
		}
	}
	for k, v := range s.SDKEnv() {
		os.Setenv(k, v)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
}

// Close stops the HTTP server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
