package tlsca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/syncbuf"
)

// bundleServer is a local HTTPS trust store: it serves the current body
// with an ETag and Last-Modified and honours conditional requests.
type bundleServer struct {
	srv          *httptest.Server
	mu           sync.Mutex
	body         []byte
	modified     time.Time
	full, notMod atomic.Int32 // 200 and 304 answers
	conditional  atomic.Int32 // requests carrying If-None-Match
}

func newBundleServer(t *testing.T, body []byte) *bundleServer {
	t.Helper()
	s := &bundleServer{body: body, modified: time.Now().Add(-time.Hour)}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, modified := s.body, s.modified
		s.mu.Unlock()
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		if inm := r.Header.Get("If-None-Match"); inm != "" {
			s.conditional.Add(1)
			if inm == etag {
				s.notMod.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		s.full.Add(1)
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
		w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *bundleServer) set(body []byte) {
	s.mu.Lock()
	s.body, s.modified = body, time.Now()
	s.mu.Unlock()
}

func (s *bundleServer) url() string { return s.srv.URL + "/global/global-bundle.pem" }

// clock is a settable time source for cache ages.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer captures a logger's output.
type logBuffer struct{ syncbuf.Buffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestDownloadCacheRevalidate walks a cached download through its life:
// first download, cache hit, conditional GET answered 304, a changed bundle
// replacing the cache, and the bundle's description for error messages.
func TestDownloadCacheRevalidate(t *testing.T) {
	ca1 := newCA(t, "rds-test-ca-1", time.Now().Add(365*24*time.Hour))
	ca2 := newCA(t, "rds-test-ca-2", time.Now().Add(365*24*time.Hour))
	srv := newBundleServer(t, ca1.pem)
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	var logs logBuffer
	opts := Options{URL: srv.url(), CacheDir: dir, HTTPClient: srv.srv.Client(), Now: clk.now, Logger: logs.logger()}
	ctx := t.Context()

	// First download.
	b, err := Load(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(dir, cacheName(mustURL(t, srv.url())))
	if len(b.Certs) != 1 || b.Source != cached || b.URL != srv.url() || srv.full.Load() != 1 {
		t.Fatalf("first load: %d CAs from %s (%d downloads)", len(b.Certs), b.Source, srv.full.Load())
	}
	if got, _ := os.ReadFile(cached); !bytes.Equal(got, ca1.pem) {
		t.Fatal("the cache does not hold the downloaded bundle")
	}
	var meta cacheMeta
	if data, err := os.ReadFile(cached + ".json"); err != nil || json.Unmarshal(data, &meta) != nil || meta.ETag == "" || meta.LastModified == "" {
		t.Fatalf("cache metadata %+v (%v): want the ETag and Last-Modified", meta, err)
	}
	wantDesc := fmt.Sprintf("%s (1 CA, downloaded %s)", cached, clk.now().UTC().Format(time.DateOnly))
	if b.Describe() != wantDesc {
		t.Errorf("Describe() = %q, want %q", b.Describe(), wantDesc)
	}

	// Cache hit: no request at all.
	clk.add(time.Hour)
	if b, err = Load(ctx, opts); err != nil || len(b.Certs) != 1 {
		t.Fatal(err)
	}
	if n := srv.full.Load() + srv.conditional.Load(); n != 1 {
		t.Fatalf("cache hit made %d requests in all, want the first only", n)
	}

	// A day later: a conditional GET, answered 304; the cache stays and
	// counts as fresh again.
	clk.add(DefaultMaxAge)
	if b, err = Load(ctx, opts); err != nil || len(b.Certs) != 1 {
		t.Fatal(err)
	}
	if srv.conditional.Load() != 1 || srv.notMod.Load() != 1 || srv.full.Load() != 1 {
		t.Fatalf("revalidation: %d conditional, %d 304, %d full; want 1, 1, 1", srv.conditional.Load(), srv.notMod.Load(), srv.full.Load())
	}
	if !b.Fetched.Equal(clk.now()) {
		t.Errorf("a 304 should renew the fetch time: %v, want %v", b.Fetched, clk.now())
	}
	if _, err = Load(ctx, opts); err != nil || srv.conditional.Load() != 1 {
		t.Fatalf("after a 304 the cache is fresh again; got %d conditional requests (%v)", srv.conditional.Load(), err)
	}

	// The bundle changes on the server (a new CA for a rotation): the next
	// revalidation replaces the cache.
	srv.set(join(ca1.pem, ca2.pem))
	clk.add(DefaultMaxAge + time.Minute)
	if b, err = Load(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if len(b.Certs) != 2 || srv.full.Load() != 2 {
		t.Fatalf("changed bundle: %d CAs (%d downloads), want 2 (2)", len(b.Certs), srv.full.Load())
	}
	if got, _ := os.ReadFile(cached); !bytes.Equal(got, join(ca1.pem, ca2.pem)) {
		t.Fatal("the cache was not replaced by the changed bundle")
	}
	if !strings.Contains(logs.String(), "cache replaced") {
		t.Errorf("no log line about the replaced cache:\n%s", logs.String())
	}
	assertNoTempFiles(t, dir)
}

// TestCacheReplacedAtomically: while the bundle on the server keeps
// changing and many loads revalidate at once, every load gets a complete
// bundle, and so does every reader of the cache file.
func TestCacheReplacedAtomically(t *testing.T) {
	a := newCA(t, "a", time.Now().Add(365*24*time.Hour))
	b := newCA(t, "b", time.Now().Add(365*24*time.Hour))
	bodies := [][]byte{a.pem, join(a.pem, b.pem)}
	srv := newBundleServer(t, bodies[0])
	dir := t.TempDir()
	// MaxAge 1ns: every load revalidates.
	opts := Options{URL: srv.url(), CacheDir: dir, HTTPClient: srv.srv.Client(), MaxAge: time.Nanosecond}
	if _, err := Load(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(dir, cacheName(mustURL(t, srv.url())))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 6 {
		wg.Go(func() {
			for j := range 10 {
				if i == 0 {
					srv.set(bodies[j%2])
				}
				if _, err := Load(t.Context(), opts); err != nil {
					errs <- err
				}
				data, err := os.ReadFile(cached)
				if err != nil {
					errs <- err
					continue
				}
				if _, err := ParseBundle(data, cached, time.Now()); err != nil || !(bytes.Equal(data, bodies[0]) || bytes.Equal(data, bodies[1])) {
					errs <- fmt.Errorf("the cache file held %d bytes that are neither bundle (%v)", len(data), err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertNoTempFiles(t, dir)
}

// TestServerDown: with a cached copy, an unreachable server means the cache
// is used with a warning; without one, the error says how to supply a
// bundle.
func TestServerDown(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	srv := newBundleServer(t, ca.pem)
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	var logs logBuffer
	opts := Options{URL: srv.url(), CacheDir: dir, HTTPClient: srv.srv.Client(), Now: clk.now, Logger: logs.logger()}
	if _, err := Load(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	srv.srv.Close()

	clk.add(3 * DefaultMaxAge) // stale: Load must try the network
	b, err := Load(t.Context(), opts)
	if err != nil {
		t.Fatalf("server down with a cache: %v", err)
	}
	if len(b.Certs) != 1 {
		t.Fatalf("%d CAs from the cache", len(b.Certs))
	}
	if !strings.Contains(logs.String(), "could not refresh the RDS CA bundle; using the cached copy") {
		t.Errorf("no warning about the failed refresh:\n%s", logs.String())
	}

	opts.CacheDir = t.TempDir()
	_, err = Load(t.Context(), opts)
	if err == nil {
		t.Fatal("server down without a cache: no error")
	}
	for _, want := range []string{"download the RDS CA bundle from " + srv.url(), "no cached copy in " + opts.CacheDir, "--ca-bundle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBadAnswersRejected: a body that is not a bundle, or is too big, is
// refused; it never replaces a good cached copy.
func TestBadAnswersRejected(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	huge := bytes.Repeat([]byte("A"), maxBundleSize+1)
	for name, c := range map[string]struct {
		handler http.HandlerFunc
		want    string
	}{
		"garbage": {func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html><body>Service Unavailable</body></html>"))
		}, "looks like HTML"},
		"oversize with length": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(huge)))
			w.Write(huge)
		}, "more than the"},
		"oversize chunked": {func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(huge); i += 64 << 10 {
				w.Write(huge[i:min(len(huge), i+64<<10)])
				w.(http.Flusher).Flush()
			}
		}, "more than the"},
		"server error": {func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusForbidden)
		}, "HTTP 403"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewTLSServer(c.handler)
			defer srv.Close()
			url := srv.URL + "/global/global-bundle.pem"
			opts := Options{URL: url, CacheDir: t.TempDir(), HTTPClient: srv.Client()}
			_, err := Load(t.Context(), opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--ca-bundle") {
				t.Fatalf("error %v, want %q and the --ca-bundle advice", err, c.want)
			}
			// With a good (stale) cache the bad answer is not taken.
			cached := filepath.Join(opts.CacheDir, cacheName(mustURL(t, url)))
			if err := os.WriteFile(cached, ca.pem, 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := Load(t.Context(), opts)
			if err != nil || len(b.Certs) != 1 {
				t.Fatalf("with a cache: %v", err)
			}
			if got, _ := os.ReadFile(cached); !bytes.Equal(got, ca.pem) {
				t.Fatal("a bad answer replaced the cached bundle")
			}
		})
	}
}

// TestSlowServerTimesOut: a server that never answers, or sends headers
// and then stalls, costs Timeout, not forever.
func TestSlowServerTimesOut(t *testing.T) {
	for name, headersFirst := range map[string]bool{"no answer": false, "stalled body": true} {
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if headersFirst {
					w.Header().Set("Content-Length", "100000")
					w.Write([]byte("-----BEGIN CERTIFICATE-----\n"))
					w.(http.Flusher).Flush()
				}
				<-release
			}))
			defer srv.Close()
			defer close(release) // before Close, which waits for handlers
			start := time.Now()
			_, err := Load(t.Context(), Options{URL: srv.URL + "/b.pem", CacheDir: t.TempDir(), HTTPClient: srv.Client(), Timeout: 300 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "--ca-bundle") {
				t.Fatalf("error %v, want a timeout and the --ca-bundle advice", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func TestDownloadURLs(t *testing.T) {
	for region, want := range map[string]string{
		"":              GlobalBundleURL,
		"global":        GlobalBundleURL,
		"eu-west-1":     "https://truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem",
		"us-gov-west-1": "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/us-gov-west-1/us-gov-west-1-bundle.pem",
		"cn-north-1":    "https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/cn-north-1/cn-north-1-bundle.pem",
	} {
		if got, err := BundleURL(region); err != nil || got != want {
			t.Errorf("BundleURL(%q) = %q, %v; want %q", region, got, err, want)
		}
	}
	if _, err := BundleURL("../../etc"); err == nil {
		t.Error("a non-region accepted")
	}
	if got := GlobalBundleURLFor("us-gov-east-1"); got != "https://truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem" {
		t.Errorf("GovCloud global bundle %q", got)
	}
	if got := GlobalBundleURLFor("cn-northwest-1"); !strings.HasPrefix(got, chinaStore) {
		t.Errorf("China global bundle %q", got)
	}
	if got := GlobalBundleURLFor("eu-central-1"); got != GlobalBundleURL {
		t.Errorf("commercial global bundle %q", got)
	}
	// Cache names keep partitions apart.
	if cacheName(mustURL(t, GlobalBundleURL)) == cacheName(mustURL(t, GlobalBundleURLFor("us-gov-west-1"))) {
		t.Error("GovCloud's global bundle would overwrite the commercial one in the cache")
	}
}

// TestPlainHTTPRefused: trust anchors come over https; plain http only
// from a loopback mirror.
func TestPlainHTTPRefused(t *testing.T) {
	_, err := Load(t.Context(), Options{URL: "http://bundles.example.com/global-bundle.pem", CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "must come over https") {
		t.Fatalf("plain http to a remote host: %v", err)
	}
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(ca.pem) }))
	defer srv.Close()
	if _, err := Load(t.Context(), Options{URL: srv.URL + "/b.pem", CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("plain http from loopback: %v", err)
	}
}

// TestLoadFile: a given file wins; nothing is downloaded.
func TestLoadFile(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "mine.pem")
	os.WriteFile(file, ca.pem, 0o644)
	b, err := Load(context.Background(), Options{File: file, URL: srv.URL, HTTPClient: srv.Client(), CacheDir: t.TempDir()})
	if err != nil || b.Source != file || hits.Load() != 0 {
		t.Fatalf("file: %v (%d downloads)", err, hits.Load())
	}
	if !strings.Contains(b.Describe(), "(1 CA, file modified ") {
		t.Errorf("Describe() = %q", b.Describe())
	}
	if _, err := Load(context.Background(), Options{File: file + ".missing"}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestURLSecretsStayOut: a presigned mirror URL's query and user info are
// credentials; they reach neither logs, nor errors, nor the cache files.
func TestURLSecretsStayOut(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	srv := newBundleServer(t, ca.pem)
	u := strings.Replace(srv.url(), "https://", "https://user:MARKERPASS@", 1) + "?X-Amz-Signature=MARKERSIG"
	dir := t.TempDir()
	var logs logBuffer
	opts := Options{URL: u, CacheDir: dir, HTTPClient: srv.srv.Client(), Logger: logs.logger()}
	b, err := Load(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.srv.Close()
	_, err = Load(t.Context(), Options{URL: u, CacheDir: t.TempDir(), HTTPClient: srv.srv.Client(), Logger: logs.logger()})
	if err == nil {
		t.Fatal("server down without a cache: no error")
	}
	var files []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		files = append(files, e.Name(), string(data))
	}
	for what, text := range map[string]string{"logs": logs.String(), "error": err.Error(), "description": b.Describe(), "cache": strings.Join(files, "\n")} {
		if strings.Contains(text, "MARKERPASS") || strings.Contains(text, "MARKERSIG") {
			t.Errorf("%s hold a URL secret:\n%s", what, text)
		}
	}
}

// TestRegionPicksTheBundle: Region and DBRegion choose which of AWS's
// bundles is fetched (a local HTTPS server answers for AWS's hosts).
func TestRegionPicksTheBundle(t *testing.T) {
	ca := newCA(t, "rds-test-ca", time.Now().Add(365*24*time.Hour))
	var mu sync.Mutex
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Host+r.URL.Path)
		mu.Unlock()
		w.Write(ca.pem)
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate name
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}
	client := &http.Client{Transport: tr}
	for _, c := range []struct {
		region, dbRegion, want string
	}{
		{"", "", "truststore.pki.rds.amazonaws.com/global/global-bundle.pem"},
		{"", "eu-west-1", "truststore.pki.rds.amazonaws.com/global/global-bundle.pem"},
		{"eu-west-1", "eu-west-1", "truststore.pki.rds.amazonaws.com/eu-west-1/eu-west-1-bundle.pem"},
		{"", "us-gov-east-1", "truststore.pki.us-gov-west-1.rds.amazonaws.com/global/global-bundle.pem"},
		{"us-gov-east-1", "", "truststore.pki.us-gov-west-1.rds.amazonaws.com/us-gov-east-1/us-gov-east-1-bundle.pem"},
		{"", "cn-north-1", "rds-truststore.s3.cn-north-1.amazonaws.com.cn/global/global-bundle.pem"},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		if _, err := Load(t.Context(), Options{Region: c.region, DBRegion: c.dbRegion, CacheDir: t.TempDir(), HTTPClient: client}); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		mu.Lock()
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("region %q, DB region %q: fetched %v, want %s", c.region, c.dbRegion, got, c.want)
		}
		mu.Unlock()
	}
}
