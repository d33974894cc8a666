package metrics

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CredentialStats is what an upstream's credential cache reports at scrape
// time. Counters must only grow for the life of the process.
type CredentialStats struct {
	Refreshes       int64 // successful credential retrievals (including the first)
	RefreshFailures int64 // failed retrievals
	TokensBuilt     int64 // IAM auth tokens signed
	// Expiry is when the current credentials expire; zero when unknown or
	// when they do not expire (static keys), and the metric is then left
	// out rather than reported as 1970.
	Expiry time.Time
	// MFAExpiry is when the MFA session ends (a new code is needed then);
	// zero when the proxy does no MFA, and the metric is left out.
	MFAExpiry time.Time
}

// AddCredentials reports an upstream's credentials on every scrape by
// calling f, which must be cheap and safe for concurrent use. Reading at
// scrape time, instead of pushing from the credential cache, keeps the
// authtoken package free of any metrics dependency. A second call for the
// same upstream replaces the first (a reloaded upstream).
func (m *Metrics) AddCredentials(upstream string, f func() CredentialStats) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.credentials[upstream] = f
}

// AddCABundle reports an upstream's RDS CA bundle on every scrape: f
// returns when the bundle in use was fetched (downloaded, revalidated, or
// the file's modification time; zero if unknown) and how many CAs it holds.
// An old bundle is how a proxy ends up refusing a rotated RDS certificate,
// so its age is worth an alert. A second call for the same upstream
// replaces the first.
func (m *Metrics) AddCABundle(upstream string, f func() (fetched time.Time, cas int)) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.bundles[upstream] = f
}

// AddSessionPool reports an upstream's session reuse pool on every
// scrape: parked returns how many sessions are parked now (proxy.Pool's
// Idle). Only upstreams with --session-reuse call it, so the gauge is
// absent, not 0, where sessions are not reused. A second call for the
// same upstream replaces the first.
func (m *Metrics) AddSessionPool(upstream string, parked func() int) {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.pools[upstream] = parked
}

var (
	descRefreshes = upstreamDesc("_credential_refreshes_total",
		"AWS credential retrievals that succeeded.")
	descRefreshFailures = upstreamDesc("_credential_refresh_failures_total",
		"AWS credential retrievals that failed.")
	descTokens = upstreamDesc("_tokens_built_total",
		"IAM auth tokens signed.")
	descExpiry = upstreamDesc("_credentials_expiry_timestamp_seconds",
		"When the current AWS credentials expire, as a Unix time.")
	descMFAExpiry = upstreamDesc("_mfa_session_expiry_timestamp_seconds",
		"When the MFA session ends and a new MFA code is needed, as a Unix time.")
	descBundleAge = upstreamDesc("_ca_bundle_age_seconds",
		"Seconds since the RDS CA bundle in use was fetched or confirmed current.")
	descBundleCerts = upstreamDesc("_ca_bundle_certificates",
		"CA certificates in the RDS CA bundle in use.")
	descParked = upstreamDesc("_sessions_parked",
		"Upstream sessions parked for reuse now (--session-reuse), all users and databases together.")
)

// upstreamDesc describes a per-upstream metric: the name after the
// namespace, one "upstream" label.
func upstreamDesc(suffix, help string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+suffix, help, []string{"upstream"}, nil)
}

// stateCollector turns the registered callbacks into const metrics at
// scrape time.
type stateCollector struct {
	mu          sync.Mutex
	credentials map[string]func() CredentialStats
	bundles     map[string]func() (time.Time, int)
	pools       map[string]func() int
	now         func() time.Time
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRefreshes, descRefreshFailures, descTokens, descExpiry, descMFAExpiry, descBundleAge, descBundleCerts, descParked} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	// Copy the callbacks so that none runs under the lock: a slow one must
	// not block registration.
	c.mu.Lock()
	creds := maps.Clone(c.credentials)
	bundles := maps.Clone(c.bundles)
	pools := maps.Clone(c.pools)
	c.mu.Unlock()

	for _, name := range slices.Sorted(maps.Keys(creds)) {
		s := creds[name]()
		ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(s.Refreshes), name)
		ch <- prometheus.MustNewConstMetric(descRefreshFailures, prometheus.CounterValue, float64(s.RefreshFailures), name)
		ch <- prometheus.MustNewConstMetric(descTokens, prometheus.CounterValue, float64(s.TokensBuilt), name)
		if !s.Expiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(s.Expiry.UnixNano())/1e9, name)
		}
		if !s.MFAExpiry.IsZero() {
			ch <- prometheus.MustNewConstMetric(descMFAExpiry, prometheus.GaugeValue, float64(s.MFAExpiry.UnixNano())/1e9, name)
		}
	}
	now := c.now()
	for _, name := range slices.Sorted(maps.Keys(bundles)) {
		fetched, cas := bundles[name]()
		if !fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(descBundleAge, prometheus.GaugeValue, now.Sub(fetched).Seconds(), name)
		}
		ch <- prometheus.MustNewConstMetric(descBundleCerts, prometheus.GaugeValue, float64(cas), name)
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(pools[name]()), name)
	}
}
