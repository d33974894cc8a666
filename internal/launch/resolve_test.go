package launch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// TestParse: the engine defaults to Postgres and the name to the engine;
// a bad engine or endpoint stops the resolution before anything loads.
func TestParse(t *testing.T) {
	u, err := Parse(NewConfig("", "db.abc123.us-east-1.rds.amazonaws.com"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Config.Engine != config.Postgres || u.Config.Name != "postgres" || u.Endpoint.Port != 5432 || u.Endpoint.PortGiven || u.DialAddr() != "db.abc123.us-east-1.rds.amazonaws.com:5432" {
		t.Errorf("parsed: %+v", u)
	}
	c := NewConfig(config.MySQL, "db.abc123.us-east-1.rds.amazonaws.com")
	c.DialAddress = "127.0.0.1:13306"
	if u, err = Parse(c); err != nil || u.Endpoint.Port != 3306 || u.DialAddr() != "127.0.0.1:13306" {
		t.Errorf("mysql: %+v, %v", u, err)
	}
	for _, bad := range []struct {
		c    Config
		want string
	}{
		{NewConfig("oracle", "db.x.y:1"), `--engine "oracle": supported engines: postgres, mysql`},
		{NewConfig(config.Postgres, ""), "no endpoint: pass --endpoint HOST:PORT"},
		{NewConfig(config.Postgres, "db:1:2"), "want HOST or HOST:PORT"},
	} {
		if _, err := Parse(bad.c); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Parse(%q, %q): %v, want %q", bad.c.Engine, bad.c.Endpoint, err, bad.want)
		}
	}
	// whoami may go without an endpoint.
	if u, err := ParseIdentity(NewConfig("", "")); err != nil || u.Endpoint.Host != "" || u.Config.Engine != config.Postgres {
		t.Errorf("ParseIdentity without an endpoint: %+v, %v", u, err)
	}
}

// TestCheckTLS: what TLS refuses is refused before any credential or
// bundle is loaded.
func TestCheckTLS(t *testing.T) {
	rds := "db.abc123.us-east-1.rds.amazonaws.com:5432"
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown mode", func(c *Config) { c.TLSMode = "sometimes" }, "sometimes"},
		{"verify-ca for an RDS name", func(c *Config) { c.TLSMode = "verify-ca" }, "verify-full"},
		{"disable to a remote address", func(c *Config) {
			c.Endpoint, c.TLSMode, c.DialAddress = "db.internal:5432", "disable", "10.0.0.7:5432"
		}, "loopback"},
		{"bundle file and URL", func(c *Config) { c.CABundle, c.CABundleURL = "/x.pem", "https://x" }, "--ca-bundle names a file"},
		{"URL and region", func(c *Config) { c.CABundleURL, c.CABundleRegion = "https://x", "auto" }, "pass one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig(config.Postgres, rds)
			tc.mod(&c)
			u, err := Parse(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := u.CheckTLS(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckTLS: %v, want %q", err, tc.want)
			}
			if u.Tokens != nil || u.Trust != nil {
				t.Error("something was loaded")
			}
		})
	}
	u, _ := Parse(NewConfig(config.Postgres, rds))
	if err := u.CheckTLS(); err != nil || u.TLS.Mode != tlsca.VerifyFull || u.TLS.Host != "db.abc123.us-east-1.rds.amazonaws.com" {
		t.Errorf("default: %+v, %v", u.TLS, err)
	}
}

// TestServingMeanings: the settings' 0s mean what config documents when
// they reach the engines.
func TestServingMeanings(t *testing.T) {
	s := config.Serving{HandshakeTimeout: config.Duration(7 * time.Second)}
	if got := firstPacketTimeout(s); got != 7*time.Second {
		t.Errorf("first_packet_timeout 0 reaches the engine as %s, want the handshake timeout", got)
	}
	s.FirstPacketTimeout = config.Duration(2 * time.Second)
	if got := firstPacketTimeout(s); got != 2*time.Second {
		t.Errorf("first_packet_timeout 2s reaches the engine as %s", got)
	}
	if noCapIfZero(0) >= 0 || noCapIfZero(32) != 32 {
		t.Errorf("max_unanswered_greetings 0 reaches MySQL as %d (want no cap, negative), 32 as %d", noCapIfZero(0), noCapIfZero(32))
	}
}

// TestResolve: against the emulator, the resolution finds the region in
// the endpoint name, loads the bundle, and its Login logs in the proxy's
// way; a refused login is the engine's own typed error, for doctor to
// explain.
func TestResolve(t *testing.T) {
	c := frontConfig(t)
	s := stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := Resolve(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Region != "us-east-1" || !strings.Contains(u.RegionSource, "endpoint") {
		t.Errorf("region %q (%s), want us-east-1 from the endpoint name", u.Region, u.RegionSource)
	}
	ts, conf := u.Trust.Current()
	if conf == nil || ts.Bundle == nil || len(ts.Bundle.Certs) != 1 || ts.Bundle.Source != s.CAFile {
		t.Errorf("trust: %+v", ts)
	}
	if u.DialAddr() != s.Front.Addr() {
		t.Errorf("dials %s, want the front at %s", u.DialAddr(), s.Front.Addr())
	}
	if err := u.Login(ctx, Login{User: iamUser, Database: "postgres", Application: "launch test"}); err != nil {
		t.Fatalf("login as %s: %v", iamUser, err)
	}
	err = u.Login(ctx, Login{User: otherUser, Database: "postgres"})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.Contains(pgErr.Message, "PAM authentication failed") {
		t.Errorf("login as %s, whom no policy allows: %v, want the server's PAM failure", otherUser, err)
	}
	if err := u.Probe(ctx); err != nil {
		t.Errorf("probe: %v", err)
	}
}

// TestResolveFailures: a stage that fails leaves nothing running and
// says why.
func TestResolveFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := frontConfig(t)
	c.CABundle = "/nonexistent/bundle.pem"
	if _, err := Resolve(ctx, c, nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/bundle.pem") {
		t.Errorf("missing bundle: %v", err)
	}
	c = frontConfig(t)
	c.RoleARN = "not-an-arn"
	if _, err := Resolve(ctx, c, nil); err == nil || !strings.Contains(err.Error(), "--role-arn") {
		t.Errorf("bad role: %v", err)
	}
	c = frontConfig(t)
	c.Endpoint, c.TLSServerName = "db.internal.example:5432", stack(t).Front.Endpoint()
	c.AWSLoadOptions = append(append(c.AWSLoadOptions[:0:0], c.AWSLoadOptions...), func(o *awsconfig.LoadOptions) error { o.Region = ""; return nil })
	if _, err := Resolve(ctx, c, nil); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region anywhere: %v", err)
	}
}
