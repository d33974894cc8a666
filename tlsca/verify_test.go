package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The shared fixtures sit beside the repository (../shared); in this
// project they are always present, so a missing fixture fails the test.
const fixtures = "../../shared/fixtures/rds-ca/"

// TestPublishedBundle: AWS's current global bundle parses to its 102 CAs,
// the three G1 families of every region among them, none expired, none
// dropped; its names are logged at debug level.
func TestPublishedBundle(t *testing.T) {
	data, err := os.ReadFile(fixtures + "global-bundle.pem")
	if err != nil {
		t.Fatalf("the shared RDS CA fixture is missing (it sits beside the repository): %v", err)
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b, err := ParseBundle(data, "global-bundle.pem", at)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) != 102 || len(b.Expired) != 0 || len(b.NotCA) != 0 {
		t.Fatalf("%d CAs (%d expired, %d not CAs), want the 102 published roots", len(b.Certs), len(b.Expired), len(b.NotCA))
	}
	var names []string
	for _, c := range b.Certs {
		names = append(names, c.Subject.CommonName)
	}
	all := strings.Join(names, ",")
	for _, want := range []string{"Amazon RDS us-east-1 Root CA RSA2048 G1", "Amazon RDS us-east-1 Root CA RSA4096 G1", "Amazon RDS us-east-1 Root CA ECC384 G1"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s among %d CAs", want, len(names))
		}
	}
	var logs logBuffer
	b.Report(logs.logger(), at)
	out := logs.String()
	if !strings.Contains(out, "count=102") || !strings.Contains(out, "Amazon RDS eu-west-1 Root CA RSA2048 G1") {
		t.Errorf("the debug report lacks the count or the names:\n%.600s", out)
	}
	if strings.Contains(out, "level=WARN") {
		t.Errorf("the current bundle should raise no warning:\n%.600s", out)
	}
}

// TestBundle2022DropsExpired: the 2022 bundle still holds the 2019-era
// roots, which expired in 2024; in 2026 they are dropped with a warning
// that names them, and the G1 roots are kept.
func TestBundle2022DropsExpired(t *testing.T) {
	old, err := os.ReadFile(fixtures + "global-bundle-2022-with-expired.pem")
	if err != nil {
		t.Fatalf("the shared RDS CA fixture is missing (it sits beside the repository): %v", err)
	}
	then, err := ParseBundle(old, "old", time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b, err := ParseBundle(old, "old", at)
	if err != nil {
		t.Fatal(err)
	}
	if len(then.Certs) != 109 || len(b.Certs)+len(b.Expired) != 109 || len(b.Expired) == 0 {
		t.Fatalf("2022: %d CAs; 2026: %d kept, %d expired; want 109 in all, some expired", len(then.Certs), len(b.Certs), len(b.Expired))
	}
	for _, c := range b.Certs {
		if at.After(c.NotAfter) {
			t.Errorf("expired %s kept", c.Subject.CommonName)
		}
	}
	var expiredNames []string
	for _, c := range b.Expired {
		expiredNames = append(expiredNames, c.Subject.CommonName)
	}
	if !strings.Contains(strings.Join(expiredNames, ","), "Amazon RDS Root 2019 CA") {
		t.Errorf("rds-ca-2019 (Amazon RDS Root 2019 CA) not among the dropped: %v", expiredNames)
	}
	var logs logBuffer
	b.Report(logs.logger(), at)
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "expired CAs; they are not trusted") ||
		!strings.Contains(out, "Amazon RDS Root 2019 CA (expires 2024-08-22)") {
		t.Errorf("no warning listing the expired roots:\n%.800s", out)
	}
}

// TestReportExpiringSoon: CAs within 30 days of expiry are named in a
// warning, louder when the whole bundle is about to expire.
func TestReportExpiringSoon(t *testing.T) {
	now := time.Now()
	soon := newCA(t, "soon", now.Add(10*24*time.Hour))
	later := newCA(t, "later", now.Add(400*24*time.Hour))
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"some":  {join(soon.pem, later.pem), "CAs in the bundle expire within 30 days"},
		"every": {soon.pem, "every CA in the bundle expires within 30 days"},
	} {
		b, err := ParseBundle(c.data, name, now)
		if err != nil {
			t.Fatal(err)
		}
		var logs logBuffer
		b.Report(logs.logger(), now)
		if out := logs.String(); !strings.Contains(out, c.want) || !strings.Contains(out, "soon (expires") || strings.Contains(out, "later (expires") {
			t.Errorf("%s: report:\n%s", name, out)
		}
	}
}

func TestCheckModes(t *testing.T) {
	const rds = "mydb.abc123.us-east-1.rds.amazonaws.com"
	for _, c := range []struct {
		name string
		u    Upstream
		want string // "" = allowed
	}{
		{"verify-full rds", Upstream{Host: rds}, ""},
		{"verify-full explicit", Upstream{Host: rds, Mode: VerifyFull, ServerName: rds}, ""},
		{"verify-ca rds", Upstream{Host: rds, Mode: VerifyCA}, "refused for " + rds},
		{"verify-ca rds china", Upstream{Host: "db.abc.rds.cn-north-1.amazonaws.com.cn", Mode: VerifyCA}, "refused"},
		{"verify-ca rds server name", Upstream{Host: "db.internal", ServerName: rds, Mode: VerifyCA}, "refused"},
		{"verify-ca other", Upstream{Host: "db.internal.example", Mode: VerifyCA}, ""},
		{"disable remote", Upstream{Host: "db.internal.example", Mode: Disable}, "refused for db.internal.example"},
		{"disable remote ip", Upstream{Host: "10.0.0.5", Mode: Disable}, "only for a server on a loopback address"},
		{"disable loopback", Upstream{Host: "127.0.0.1", Mode: Disable}, ""},
		{"disable localhost", Upstream{Host: "localhost", Mode: Disable}, ""},
		{"disable ipv6 loopback", Upstream{Host: "db.dev", DialAddress: "[::1]:5432", Mode: Disable}, ""},
		{"disable dial remote", Upstream{Host: "localhost", DialAddress: "10.0.0.5:5432", Mode: Disable}, "refused for 10.0.0.5"},
		{"disable rds via tunnel", Upstream{Host: rds, DialAddress: "127.0.0.1:15432", Mode: Disable}, "refused for " + rds},
		// Go resolves *.localhost through /etc/hosts and DNS like any name.
		{"disable .localhost name", Upstream{Host: "db.localhost", Mode: Disable}, "refused for db.localhost"},
		{"disable .localhost dial address", Upstream{Host: "127.0.0.1", DialAddress: "pg.dev.localhost:5432", Mode: Disable}, "Fix: --dial-address 127.0.0.1:PORT"},
		{"unknown mode", Upstream{Host: "x", Mode: "prefer"}, "--tls-mode"},
	} {
		err := c.u.Check()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if cfg, err := (Upstream{Host: "127.0.0.1", Mode: Disable}).Config(); err != nil || cfg != nil {
		t.Errorf("disable: config %v, %v; want nil, nil", cfg, err)
	}
	if _, err := (Upstream{Host: rds}).Config(); err == nil {
		t.Error("verify-full without a bundle accepted")
	}
}

// TestAuroraAndRDSNames: every kind of RDS/Aurora endpoint name verifies
// with verify-full against a certificate for that name, and not against a
// certificate for a sibling; RDS Proxy names also trust the system roots.
func TestAuroraAndRDSNames(t *testing.T) {
	ca := newCA(t, "Amazon RDS test Root CA", time.Now().Add(365*24*time.Hour))
	b, err := ParseBundle(ca.pem, "bundle.pem", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{ // name -> is an RDS Proxy name
		"mydb.abc123xyz.us-east-1.rds.amazonaws.com":                              false,
		"mycluster.cluster-abc123xyz.us-east-1.rds.amazonaws.com":                 false,
		"mycluster.cluster-ro-abc123xyz.us-east-1.rds.amazonaws.com":              false,
		"analytics.cluster-custom-abc123xyz.us-east-1.rds.amazonaws.com":          false,
		"mydb.abc123xyz.us-gov-west-1.rds.amazonaws.com":                          false,
		"mydb.abc123xyz.rds.cn-north-1.amazonaws.com.cn":                          false,
		"myproxy.proxy-abc123xyz.us-east-1.rds.amazonaws.com":                     true,
		"reader.endpoint.proxy-abc123xyz.us-east-1.rds.amazonaws.com":             true,
		"mydb-instance-1.abc123xyz.eu-central-1.rds.amazonaws.com":                false,
		"mycluster-instance-1.cluster-abc123xyz.ap-southeast-2.rds.amazonaws.com": false,
		"proxy-db.cluster-abc123xyz.us-east-1.rds.amazonaws.com":                  false,
	}
	for name, isProxy := range names {
		if got := IsRDSProxyName(name); got != isProxy {
			t.Errorf("IsRDSProxyName(%s) = %v", name, got)
		}
		_, cert := ca.leaf(t, name)
		addr := tlsServer(t, cert)
		cfg, err := Upstream{Bundle: b, Host: name}.Config()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify || cfg.ServerName != name {
			t.Fatalf("%s: weak config", name)
		}
		if isProxy == cfg.RootCAs.Equal(b.Pool) {
			t.Errorf("%s: proxy name %v but roots are the bundle alone: %v", name, isProxy, cfg.RootCAs.Equal(b.Pool))
		}
		if err := handshake(t, addr, cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// The same certificate for a sibling name fails.
		sibling, _ := Upstream{Bundle: b, Host: "other-" + name}.Config()
		if err := handshake(t, addr, sibling); err == nil {
			t.Errorf("%s's certificate accepted for other-%s", name, name)
		}
	}
	// mydb.abc123xyz.rds.cn-north-1.amazonaws.com.cn is the China form
	// (region before amazonaws); it must count as an RDS name.
	if !IsRDSName("mydb.abc123xyz.rds.cn-north-1.amazonaws.com.cn") {
		t.Error("China endpoint not recognised as RDS")
	}
}

// TestServerNameOverride: --tls-server-name checks a name other than the
// endpoint's.
func TestServerNameOverride(t *testing.T) {
	ca := newCA(t, "ca", time.Now().Add(24*time.Hour))
	b, _ := ParseBundle(ca.pem, "b", time.Now())
	_, cert := ca.leaf(t, "db.abc.us-east-1.rds.amazonaws.com")
	addr := tlsServer(t, cert)
	cfg, err := Upstream{Bundle: b, Host: "127.0.0.1", ServerName: "db.abc.us-east-1.rds.amazonaws.com"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, addr, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyCA: the chain is still checked; only the name is not.
func TestVerifyCA(t *testing.T) {
	ca := newCA(t, "internal CA", time.Now().Add(24*time.Hour))
	other := newCA(t, "some other CA", time.Now().Add(24*time.Hour))
	b, _ := ParseBundle(ca.pem, "b.pem", time.Now())
	u := Upstream{Bundle: b, Host: "db.internal.example", Mode: VerifyCA}
	cfg, err := u.Config()
	if err != nil {
		t.Fatal(err)
	}
	_, good := ca.leaf(t, "some-other-name.example")
	if err := handshake(t, tlsServer(t, good), cfg); err != nil {
		t.Fatalf("verify-ca with a name mismatch: %v", err)
	}
	_, bad := other.leaf(t, "db.internal.example")
	err = handshake(t, tlsServer(t, bad), cfg)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("verify-ca with a foreign CA: %v, want a verification error", err)
	}
	f, ok := u.Explain(err, time.Now())
	if !ok || !strings.Contains(f.Text(), "the server's CA 'some other CA' is not in the bundle b.pem (1 CA") {
		t.Fatalf("message %q", f.Text())
	}
	expiredPEM, expired := ca.leafValid(t, "x", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	_ = expiredPEM
	if err := handshake(t, tlsServer(t, expired), cfg); err == nil {
		t.Fatal("verify-ca accepted an expired certificate")
	}
}

// TestExplain: each verification failure becomes a message naming the
// expected name, what the server presented and the bundle in use.
func TestExplain(t *testing.T) {
	const host = "mydb.abc123.us-east-1.rds.amazonaws.com"
	now := time.Now()
	rdsCA := newCA(t, "Amazon RDS us-east-1 Root CA RSA2048 G1", now.Add(365*24*time.Hour))
	trusted := newCA(t, "Amazon RDS eu-west-1 Root CA RSA2048 G1", now.Add(365*24*time.Hour))
	oldCA := newCA(t, "Amazon RDS Root 2019 CA", now.Add(-24*time.Hour))
	b, err := ParseBundle(join(trusted.pem, oldCA.pem), "/cache/global-bundle.pem", now)
	if err != nil {
		t.Fatal(err)
	}
	b.URL, b.Fetched = GlobalBundleURL, time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	u := Upstream{Bundle: b, Host: host}
	cfg, err := u.Config()
	if err != nil {
		t.Fatal(err)
	}
	_, fromRDS := rdsCA.leaf(t, host)
	_, wrongName := trusted.leaf(t, "other.abc123.us-east-1.rds.amazonaws.com")
	_, expired := trusted.leafValid(t, host, now.Add(-72*time.Hour), now.Add(-48*time.Hour))
	_, fromOld := oldCA.leafValid(t, host, now.Add(-time.Hour), now.Add(time.Hour))
	for name, c := range map[string]struct {
		cert tls.Certificate
		want []string
	}{
		"unknown CA": {fromRDS, []string{
			"TLS verification of " + host + " failed: certificate signed by unknown authority: the server's CA 'Amazon RDS us-east-1 Root CA RSA2048 G1' is not in the bundle /cache/global-bundle.pem (1 CA, downloaded 2026-11-20)",
			"a certificate for '" + host + "'", "--ca-bundle-region"}},
		"wrong name": {wrongName, []string{"not valid for " + host, "names: other.abc123.us-east-1.rds.amazonaws.com",
			"issued by 'Amazon RDS eu-west-1 Root CA RSA2048 G1'", "bundle /cache/global-bundle.pem (1 CA, downloaded 2026-11-20)", "--tls-server-name"}},
		"expired": {expired, []string{"TLS verification of " + host + " failed: the server's certificate '" + host + "' expired on",
			"this machine's clock says", "bundle /cache/global-bundle.pem", "clock"}},
		"expired CA": {fromOld, []string{"the server's CA 'Amazon RDS Root 2019 CA' is not in the bundle /cache/global-bundle.pem",
			"The bundle held that CA, but it expired on " + oldCA.cert.NotAfter.UTC().Format(time.DateOnly), "modify-db-instance"}},
	} {
		err := handshake(t, tlsServer(t, c.cert), cfg)
		if err == nil {
			t.Errorf("%s: handshake succeeded", name)
			continue
		}
		f, ok := u.Explain(err, time.Now())
		if !ok {
			t.Errorf("%s: %v not explained", name, err)
			continue
		}
		msg := f.Text()
		for _, want := range c.want {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message lacks %q:\n%s", name, want, msg)
			}
		}
	}
	if _, ok := u.Explain(errors.New("connection refused"), now); ok {
		t.Error("a non-TLS error explained as TLS")
	}
	var _ x509.UnknownAuthorityError // the types Explain looks for
}

// TestTrustKeepFresh: a running Trust picks up a bundle file that gained
// a CA (a rotation) and new handshakes trust it; settings are kept.
func TestTrustKeepFresh(t *testing.T) {
	old := newCA(t, "old CA", time.Now().Add(365*24*time.Hour))
	rotated := newCA(t, "rotated CA", time.Now().Add(365*24*time.Hour))
	file := t.TempDir() + "/bundle.pem"
	if err := os.WriteFile(file, old.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(t.Context(), Options{File: file})
	if err != nil {
		t.Fatal(err)
	}
	const host = "db.abc.us-east-1.rds.amazonaws.com"
	trust, err := NewTrust(Upstream{Bundle: b, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	_, cert := rotated.leaf(t, host)
	addr := tlsServer(t, cert)
	_, cfg := trust.Current()
	if err := handshake(t, addr, cfg); err == nil {
		t.Fatal("trusted a CA that is not in the bundle yet")
	}
	var logs logBuffer
	go trust.KeepFresh(t.Context(), Options{File: file, Logger: logs.logger()}, 20*time.Millisecond)
	tmp := file + ".new"
	if err := os.WriteFile(tmp, join(old.pem, rotated.pem), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		up, cfg := trust.Current()
		if len(up.Bundle.Certs) == 2 {
			if up.Host != host || cfg.ServerName != host {
				t.Fatalf("settings lost in the refresh: %+v", up)
			}
			if err := handshake(t, addr, cfg); err != nil {
				t.Fatalf("after the refresh: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refreshed bundle was not applied:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling, not an assertion on time
	}
	if !strings.Contains(logs.String(), "CA bundle refreshed") {
		t.Errorf("no log line for the refresh:\n%s", logs.String())
	}
}

// TestHandshakeDeadline: a server that accepts the connection and never
// answers the ClientHello costs the caller's deadline, not forever.
func TestHandshakeDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c // silent
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Handshake(ctx, conn, &tls.Config{ServerName: "db.example", MinVersion: tls.VersionTLS12})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %s", d)
	}
	select {
	case c := <-held:
		c.Close()
	default:
	}
}
