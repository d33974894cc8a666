package metrics_test

import (
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
)

// scrape fetches /metrics over real HTTP, as Prometheus would, and parses
// the text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET /metrics: %s: %s", res.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// find returns the metric of family name whose labels include want, or nil.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value; it fails the test if absent.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(fams, name, labels)
	if m == nil {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s%v is neither counter nor gauge", name, labels)
	return 0
}

func TestObserverEventsReachTheScrape(t *testing.T) {
	m := metrics.New()
	pg := m.Upstream("orders", "postgres")
	my := m.Upstream("users", "mysql")
	orders := map[string]string{"upstream": "orders", "engine": "postgres"}

	// Three clients: one relays and ends, one is refused for credentials,
	// one is still open.
	pg.Accepted()
	pg.LoggedIn(40*time.Millisecond, 30*time.Millisecond)
	pg.BytesFromClient(100)
	pg.BytesFromClient(23)
	pg.BytesFromUpstream(4096)
	pg.Ended()

	pg.Accepted()
	pg.Refused(failure.Credentials)
	pg.Ended()

	pg.Accepted()

	my.Accepted()
	my.Refused(failure.UpstreamTLS)
	my.Refused("some_future_reason")
	my.Ended()

	fams := scrape(t, m.Handler())

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rds_iam_proxy_connections_total", orders, 3},
		{"rds_iam_proxy_connections_open", orders, 1},
		{"rds_iam_proxy_connections_failed_total", with(orders, "reason", string(failure.Credentials)), 1},
		{"rds_iam_proxy_connections_failed_total", with(orders, "reason", string(failure.UpstreamDial)), 0}, // pre-created at 0
		{"rds_iam_proxy_bytes_total", with(orders, "direction", "from_client"), 123},
		{"rds_iam_proxy_bytes_total", with(orders, "direction", "from_upstream"), 4096},
		{"rds_iam_proxy_connections_total", map[string]string{"upstream": "users", "engine": "mysql"}, 1},
		{"rds_iam_proxy_connections_open", map[string]string{"upstream": "users"}, 0},
		{"rds_iam_proxy_connections_failed_total", map[string]string{"upstream": "users", "reason": string(failure.UpstreamTLS)}, 1},
		{"rds_iam_proxy_connections_failed_total", map[string]string{"upstream": "users", "reason": "some_future_reason"}, 1},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	for _, name := range []string{"rds_iam_proxy_handshake_seconds", "rds_iam_proxy_upstream_login_seconds"} {
		h := find(fams, name, orders)
		if h == nil || h.Histogram == nil {
			t.Fatalf("no histogram %s for orders", name)
		}
		if h.Histogram.GetSampleCount() != 1 {
			t.Errorf("%s count = %d, want 1", name, h.Histogram.GetSampleCount())
		}
		// One sample of 30 or 40 ms: in the 50 ms bucket, not the 25 ms one.
		for _, b := range h.Histogram.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 0.05 {
				want = 1
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("%s bucket le=%v: %d, want %d", name, b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	if h := find(fams, "rds_iam_proxy_handshake_seconds", map[string]string{"upstream": "users"}); h.Histogram.GetSampleCount() != 0 {
		t.Errorf("users handshake count = %d, want 0 (never logged in)", h.Histogram.GetSampleCount())
	}

	// Go and process collectors are on the same registry.
	if fams["go_goroutines"] == nil {
		t.Error("go_goroutines missing: Go collector not registered")
	}
}

func TestSameUpstreamSharesSeries(t *testing.T) {
	m := metrics.New()
	m.Upstream("a", "postgres").Accepted()
	m.Upstream("a", "postgres").Accepted()
	fams := scrape(t, m.Handler())
	if got := value(t, fams, "rds_iam_proxy_connections_total", map[string]string{"upstream": "a"}); got != 2 {
		t.Errorf("connections_total = %v, want 2", got)
	}
}

func TestCredentialAndCABundleCollectors(t *testing.T) {
	m := metrics.New()
	expiry := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	mfaEnds := expiry.Add(11 * time.Hour)
	var stats = metrics.CredentialStats{Refreshes: 3, RefreshFailures: 1, TokensBuilt: 42, Expiry: expiry, MFAExpiry: mfaEnds}
	m.AddCredentials("orders", func() metrics.CredentialStats { return stats })
	m.AddCredentials("static", func() metrics.CredentialStats { return metrics.CredentialStats{TokensBuilt: 1} })
	fetched := time.Now().Add(-2 * time.Hour)
	m.AddCABundle("orders", func() (time.Time, int) { return fetched, 118 })
	m.AddCABundle("unknown-age", func() (time.Time, int) { return time.Time{}, 5 })

	up := func(n string) map[string]string { return map[string]string{"upstream": n} }
	fams := scrape(t, m.Handler())
	for _, c := range []struct {
		name string
		up   string
		want float64
	}{
		{"rds_iam_proxy_credential_refreshes_total", "orders", 3},
		{"rds_iam_proxy_credential_refresh_failures_total", "orders", 1},
		{"rds_iam_proxy_tokens_built_total", "orders", 42},
		{"rds_iam_proxy_credentials_expiry_timestamp_seconds", "orders", float64(expiry.Unix())},
		{"rds_iam_proxy_mfa_session_expiry_timestamp_seconds", "orders", float64(mfaEnds.Unix())},
		{"rds_iam_proxy_tokens_built_total", "static", 1},
		{"rds_iam_proxy_ca_bundle_certificates", "orders", 118},
		{"rds_iam_proxy_ca_bundle_certificates", "unknown-age", 5},
	} {
		if got := value(t, fams, c.name, up(c.up)); got != c.want {
			t.Errorf("%s{upstream=%q} = %v, want %v", c.name, c.up, got, c.want)
		}
	}
	if find(fams, "rds_iam_proxy_mfa_session_expiry_timestamp_seconds", up("static")) != nil {
		t.Error("an MFA expiry reported for an upstream without MFA")
	}
	if find(fams, "rds_iam_proxy_credentials_expiry_timestamp_seconds", up("static")) != nil {
		t.Error("expiry reported for credentials without one")
	}
	if find(fams, "rds_iam_proxy_ca_bundle_age_seconds", up("unknown-age")) != nil {
		t.Error("age reported for a bundle with no fetch time")
	}
	// Age is computed at scrape time: two hours, give or take how long
	// the test took.
	if age := value(t, fams, "rds_iam_proxy_ca_bundle_age_seconds", up("orders")); age < 7200 || age > 7200+300 {
		t.Errorf("ca_bundle_age_seconds = %v, want about 7200", age)
	}

	// Values are read at every scrape, not once.
	stats.TokensBuilt = 43
	m.AddCABundle("orders", func() (time.Time, int) { return fetched, 119 }) // replaces
	fams = scrape(t, m.Handler())
	if got := value(t, fams, "rds_iam_proxy_tokens_built_total", up("orders")); got != 43 {
		t.Errorf("tokens_built_total after change = %v, want 43", got)
	}
	if got := value(t, fams, "rds_iam_proxy_ca_bundle_certificates", up("orders")); got != 119 {
		t.Errorf("ca_bundle_certificates after replace = %v, want 119", got)
	}
}

// TestTwoMetricsDoNotShareState: no global registry, so two proxies in one
// process (tests, the demo) each count their own.
func TestTwoMetricsDoNotShareState(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Upstream("x", "postgres").Accepted()
	b.Upstream("x", "postgres")
	if got := value(t, scrape(t, b.Handler()), "rds_iam_proxy_connections_total", map[string]string{"upstream": "x"}); got != 0 {
		t.Errorf("b sees a's connection: %v", got)
	}
}

// TestByteCallbacksDoNotAllocate: they run for every read on the relay.
func TestByteCallbacksDoNotAllocate(t *testing.T) {
	o := metrics.New().Upstream("x", "postgres")
	allocs := testing.AllocsPerRun(1000, func() {
		o.BytesFromClient(512)
		o.BytesFromUpstream(8192)
		o.Refused(failure.Timeout)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per callback round, want 0", allocs)
	}
}

func TestConcurrentObserversAreRaceFree(t *testing.T) {
	m := metrics.New()
	o := m.Upstream("x", "mysql")
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				o.Accepted()
				o.BytesFromClient(1)
				o.Ended()
			}
		}()
	}
	m.AddCredentials("x", func() metrics.CredentialStats { return metrics.CredentialStats{} })
	_ = scrape(t, m.Handler())
	for range 8 {
		<-done
	}
	fams := scrape(t, m.Handler())
	if got := value(t, fams, "rds_iam_proxy_bytes_total", map[string]string{"direction": "from_client"}); got != 800 {
		t.Errorf("bytes = %v, want 800", got)
	}
	if got := value(t, fams, "rds_iam_proxy_connections_open", map[string]string{"upstream": "x"}); got != 0 {
		t.Errorf("open = %v, want 0", got)
	}
}

func with(base map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for bk, bv := range base {
		out[bk] = bv
	}
	return out
}
