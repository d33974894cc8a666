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
