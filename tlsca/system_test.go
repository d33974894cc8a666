package tlsca

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// TestSystemBundle: the system store is a bundle that is never reloaded,
// named as such in messages, whose unknown-CA failure points at the
// system's store rather than at the RDS bundle.
func TestSystemBundle(t *testing.T) {
	b, err := SystemBundle()
	if err != nil {
		t.Fatal(err)
	}
	if !b.System || b.Pool == nil || b.Describe() != SystemSource {
		t.Fatalf("bundle %+v (%s)", b, b.Describe())
	}
	tr, err := NewTrust(Upstream{Host: "abc.dsql.us-east-1.on.aws", Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		// A refresh would try this URL every millisecond.
		tr.KeepFresh(context.Background(), Options{URL: "https://127.0.0.1:1/bundle.pem"}, time.Millisecond)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("KeepFresh runs for the system's store")
	}
	up, conf := tr.Current()
	if conf.ServerName != "abc.dsql.us-east-1.on.aws" {
		t.Errorf("ServerName %q", conf.ServerName)
	}
	f, ok := up.Explain(x509.UnknownAuthorityError{}, time.Now())
	if !ok || !strings.Contains(f.Cause, "not in the bundle "+SystemSource) || !strings.Contains(f.Fix, "Amazon Root CA 1") {
		t.Errorf("explained as %+v", f)
	}
}

// TestDSQLNamesOnlyVerifyFull: a DSQL cluster name, like an RDS name, is
// refused any mode but verify-full.
func TestDSQLNamesOnlyVerifyFull(t *testing.T) {
	for _, m := range []Mode{VerifyCA, Disable} {
		err := Upstream{Mode: m, Host: "abc123.dsql.us-east-1.on.aws", DialAddress: "127.0.0.1:5432"}.Check()
		if err == nil || !strings.Contains(err.Error(), "only reached with verify-full") {
			t.Errorf("%s: %v", m, err)
		}
	}
	if IsDSQLName("abc.dsql.us-east-1.on.aws.evil.test") || !IsDSQLName("ABC.dsql.eu-west-2.on.aws.") {
		t.Error("IsDSQLName")
	}
}
