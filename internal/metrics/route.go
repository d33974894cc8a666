package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// routeMetrics count what an Aurora cluster's router does: writer
// changes, sessions cut on a demoted writer, and how long logins were
// held while no writer was confirmed.
type routeMetrics struct {
	writerChanges *prometheus.CounterVec
	demotedCut    *prometheus.CounterVec
	failoverWait  *prometheus.HistogramVec
}

func newRouteMetrics(reg *prometheus.Registry, labels []string) routeMetrics {
	m := routeMetrics{
		writerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "aurora_writer_changes_total",
			Help: "Times the router confirmed a new Aurora writer (failovers followed).",
		}, labels),
		demotedCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "aurora_demoted_sessions_cut_total",
			Help: "Sessions ended because the writer they were on was demoted by a failover.",
		}, labels),
		failoverWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "aurora_failover_wait_seconds",
			Help:    "Time logins were held while no Aurora writer was confirmed.",
			Buckets: latencyBuckets,
		}, labels),
	}
	reg.MustRegister(m.writerChanges, m.demotedCut, m.failoverWait)
	return m
}

func (m routeMetrics) upstream(name, engine string) routeObserver {
	return routeObserver{
		writerChanges: m.writerChanges.WithLabelValues(name, engine),
		demotedCut:    m.demotedCut.WithLabelValues(name, engine),
		failoverWait:  m.failoverWait.WithLabelValues(name, engine),
	}
}

// routeObserver is one upstream's share of routeMetrics.
type routeObserver struct {
	writerChanges, demotedCut prometheus.Counter
	failoverWait              prometheus.Observer
}

// WriterChanged, DemotedCut and FailoverWait implement proxy.RouteObserver.
func (o *observer) WriterChanged()               { o.route.writerChanges.Inc() }
func (o *observer) DemotedCut()                  { o.route.demotedCut.Inc() }
func (o *observer) FailoverWait(d time.Duration) { o.route.failoverWait.Observe(d.Seconds()) }
