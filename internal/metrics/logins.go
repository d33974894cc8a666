package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// loginMetrics are the guard on the IAM login rate's metrics (see
// proxy.LoginGuard): how long logins waited for their turn, how many were
// refused for waiting too long, how many were tried again and why, and how
// many are in progress.
type loginMetrics struct {
	wait       *prometheus.HistogramVec
	refused    *prometheus.CounterVec
	retries    *prometheus.CounterVec
	inProgress *prometheus.GaugeVec
	warm       *prometheus.CounterVec
	reuse      *prometheus.CounterVec
}

// warmEvents are the pre-warmed connections' events (the label values).
var warmEvents = []string{"dialed", "dial_failed", "taken", "recycled", "stale"}

// waitBuckets cover no wait at all to the longest --login-wait allowed
// sensibly (30 s).
var waitBuckets = []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func newLoginMetrics(labels []string) *loginMetrics {
	return &loginMetrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "login_wait_seconds",
			Help:    "Time upstream logins waited for their turn under --login-rate and --max-logins-in-progress (logins that went).",
			Buckets: waitBuckets,
		}, labels),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "login_wait_refused_total",
			Help: "Logins refused because their turn would have come after --login-wait (counted under connections_failed_total reason login_rate too).",
		}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "login_retries_total",
			Help: "Upstream logins tried once more with a fresh token, by reason: throttled (the server said too many competing requests), auth_failed_busy (a token rejection while the endpoint was busy).",
		}, append(labels, "reason")),
		inProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "logins_in_progress",
			Help: "Upstream logins in progress now (past the guard's wait, not yet logged in or failed).",
		}, labels),
		warm: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "prewarm_connections_total",
			Help: "Pre-warmed upstream connections (--prewarm), by event: dialed (made ready), dial_failed, taken (by a login, which skipped its dial), recycled (replaced at --prewarm-max-age), stale (taken but closed by the server; the login dialed afresh).",
		}, append(labels, "event")),
		reuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "session_reuse_total",
			Help: "Session reuse (--session-reuse), by event: taken (a client got a parked session: no token, no login), parked (a session its client left cleanly went to the pool), discarded (a session its client did not leave cleanly was closed), dead (a parked session could not be handed over and was closed).",
		}, append(labels, "event")),
	}
}

func (m *loginMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.wait, m.refused, m.retries, m.inProgress, m.warm, m.reuse}
}

// upstream is one upstream's share, resolved once.
func (m *loginMetrics) upstream(name, engine string) loginObserver {
	o := loginObserver{
		wait: m.wait.WithLabelValues(name, engine), refused: m.refused.WithLabelValues(name, engine),
		retries: m.retries.MustCurryWith(prometheus.Labels{"upstream": name, "engine": engine}), inProgress: m.inProgress.WithLabelValues(name, engine),
	}
	for _, r := range []string{proxy.RetryThrottled, proxy.RetryBusyAuth} {
		o.retries.WithLabelValues(r) // the series exist at 0 from the start
	}
	o.warm = map[string]prometheus.Counter{}
	for _, e := range warmEvents {
		o.warm[e] = m.warm.WithLabelValues(name, engine, e)
	}
	o.reuse = map[string]prometheus.Counter{}
	for _, e := range proxy.ReuseEvents {
		o.reuse[e] = m.reuse.WithLabelValues(name, engine, e)
	}
	return o
}

// loginObserver implements proxy.LoginObserver for one upstream; the
// upstream's observer embeds it.
type loginObserver struct {
	wait       prometheus.Observer
	refused    prometheus.Counter
	retries    *prometheus.CounterVec
	inProgress prometheus.Gauge
	warm       map[string]prometheus.Counter // by event; only read once made
	reuse      map[string]prometheus.Counter // by event; only read once made
}

func (o loginObserver) LoginWaited(d time.Duration) { o.wait.Observe(d.Seconds()) }
func (o loginObserver) LoginWaitRefused()           { o.refused.Inc() }
func (o loginObserver) LoginRetried(reason string)  { o.retries.WithLabelValues(reason).Inc() }
func (o loginObserver) LoginsInProgress(delta int)  { o.inProgress.Add(float64(delta)) }

func (o loginObserver) WarmDialed(ok bool) {
	if ok {
		o.warm["dialed"].Inc()
	} else {
		o.warm["dial_failed"].Inc()
	}
}
func (o loginObserver) WarmTaken()    { o.warm["taken"].Inc() }
func (o loginObserver) WarmRecycled() { o.warm["recycled"].Inc() }
func (o loginObserver) WarmStale()    { o.warm["stale"].Inc() }

func (o loginObserver) SessionReuse(event string) {
	if c, ok := o.reuse[event]; ok {
		c.Inc()
	}
}

var (
	_ proxy.LoginObserver = loginObserver{}
	_ proxy.WarmObserver  = loginObserver{}
	_ proxy.ReuseObserver = loginObserver{}
)
