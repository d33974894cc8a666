package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// The published global RDS bundle (102 CAs), kept beside the repository.
const globalBundleFixture = "../../shared/fixtures/rds-ca/global-bundle.pem"

// startFront starts another emulated RDS front before the suite's
// PostgreSQL, serving cert (nil: a good one from the emulator's CA) for
// endpoint ("": the suite's endpoint name, so tokens and policies are the
// suite's).
func startFront(t *testing.T, endpoint string, cert *tls.Certificate) *emulator.Postgres {
	t.Helper()
	f, err := w.aws.AWS.StartPostgres(w.aws.CA, emulator.PostgresOptions{
		Backend: w.pg.Addr(), Endpoint: endpoint, Certificate: cert,
		Logger: newLogger(t, "emulator"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// newLogger logs like startProxy's proxies: into the suite's capture,
// tagged with the test.
func newLogger(t *testing.T, component string) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(w.logs, logSink()), &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", component, "test", t.Name())
}

// forwarder is a TCP hop whose target can change while it runs: the
// upstream "rotates its certificate" (a front with a bad certificate is
// replaced by one with a good certificate) under a proxy that keeps
// running.
type forwarder struct {
	ln     net.Listener
	target atomic.Value // string
	wg     sync.WaitGroup
}

func newForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln}
	f.target.Store(target)
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", f.target.Load().(string), 10*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

// loginFails logs in through the proxy at port and returns the proxy's
// error message; the test fails if the login works or the error is not the
// proxy's FATAL 08001.
func loginFails(t *testing.T, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
	if err == nil {
		conn.Close(ctx)
		t.Fatal("login through the proxy worked; want a TLS failure")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Severity != "FATAL" || pgErr.Code != "08001" || !strings.HasPrefix(pgErr.Message, "rds-iam-proxy: ") {
		t.Fatalf("error %v, want the proxy's FATAL 08001", err)
	}
	return shown(pgErr)
}

// writeBundle writes the concatenation of PEM parts to a file.
func writeBundle(t *testing.T, parts ...[]byte) string {
	t.Helper()
	var data []byte
	for _, p := range parts {
		data = append(data, p...)
	}
	path := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the shared RDS CA fixture is missing (it sits beside the repository): %v", err)
	}
	return data
}

// TestUpstreamTLSVerification runs the proxy against emulated RDS fronts
// whose TLS is wrong in one way each: the login fails with a message that
// names the expected name, what the server presented and the bundle; the
// proxy keeps running, and once the upstream serves a good certificate
// (a forwarder switches to a good front) the same proxy logs in.
func TestUpstreamTLSVerification(t *testing.T) {
	w.enter(t)
	endpoint := w.front.Endpoint()
	emuCA := w.aws.CA.CertPEM()
	global := readFixture(t, globalBundleFixture)

	// The bundle a user has: AWS's 102 CAs, downloaded from a local HTTPS
	// trust store (plus, where the test needs the emulator to pass, the
	// emulator's CA).
	var served atomic.Value
	store := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Write(served.Load().([]byte))
	}))
	defer store.Close()
	download := func(body []byte) func(*launch.Config) {
		return func(c *launch.Config) {
			served.Store(body)
			c.CABundle = ""
			c.CABundleURL = store.URL + "/global/global-bundle.pem"
			c.CAHTTPClient = store.Client()
			c.CacheDir = t.TempDir()
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)

	wrongName, err := w.aws.CA.ServerCert("another-db.c0ffee123456.us-east-1.rds.amazonaws.com")
	if err != nil {
		t.Fatal(err)
	}
	expired, err := w.aws.CA.ServerCertWithOptions(emulator.Validity{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	oldCA, err := emulator.NewCAWithOptions("Amazon RDS Root 2019 CA (emulated)", emulator.Validity{
		NotBefore: time.Now().Add(-5 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fromOldCA, err := oldCA.ServerCert(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := emulator.NewCA("Amazon RDS us-east-1 Root CA RSA2048 G1 (impostor)")
	if err != nil {
		t.Fatal(err)
	}
	fromOtherCA, err := otherCA.ServerCert(endpoint)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		cert   *tls.Certificate
		bundle func(*launch.Config)
		want   []string
		log    string // a warning the proxy logged at start
	}{
		{
			// The emulator's CA is not among AWS's 102.
			name: "wrong CA", bundle: download(global),
			want: []string{"TLS verification of " + endpoint + " failed: certificate signed by unknown authority: the server's CA 'rds-iam-proxy emulator root CA' is not in the bundle ",
				"(102 CAs, downloaded " + today + ")", "the server presented a certificate for '" + endpoint + "'", "HINT:  "},
		},
		{
			name: "server cert from another CA", cert: &fromOtherCA, bundle: download(append(append([]byte{}, global...), emuCA...)),
			want: []string{"the server's CA 'Amazon RDS us-east-1 Root CA RSA2048 G1 (impostor)' is not in the bundle ", "(103 CAs, downloaded " + today + ")"},
		},
		{
			name: "wrong name", cert: &wrongName,
			want: []string{"TLS verification failed: the upstream certificate is not valid for " + endpoint,
				"names: another-db.c0ffee123456.us-east-1.rds.amazonaws.com", "issued by 'rds-iam-proxy emulator root CA'",
				"bundle " + w.caFile + " (1 CA, file modified ", "--tls-server-name"},
		},
		{
			name: "expired server cert", cert: &expired,
			want: []string{"TLS verification of " + endpoint + " failed: the server's certificate '" + endpoint + "' expired on ",
				"this machine's clock says", "bundle " + w.caFile, "clock"},
		},
		{
			// The bundle still holds the expired CA, as an old download
			// would: it is dropped at start with a warning, and the server
			// it signed is refused with a message that says so.
			name: "server cert from an expired CA", cert: &fromOldCA,
			bundle: func(c *launch.Config) { c.CABundle = writeBundle(t, emuCA, oldCA.CertPEM()) },
			want: []string{"the server's CA 'Amazon RDS Root 2019 CA (emulated)' is not in the bundle ",
				"The bundle held that CA, but it expired on " + oldCA.Cert().NotAfter.UTC().Format(time.DateOnly), "modify-db-instance"},
			log: "CA bundle holds expired CAs; they are not trusted",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := w.front
			if tc.cert != nil {
				bad = startFront(t, "", tc.cert)
			}
			fwd := newForwarder(t, bad.Addr())
			mods := []func(*launch.Config){func(c *launch.Config) { c.DialAddress = fwd.addr() }}
			if tc.bundle != nil {
				mods = append(mods, tc.bundle)
			}
			port := startProxy(t, mods...)

			msg := loginFails(t, port)
			t.Logf("the client is told: %s", msg)
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if tc.log != "" && !logHas(t, tc.log) {
				t.Errorf("the proxy did not log %q at start", tc.log)
			}
			// Still serving: the same failure again, then a good upstream
			// behind the same address works.
			if again := loginFails(t, port); withoutClock(again) != withoutClock(msg) {
				t.Errorf("second try: %q, want the same message", again)
			}
			if tc.name == "wrong CA" || tc.name == "server cert from an expired CA" {
				return // the bundle itself is what is wrong; no server fixes that
			}
			fwd.target.Store(w.front.Addr())
			if got := connectAndQuery(t, port, iamUser); got != iamUser {
				t.Fatalf("after the upstream got a good certificate: %q", got)
			}
		})
	}
}

// logHas reports whether this test's proxy logged a line containing s.
func logHas(t *testing.T, s string) bool {
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if strings.Contains(line, s) && strings.Contains(line, "test="+t.Name()) {
			return true
		}
	}
	return false
}

// TestUpstreamTLSRightCA: the realistic bundle (AWS's 102 CAs plus the
// emulator's, standing in for the DB's region's CA), downloaded from a
// local HTTPS trust store, verifies the server; a second proxy starting
// later uses the cached copy without a request.
func TestUpstreamTLSRightCA(t *testing.T) {
	w.enter(t)
	body := append(readFixture(t, globalBundleFixture), w.aws.CA.CertPEM()...)
	var requests atomic.Int32
	store := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		rw.Header().Set("ETag", `"v1"`)
		rw.Write(body)
	}))
	defer store.Close()
	cache := t.TempDir()
	mod := func(c *launch.Config) {
		c.CABundle, c.CABundleURL, c.CAHTTPClient, c.CacheDir = "", store.URL+"/global/global-bundle.pem", store.Client(), cache
	}
	for i := range 2 {
		port := startProxy(t, mod)
		if got := connectAndQuery(t, port, iamUser); got != iamUser {
			t.Fatalf("proxy %d: logged in as %q", i, got)
		}
	}
	if requests.Load() != 1 {
		t.Fatalf("%d downloads for two proxies, want 1 (the second uses the cache)", requests.Load())
	}
	// Offline after the first download.
	store.Close()
	port := startProxy(t, mod)
	if got := connectAndQuery(t, port, iamUser); got != iamUser {
		t.Fatalf("offline with a cache: %q", got)
	}
}

// TestTLSServerName: the certificate names another host than the endpoint
// (e.g. a DB reached through a name the certificate does not carry):
// --tls-server-name makes verify-full check that name, while the token is
// still signed for the endpoint.
func TestTLSServerName(t *testing.T) {
	w.enter(t)
	const certName = "another-db.c0ffee123456.us-east-1.rds.amazonaws.com"
	cert, err := w.aws.CA.ServerCert(certName)
	if err != nil {
		t.Fatal(err)
	}
	front := startFront(t, "", &cert)
	port := startProxy(t, func(c *launch.Config) { c.DialAddress = front.Addr(); c.TLSServerName = certName })
	if got := connectAndQuery(t, port, iamUser); got != iamUser {
		t.Fatalf("logged in as %q", got)
	}
}

// TestVerifyCA: for a server that is not an RDS endpoint, verify-ca accepts
// a certificate for another name from a trusted CA, and still refuses one
// from an untrusted CA. For RDS names it is refused at start.
func TestVerifyCA(t *testing.T) {
	w.enter(t)
	const endpoint = "pg.internal.example"
	cert, err := w.aws.CA.ServerCert("some-other-name.internal.example")
	if err != nil {
		t.Fatal(err)
	}
	front := startFront(t, endpoint, &cert)
	base := func(mode string) func(*launch.Config) {
		return func(c *launch.Config) {
			c.Endpoint, c.DialAddress, c.Region, c.TLSMode = endpoint+":5432", front.Addr(), "us-east-1", mode
		}
	}
	port := startProxy(t, base("verify-ca"))
	if got := connectAndQuery(t, port, iamUser); got != iamUser {
		t.Fatalf("verify-ca: logged in as %q", got)
	}
	port = startProxy(t, base("verify-full"))
	if msg := loginFails(t, port); !strings.Contains(msg, "not valid for "+endpoint) {
		t.Fatalf("verify-full: %s", msg)
	}
	otherCA, err := emulator.NewCA("untrusted CA")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := otherCA.ServerCert(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	bad := startFront(t, endpoint, &untrusted)
	port = startProxy(t, base("verify-ca"), func(c *launch.Config) { c.DialAddress = bad.Addr() })
	if msg := loginFails(t, port); !strings.Contains(msg, "the server's CA 'untrusted CA' is not in the bundle "+w.caFile) {
		t.Fatalf("verify-ca with an untrusted CA: %s", msg)
	}

	_, err = startProxyErr(t, func(c *launch.Config) { c.TLSMode = "verify-ca" })
	if err == nil || !strings.Contains(err.Error(), "--tls-mode verify-ca is refused for "+w.front.Endpoint()) {
		t.Fatalf("verify-ca for an RDS name: %v", err)
	}
}

// TestTLSModeDisable: plaintext upstream is refused at start unless what is
// dialed is a loopback address and the endpoint is not an RDS name. On
// loopback it works, with a loud warning, against a plain PostgreSQL (the
// emulated RDS front, like RDS, only speaks TLS).
func TestTLSModeDisable(t *testing.T) {
	w.enter(t)
	for name, c := range map[string]struct {
		endpoint, dial, want string
	}{
		"remote name":             {"pg.internal.example:5432", "", "--tls-mode disable is refused for pg.internal.example"},
		"remote dial address":     {"localhost:5432", "192.0.2.10:5432", "--tls-mode disable is refused for 192.0.2.10"},
		"RDS name through tunnel": {w.front.Endpoint() + ":5432", w.front.Addr(), "--tls-mode disable is refused for " + w.front.Endpoint()},
		"remote IP, no dial addr": {"192.0.2.10:5432", "", "only for a server on a loopback address"},
		"unknown mode":            {"127.0.0.1:5432", "", `--tls-mode "insecure"`},
	} {
		_, err := startProxyErr(t, func(cfg *launch.Config) {
			cfg.Endpoint, cfg.DialAddress, cfg.Region, cfg.TLSMode = c.endpoint, c.dial, "us-east-1", "disable"
			if name == "unknown mode" {
				cfg.TLSMode = "insecure"
			}
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}

	// Loopback: straight to the suite's PostgreSQL, which trusts local
	// logins (the token is sent and ignored).
	port := startProxy(t, func(c *launch.Config) {
		c.Endpoint, c.DialAddress, c.Region, c.TLSMode, c.CABundle = w.pg.Addr(), "", "us-east-1", "disable", ""
	})
	if got := connectAndQuery(t, port, iamUser); got != iamUser {
		t.Fatalf("disable on loopback: logged in as %q", got)
	}
	if !logHas(t, "UPSTREAM TLS IS DISABLED") {
		t.Error("no loud warning for --tls-mode disable")
	}
}

// startProxyErr starts a proxy and returns launch.Start's error, stopping
// the proxy if it started.
func startProxyErr(t *testing.T, mods ...func(*launch.Config)) (string, error) {
	t.Helper()
	cfg := proxyConfig()
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := launch.Start(ctx, cfg, newLogger(t, "proxy"))
	if err != nil {
		return "", err
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	r.Shutdown(sctx)
	return r.Port(), nil
}

// TestBinaryRefusesPlaintextToRemote: the command line refuses
// --tls-mode disable for a non-loopback upstream before doing anything.
func TestBinaryRefusesPlaintextToRemote(t *testing.T) {
	w.enter(t)
	cmd := exec.Command(proxyBinary(t), "--endpoint", "pg.internal.example:5432", "--region", "us-east-1",
		"--tls-mode", "disable", "--listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "--tls-mode disable is refused for pg.internal.example") {
		t.Fatalf("output:\n%s", out)
	}
}

// TestCARotationWhileRunning: a running proxy whose bundle lacks the
// server's CA refuses logins; once the trust store publishes a bundle with
// that CA, the proxy's periodic refresh (a conditional GET) picks it up and
// new logins work, without a restart.
func TestCARotationWhileRunning(t *testing.T) {
	w.enter(t)
	global := readFixture(t, globalBundleFixture)
	var served atomic.Value
	served.Store(global)
	store := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body := served.Load().([]byte)
		etag := fmt.Sprintf(`"%d"`, len(body))
		if r.Header.Get("If-None-Match") == etag {
			rw.WriteHeader(http.StatusNotModified)
			return
		}
		rw.Header().Set("ETag", etag)
		rw.Write(body)
	}))
	defer store.Close()
	port := startProxy(t, func(c *launch.Config) {
		c.CABundle, c.CABundleURL, c.CAHTTPClient, c.CacheDir = "", store.URL+"/global/global-bundle.pem", store.Client(), t.TempDir()
		c.CARefresh = config.Duration(100 * time.Millisecond)
	})
	if msg := loginFails(t, port); !strings.Contains(msg, "(102 CAs, downloaded ") {
		t.Fatalf("before the rotation: %s", msg)
	}
	served.Store(append(append([]byte{}, global...), w.aws.CA.CertPEM()...))
	waitFor(t, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			return false
		}
		conn.Close(ctx)
		return true
	})
	if !logHas(t, "CA bundle refreshed") {
		t.Error("no log line for the refresh")
	}
}

// TestStalledTLSHandshake: an upstream that agrees to TLS ('S') and then
// never answers the ClientHello is given up on after --connect-timeout,
// the client is told so, and the proxy keeps serving.
func TestStalledTLSHandshake(t *testing.T) {
	w.enter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				var req [8]byte
				if _, err := io.ReadFull(c, req[:]); err != nil {
					return
				}
				c.Write([]byte{'S'})
				<-stop // then silence
			})
		}
	})
	port := startProxy(t, func(c *launch.Config) {
		c.DialAddress = ln.Addr().String()
		c.ConnectTimeout = config.Duration(time.Second)
	})
	for range 2 {
		start := time.Now()
		msg := loginFails(t, port)
		if !strings.Contains(msg, "did not complete the login in time") {
			t.Fatalf("message: %s", msg)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("took %s with a 1s connect timeout", d)
		}
	}
}

// clockSays is the part of a certificate-time message that names this
// machine's clock: two tries a second apart differ only there.
var clockSays = regexp.MustCompile(`this machine's clock says [^)]*`)

func withoutClock(msg string) string {
	return clockSays.ReplaceAllString(msg, "this machine's clock says NOW")
}
