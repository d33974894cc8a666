// Package metrics exposes the proxy's Prometheus metrics: per-upstream
// connection counts, failures by reason, handshake and upstream login
// latency, bytes each way, and, read at scrape time, the state of each
// upstream's AWS credentials and RDS CA bundle.
//
// A Metrics owns its own registry instead of using prometheus's global one,
// so that several proxies in one process (tests, the demo) never collide and
// nothing outside the value it returns holds state.
package metrics

import (
	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

const namespace = "rds_iam_proxy"

// latencyBuckets cover 1 ms (a loopback emulator) to 30 s (a login stuck on
// a slow STS call or a black-holed dial): roughly 1-2.5-5 per decade, so a
// slow upstream shows up as a shift between buckets rather than vanishing
// into the last one.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// knownReasons are pre-created for every upstream so that their failure
// counters exist at 0 from the start: rate() and alerts on a series that
// appears only at its first failure miss that failure.
var knownReasons = []failure.Reason{
	failure.Protocol, failure.Credentials, failure.Limit, failure.Shutdown,
	failure.UpstreamAuth, failure.UpstreamTLS, failure.UpstreamDial, failure.Upstream,
	failure.Timeout, failure.ClientGone, failure.HandshakeLimit, failure.Evicted,
	failure.LoginRate,
}

// Metrics is the proxy's set of metrics and the registry serving them. Safe
// for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	open      *prometheus.GaugeVec
	total     *prometheus.CounterVec
	failed    *prometheus.CounterVec
	handshake *prometheus.HistogramVec
	login     *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	route     routeMetrics // Aurora routing (route.go)

	state *stateCollector

	logins *loginMetrics
}

// New makes a Metrics with a fresh registry that also carries the Go
// runtime and process collectors (memory, goroutines, file descriptors:
// what a sidecar's owner looks at first when it misbehaves).
func New() *Metrics {
	labels := []string{"upstream", "engine"}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "connections_open",
			Help: "Client connections open now, in their handshake or relaying.",
		}, labels),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_total",
			Help: "Client connections accepted.",
		}, labels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "connections_failed_total",
			Help: "Client connections that ended before the relay, by reason.",
		}, append(labels, "reason")),
		handshake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "handshake_seconds",
			Help:    "Time from accepting a client to relaying its bytes (successful logins only).",
			Buckets: latencyBuckets,
		}, labels),
		login: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "upstream_login_seconds",
			Help:    "Part of the handshake spent on the upstream: dial, TLS and IAM login.",
			Buckets: latencyBuckets,
		}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bytes_total",
			Help: "Bytes relayed, by direction: from_client (to the upstream) or from_upstream (to the client).",
		}, append(labels, "direction")),
		state: &stateCollector{
			credentials: map[string]func() CredentialStats{},
			bundles:     map[string]func() (time.Time, int){},
			pools:       map[string]func() int{},
			now:         time.Now,
		},
	}
	m.logins = newLoginMetrics(labels)
	m.reg.MustRegister(m.logins.collectors()...)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.open, m.total, m.failed, m.handshake, m.login, m.bytes, m.state,
	)
	m.route = newRouteMetrics(m.reg, labels)
	return m
}

// Handler serves the registry in the Prometheus exposition formats, for
// /metrics. Errors while gathering are reported in the response rather than
// failing the scrape, so one bad collector does not blank every metric.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// Gatherer is the registry, for tests and for anything that wants to push
// or merge these metrics elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Upstream returns the observer for one upstream's connections. Its label
// children are resolved here, once, so that the per-connection and per-byte
// callbacks touch only atomics. Calling it again for the same name and
// engine returns an observer feeding the same series.
func (m *Metrics) Upstream(name, engine string) proxy.Observer {
	o := &observer{
		open:         m.open.WithLabelValues(name, engine),
		total:        m.total.WithLabelValues(name, engine),
		failedVec:    m.failed.MustCurryWith(prometheus.Labels{"upstream": name, "engine": engine}),
		failed:       make(map[failure.Reason]prometheus.Counter, len(knownReasons)),
		handshake:    m.handshake.WithLabelValues(name, engine),
		login:        m.login.WithLabelValues(name, engine),
		fromClient:   m.bytes.WithLabelValues(name, engine, "from_client"),
		fromUpstream: m.bytes.WithLabelValues(name, engine, "from_upstream"),
		route:        m.route.upstream(name, engine),
	}
	o.loginObserver = m.logins.upstream(name, engine)
	for _, r := range knownReasons {
		o.failed[r] = o.failedVec.WithLabelValues(string(r))
	}
	return o
}

// observer implements proxy.Observer for one upstream.
type observer struct {
	open      prometheus.Gauge
	total     prometheus.Counter
	failedVec *prometheus.CounterVec
	// failed is filled before the observer is shared and only read after,
	// so lookups need no lock.
	failed       map[failure.Reason]prometheus.Counter
	handshake    prometheus.Observer
	login        prometheus.Observer
	fromClient   prometheus.Counter
	fromUpstream prometheus.Counter
	route        routeObserver // implements proxy.RouteObserver
	loginObserver
}

func (o *observer) Accepted() {
	o.total.Inc()
	o.open.Inc()
}

func (o *observer) Refused(reason failure.Reason) {
	if c, ok := o.failed[reason]; ok {
		c.Inc()
		return
	}
	// A reason added to failure after this list: still counted, via the
	// vector's own lookup.
	o.failedVec.WithLabelValues(string(reason)).Inc()
}

func (o *observer) LoggedIn(handshake, upstream time.Duration) {
	o.handshake.Observe(handshake.Seconds())
	o.login.Observe(upstream.Seconds())
}

func (o *observer) Ended() { o.open.Dec() }

func (o *observer) BytesFromClient(n int64) {
	if n > 0 {
		o.fromClient.Add(float64(n))
	}
}

func (o *observer) BytesFromUpstream(n int64) {
	if n > 0 {
		o.fromUpstream.Add(float64(n))
	}
}
