package launch

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/tlsca"
)

// countingTransport counts the requests it is asked to make and makes
// none.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("no network in this test")
}

// loadTrust runs the TLS stages of c's resolution (no credentials
// needed), downloading through rt into an empty cache.
func loadTrust(t *testing.T, c Config, rt http.RoundTripper) (*Upstream, error) {
	t.Helper()
	c.CAHTTPClient, c.CacheDir = &http.Client{Transport: rt}, t.TempDir()
	u, err := Parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.CheckTLS(); err != nil {
		t.Fatal(err)
	}
	u.Region = "us-east-1"
	return u, u.LoadTrust(context.Background(), nil)
}

// TestDSQLTrustsSystemRoots: a DSQL upstream verifies against the
// system's roots with the cluster's name (verify-full, SNI) and never
// downloads the RDS bundle, which a Postgres upstream with the same
// settings does; --ca-bundle still wins.
func TestDSQLTrustsSystemRoots(t *testing.T) {
	const host = "abc123.dsql.us-east-1.on.aws"
	rt := &countingTransport{}
	u, err := loadTrust(t, NewConfig(config.DSQL, host), rt)
	if err != nil {
		t.Fatal(err)
	}
	ts, conf := u.Trust.Current()
	if ts.Bundle == nil || !ts.Bundle.System || ts.Bundle.Describe() != tlsca.SystemSource {
		t.Errorf("bundle %+v, want the system's roots", ts.Bundle)
	}
	if conf == nil || conf.ServerName != host || conf.RootCAs == nil || conf.InsecureSkipVerify || ts.Mode != tlsca.VerifyFull {
		t.Errorf("TLS config %+v, mode %s: want verify-full for %s", conf, ts.Mode, host)
	}
	if rt.n.Load() != 0 {
		t.Errorf("a DSQL upstream made %d downloads", rt.n.Load())
	}
	// The same settings on Postgres download the RDS bundle: the counter
	// sees downloads when there are any.
	if _, err := loadTrust(t, NewConfig(config.Postgres, "db.abc.us-east-1.rds.amazonaws.com"), rt); err == nil || rt.n.Load() == 0 {
		t.Errorf("postgres: %v after %d downloads, want a failed download", err, rt.n.Load())
	}
	c := NewConfig(config.DSQL, host)
	c.CABundle = "/nonexistent/dsql-ca.pem"
	if _, err := loadTrust(t, c, &countingTransport{}); err == nil {
		t.Error("--ca-bundle ignored for dsql")
	}
}
