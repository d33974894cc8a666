package integration

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/emulator"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/loadtest/loadgen/targets"
)

// waveClients is how many clients of each engine a wave sends to each
// proxy during the AWS fault tests: storms of a few hundred clients at a
// time over the three proxies.
const waveClients = 40

// outageCredentials is how long the emulator's session credentials last
// in the outage test: long enough for a few waves on cached credentials
// (the proxy stops using them 10 s before expiry), short enough that
// waiting for expiry fits the CI budget.
const outageCredentials = 22 * time.Second

// credentialsMargin is the proxy's default: credentials this close to
// expiry are not used for a new token without a refresh attempt first.
const credentialsMargin = 10 * time.Second

// faultedProxy is one proxy of the outage test and the fault that hits
// its credential source.
type faultedProxy struct {
	name     string
	p        *stormProxy
	inject   func() (clear func()) // starts the fault, returns what ends it
	clear    func()
	cause    []string // what a Postgres client's error says, beyond the expiry
	fix      string   // the fix every client's error ends with (MySQL's ERR text is cut to 511 bytes, keeping it)
	base     usage
	sessions *openSessions
}

// TestStormAWSCredentialOutages: three proxies (race-built binaries) whose
// credentials come from three sources meet three AWS faults at the same
// time, under waves of clients: STS throttling (IRSA: the emulator answers
// AssumeRoleWithWebIdentity with Throttling), STS down (IRSA through an
// STS endpoint that resets every connection) and IMDS answering 401 (an
// instance profile). Credentials last 22 s.
//
//   - While the held credentials are fresh, clients see nothing: every
//     login succeeds.
//   - In the last 10 s before expiry each login first tries a refresh;
//     no session may hang or meet an unexplained error. In the last 5 s
//     the held credentials no longer sign (RDS would reject a token whose
//     credentials expire before the login arrives): clients are told so.
//   - Once expired, every client gets the proxy's error, which says the
//     credentials expired and why the refresh failed, with a fix, within
//     20 s; sessions opened before the fault keep working throughout.
//   - When the fault is gone, the time to the first successful login is
//     measured and logged (bounded at 45 s: the proxy retries at most
//     every 10 s); then a wave succeeds in full, and the proxies'
//     goroutines and files are back to their baseline.
//
// Budget: about 50-60 s.
func TestStormAWSCredentialOutages(t *testing.T) {
	w.enter(t)
	set := stormTargets(t, 6*waveClients)
	w.setSessionDuration(t, outageCredentials)

	// IMDS first: useIRSA below sets the web identity variables in this
	// process's environment, which every proxy started later inherits.
	imds := startStormProxy(t, set, nil)
	// IRSA: the web identity role may connect through the set's fronts.
	role := w.aws.AWS.AddRole("storm-irsa", set.ConnectPolicy())
	if err := w.aws.AWS.SetRoleTrust(role, &emulator.Trust{WebIdentity: []emulator.WebIdentityTrust{{
		Issuer: eksIssuer, Audience: "sts.amazonaws.com", Subject: "system:serviceaccount:prod:app"}}}); err != nil {
		t.Fatal(err)
	}
	useIRSA(t, t.TempDir(), role, "system:serviceaccount:prod:app")
	irsa := []string{"AWS_EC2_METADATA_DISABLED=true"}
	sts := startSTSSwitch(t, w.aws.URL())

	proxies := []*faultedProxy{
		{name: "STS throttled", p: startStormProxy(t, set, irsa),
			inject: func() func() { return w.injectFault(t, "sts:AssumeRoleWithWebIdentity", emulator.Throttling()) },
			cause:  []string{"WebIdentityCredentials", "Throttling: Rate exceeded", "STS is throttling requests"},
			fix:    "Fix: find what else calls STS with these credentials at a high rate"},
		{name: "STS down", p: startStormProxy(t, set, append(irsa, "AWS_ENDPOINT_URL_STS="+sts.url())),
			inject: func() func() { sts.setDown(true); return func() { sts.setDown(false) } },
			// The SDK's words for a transport failure, whichever it was
			// (reset at connect, broken pipe on a kept-alive connection).
			cause: []string{"WebIdentityCredentials", "request send failed"},
			fix:   "Fix: STS could not be reached"},
		{name: "IMDS 401", p: imds,
			inject: func() func() { return w.injectFault(t, emulator.FaultIMDS, emulator.Fault{Status: 401}) },
			cause:  []string{"EC2RoleProvider", "StatusCode: 401"},
			fix:    "Fix: give the proxy AWS credentials"},
	}
	for _, fp := range proxies {
		requireAllOK(t, fp.name+": before the fault", waveTo(t, fp.p, 2)...)
		fp.base = fp.p.usage(t)
		fp.sessions = openLongSessions(t, fp.p)
	}
	expiry := func(latest bool) time.Time {
		var at time.Time
		for _, fp := range proxies {
			for _, up := range []string{"storm-pg", "storm-mysql"} {
				v := fp.p.metric(t, fmt.Sprintf(`rds_iam_proxy_credentials_expiry_timestamp_seconds{upstream="%s"}`, up))
				if v <= 0 {
					t.Fatalf("%s: no credentials expiry for %s", fp.name, up)
				}
				e := time.Unix(int64(v), 0)
				if at.IsZero() || latest && e.After(at) || !latest && e.Before(at) {
					at = e
				}
			}
		}
		return at
	}
	first, last := expiry(false), expiry(true)
	t.Logf("credentials expire between %s and %s from now", time.Until(first).Round(time.Second), time.Until(last).Round(time.Second))

	for _, fp := range proxies {
		fp.clear = fp.inject()
	}
	faultAt := time.Now()

	// Fresh credentials: nobody notices the fault. (The expiry metric has
	// whole seconds: a second's slack.)
	waves := 0
	for time.Until(first) > credentialsMargin+time.Second+4*time.Second {
		for _, fp := range proxies {
			fp.sessions.check(t, fp.name+": cached credentials")
		}
		rs := waveToAll(t, proxies)
		logWave(t, "cached credentials, AWS faulty", rs)
		requireAllOK(t, "cached credentials, AWS faulty", rs...)
		waves++
	}
	if waves == 0 {
		t.Fatalf("no wave ran on cached credentials (%s left): the machine is too slow for this test", time.Until(first))
	}
	// The last seconds before expiry: each login tries a refresh first and
	// falls back to the valid credentials.
	for time.Until(first) > 2*time.Second {
		rs := waveToAll(t, proxies)
		logWave(t, "the last 10 s before expiry", rs)
		for _, r := range rs {
			requireClean(t, r)
			// Refused only once expired: while valid credentials are
			// held, a failed refresh must not cost a client its login.
			for _, c := range r.Clients {
				if c.Outcome == loadgen.Failed && !strings.Contains(c.Err, "expired at") && !strings.Contains(c.Err, "too soon to sign with") {
					t.Errorf("refused before the credentials expired: %s", c.Err)
				}
			}
		}
	}
	// Expired: every client is told, in its protocol, within 20 s.
	time.Sleep(time.Until(last) + 1500*time.Millisecond)
	for _, fp := range proxies {
		fp.sessions.check(t, fp.name+": expired credentials")
		for _, r := range waveTo(t, fp.p, waveClients) {
			requireExplainedOutage(t, fp, r)
		}
	}
	t.Logf("the faults lasted %s", time.Since(faultAt).Round(100*time.Millisecond))

	// Recovery: from the fault's end to the first successful login.
	var wg sync.WaitGroup
	for _, fp := range proxies {
		fp.clear()
		wg.Go(func() {
			took, err := firstLogin(fp.p, 45*time.Second)
			if err != nil {
				t.Errorf("%s: no login on both upstreams within 45 s of the fault's end: %v", fp.name, err)
				return
			}
			t.Logf("%s: first successful login on both upstreams %s after the fault ended", fp.name, took.Round(10*time.Millisecond))
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	requireAllOK(t, "after recovery", waveToAll(t, proxies)...)
	for _, fp := range proxies {
		fp.sessions.check(t, fp.name+": after recovery")
		fp.sessions.close()
		fp.p.waitBaseline(t, fp.base)
	}
}

// requireExplainedOutage: every client of r got the proxy's error about
// expired credentials, with the fault's fix (and, for Postgres, whose
// messages are not cut, its cause), none after over 20 s.
func requireExplainedOutage(t *testing.T, fp *faultedProxy, r *loadgen.Result) {
	t.Helper()
	wants := []string{"expired at", fp.fix}
	if r.Storm.Kind.Engine() == "postgres" {
		// Postgres clients get the fix as the HINT.
		wants = []string{"expired at", "HINT:  " + strings.TrimPrefix(fp.fix, "Fix: ")}
		wants = append(wants, fp.cause...)
	}
	var slowest time.Duration
	for _, c := range r.Clients {
		slowest = max(slowest, c.Total)
		if c.Outcome != loadgen.Failed || !loadgen.Explained(c.Err) {
			t.Errorf("%s, credentials expired: a %s client ended %s: %s", fp.name, r.Storm.Kind, c.Outcome, c.Err)
			return
		}
		for _, want := range wants {
			if !strings.Contains(c.Err, want) {
				t.Errorf("%s, credentials expired: the %s client's error lacks %q: %s\nthe proxy logged it as: %s",
					fp.name, r.Storm.Kind, want, c.Err, fp.p.logLineWith(fixOf(c.Err)))
				return
			}
		}
		if leaked := secretIn(c.Err); leaked != "" {
			t.Fatalf("%s: the client's error holds %s", fp.name, leaked)
		}
	}
	if slowest > 20*time.Second {
		t.Errorf("%s: a %s client waited %s for its error, want under 20 s", fp.name, r.Storm.Kind, slowest)
	}
	t.Logf("%s, credentials expired: %d %s clients told within %s (p50 %s): %s", fp.name, len(r.Clients), r.Storm.Kind,
		slowest.Round(time.Millisecond), totalP50(r).Round(time.Millisecond), r.Clients[0].Err)
}

// logWave logs a wave in one line: how many succeeded, the slowest
// connects, and the explained errors (the test fails on any other).
func logWave(t *testing.T, phase string, rs []*loadgen.Result) {
	t.Helper()
	ok, n, explained := 0, 0, 0
	var p99 time.Duration
	for _, r := range rs {
		ok, n, p99 = ok+r.Count(loadgen.OK), n+len(r.Clients), max(p99, r.ConnectPercentile(99))
		for _, g := range r.Errors() {
			if g.Explained {
				explained += g.Count
			}
		}
	}
	t.Logf("%s: %d of %d clients ok (%d explained errors), connect p99 %s", phase, ok, n, explained, p99.Round(time.Millisecond))
}

// fixOf is the start of an error's "Fix: ..." part, to find it in a log
// (where quotes are escaped and no SQLSTATE follows).
func fixOf(text string) string {
	if i := strings.LastIndex(text, "HINT:  "); i >= 0 {
		text = "Fix: " + text[i+len("HINT:  "):] // the log joins cause and fix
	}
	fix := text[max(strings.LastIndex(text, "Fix: "), 0):]
	return fix[:min(len(fix), 60)]
}

func totalP50(r *loadgen.Result) time.Duration {
	ds := make([]time.Duration, len(r.Clients))
	for i, c := range r.Clients {
		ds[i] = c.Total
	}
	return loadgen.Percentile(ds, 50)
}

// waveTo sends n pgx and n go-sql-driver clients to p at once.
func waveTo(t *testing.T, p *stormProxy, n int) []*loadgen.Result {
	t.Helper()
	return runConcurrently(t, []loadgen.Storm{
		{Kind: loadgen.PGX, Target: p.target(loadgen.PGX), Clients: n},
		{Kind: loadgen.GoMySQL, Target: p.target(loadgen.GoMySQL), Clients: n},
	})
}

// waveToAll is waveTo to every proxy at once.
func waveToAll(t *testing.T, proxies []*faultedProxy) []*loadgen.Result {
	t.Helper()
	var storms []loadgen.Storm
	for _, fp := range proxies {
		for _, k := range []loadgen.Kind{loadgen.PGX, loadgen.GoMySQL} {
			storms = append(storms, loadgen.Storm{Kind: k, Target: fp.p.target(k), Clients: waveClients})
		}
	}
	return runConcurrently(t, storms)
}

// runConcurrently runs storms at the same time and returns their results
// in order; a storm that cannot run fails the test.
func runConcurrently(t *testing.T, storms []loadgen.Storm) []*loadgen.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := make([]*loadgen.Result, len(storms))
	errs := make([]error, len(storms))
	var wg sync.WaitGroup
	for i, s := range storms {
		wg.Go(func() { out[i], errs[i] = loadgen.Run(ctx, s) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstLogin tries a login through each of p's listeners every 100 ms
// until one works on both, and returns how long that took: each upstream
// has credentials of its own, and so recovers on its own.
func firstLogin(p *stormProxy, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for _, k := range []loadgen.Kind{loadgen.PGX, loadgen.GoMySQL} {
		for {
			err := tryLogin(p, k)
			if err == nil {
				break
			}
			if time.Since(start) > limit {
				return 0, fmt.Errorf("%s: %w", k.Engine(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return time.Since(start), nil
}

// tryLogin runs one client of kind k through p.
func tryLogin(p *stormProxy, k loadgen.Kind) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := loadgen.Run(ctx, loadgen.Storm{Kind: k, Target: p.target(k), Clients: 1, Limit: 20 * time.Second})
	if err != nil {
		return err
	}
	if c := r.Clients[0]; c.Outcome != loadgen.OK {
		return fmt.Errorf("%s: %s", c.Outcome, c.Err)
	}
	return nil
}

// openSessions are sessions opened before a fault: logged in, they need no
// new token and must keep working whatever AWS does.
type openSessions struct {
	pg *pgconn.PgConn
	my *sql.Conn
	db *sql.DB
}

func openLongSessions(t *testing.T, p *stormProxy) *openSessions {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg, err := pgconn.Connect(ctx, loadgen.PGConnString(targets.Proxy(p.pgPort)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = targets.IAMUser, "tcp", fmt.Sprintf("127.0.0.1:%d", p.myPort), targets.Database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 20*time.Second, 20*time.Second, 20*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	my, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &openSessions{pg: pg, my: my, db: db}
	t.Cleanup(s.close)
	return s
}

func (s *openSessions) check(t *testing.T, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := s.pg.ExecParams(ctx, "SELECT 41 + 1", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "42" {
		t.Errorf("%s: the open Postgres session: %v %v", when, res.Rows, res.Err)
	}
	var n int
	if err := s.my.QueryRowContext(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Errorf("%s: the open MySQL session: %d %v", when, n, err)
	}
}

func (s *openSessions) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.pg.Close(ctx)
	s.my.Close()
	s.db.Close()
}

// stsSwitch stands between a proxy and the emulator's STS: up, it relays
// TCP both ways; down, it resets every connection, open ones included, as
// an unreachable regional endpoint behind a load balancer does.
type stsSwitch struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	down  bool
	open  map[net.Conn]struct{}
	conns sync.WaitGroup
}

func startSTSSwitch(t *testing.T, emulatorURL string) *stsSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stsSwitch{ln: ln, to: strings.TrimPrefix(emulatorURL, "http://"), open: map[net.Conn]struct{}{}}
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.setDown(true); s.conns.Wait() })
	return s
}

func (s *stsSwitch) url() string { return "http://" + s.ln.Addr().String() }

func (s *stsSwitch) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if down {
		for c := range s.open {
			reset(c)
		}
	}
}

// reset closes c with an RST, not a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// track adds c to the open connections unless the switch is down.
func (s *stsSwitch) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *stsSwitch) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

func (s *stsSwitch) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			reset(c)
			continue
		}
		s.conns.Go(func() {
			defer s.untrack(c)
			defer c.Close()
			up, err := net.DialTimeout("tcp", s.to, 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() { io.Copy(up, c); up.Close(); close(done) }()
			io.Copy(c, up)
			c.Close()
			<-done
		})
	}
}

// TestStormCABundleRotation: the proxy (race-built binary) downloads its
// CA bundle from a trust store (a loopback URL here) and re-checks it every
// 250 ms, while storms run.
//
//   - The trust store publishes a rotated bundle (one CA added, one
//     removed, the server's kept) in the middle of a storm: no client
//     notices, and the proxy logs the refresh.
//   - It then publishes a bundle without the server's CA (a rotation gone
//     wrong): new logins are refused with the proxy's explanation (the
//     certificate does not chain to the bundle, with a fix), within 20 s
//     per client; sessions already open keep working.
//   - When the bundle has the server's CA again, the time to the first
//     successful login is measured and logged (bounded at 15 s), a storm
//     succeeds in full, and goroutines and files are back to their
//     baseline.
//
// Budget: about 15-25 s.
func TestStormCABundleRotation(t *testing.T) {
	w.enter(t)
	set := stormTargets(t, 300)
	ca := func(name string) []byte {
		c, err := emulator.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		return c.CertPEM()
	}
	server, retired, added := w.aws.CA.CertPEM(), ca("storm retired CA"), ca("storm added CA")
	bundle := func(pems ...[]byte) []byte { return []byte(strings.Join(stringsOf(pems), "")) }
	store := startTrustStore(t, bundle(retired, server))

	akid, secret := w.aws.AWS.AddUser("storm-ca", set.ConnectPolicy())
	p := startStormProxy(t, set,
		[]string{"AWS_ACCESS_KEY_ID=" + akid, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_EC2_METADATA_DISABLED=true"},
		"ca_bundle_url: "+store.url(), "ca_refresh: 250ms", "cache_dir: "+t.TempDir())
	requireAllOK(t, "warm-up", waveTo(t, p, 2)...)
	base := p.usage(t)
	sessions := openLongSessions(t, p)

	// A rotation in the middle of a storm.
	stormStart := time.Now()
	rotated := make(chan time.Duration, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		store.publish(bundle(server, added))
		rotated <- time.Since(stormStart)
	}()
	storms := runConcurrently(t, []loadgen.Storm{
		{Kind: loadgen.PGX, Target: p.target(loadgen.PGX), Clients: 150, Rounds: 2},
		{Kind: loadgen.GoMySQL, Target: p.target(loadgen.GoMySQL), Clients: 150, Rounds: 2},
	})
	for _, r := range storms {
		t.Log(strings.TrimRight(r.Summary(), "\n"))
	}
	requireAllOK(t, "a storm through a CA bundle rotation", storms...)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(p.logs.String(), "CA bundle refreshed") })
	t.Logf("the rotated bundle was published %s into a storm of %s", (<-rotated).Round(time.Millisecond), storms[0].Elapsed.Round(time.Millisecond))

	// A bundle without the server's CA: refused, explained.
	store.publish(bundle(retired, added))
	broken := time.Now()
	waitFor(t, 10*time.Second, func() bool { return tryLogin(p, loadgen.PGX) != nil && tryLogin(p, loadgen.GoMySQL) != nil })
	t.Logf("a bundle without the server's CA applies %s after it is published", time.Since(broken).Round(10*time.Millisecond))
	for _, r := range waveTo(t, p, waveClients) {
		var slowest time.Duration
		for _, c := range r.Clients {
			slowest = max(slowest, c.Total)
			if c.Outcome != loadgen.Failed || !loadgen.Explained(c.Err) || !strings.Contains(c.Err, "certificate") {
				t.Fatalf("without the server's CA, a %s client ended %s: %s", r.Storm.Kind, c.Outcome, c.Err)
			}
		}
		if slowest > 20*time.Second {
			t.Errorf("a %s client waited %s for its error, want under 20 s", r.Storm.Kind, slowest)
		}
		t.Logf("without the server's CA: %d %s clients told within %s: %s", len(r.Clients), r.Storm.Kind, slowest.Round(time.Millisecond), r.Clients[0].Err)
	}
	sessions.check(t, "bundle without the server's CA")

	// Fixed: the next check picks it up.
	store.publish(bundle(server, added))
	took, err := firstLogin(p, 15*time.Second)
	if err != nil {
		t.Fatalf("no login within 15 s of the fixed bundle: %v", err)
	}
	t.Logf("first successful login on both upstreams %s after the fixed bundle was published", took.Round(10*time.Millisecond))
	requireAllOK(t, "after the fix", waveTo(t, p, waveClients)...)
	sessions.check(t, "after the fix")
	sessions.close()
	p.waitBaseline(t, base)
}

func stringsOf(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// trustStore serves one CA bundle over HTTP on loopback with an ETag, as
// AWS's trust store does over HTTPS; publish replaces it.
type trustStore struct {
	srv    *http.Server
	ln     net.Listener
	bundle atomic.Pointer[[]byte]
}

func startTrustStore(t *testing.T, initial []byte) *trustStore {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &trustStore{ln: ln}
	s.publish(initial)
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body := *s.bundle.Load()
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256(body))
		if r.Header.Get("If-None-Match") == etag {
			rw.WriteHeader(http.StatusNotModified)
			return
		}
		rw.Header().Set("ETag", etag)
		rw.Write(body)
	})}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *trustStore) url() string {
	return "http://" + s.ln.Addr().String() + "/global/global-bundle.pem"
}

func (s *trustStore) publish(b []byte) { s.bundle.Store(&b) }
