package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// The guard's events reach the upstream's series through its observer.
func TestLoginMetrics(t *testing.T) {
	m := New()
	lo, ok := m.Upstream("orders", "postgres").(proxy.LoginObserver)
	if !ok {
		t.Fatal("the upstream observer is not a proxy.LoginObserver: the guard's events would be lost")
	}
	lo.LoginWaited(1500 * time.Millisecond)
	lo.LoginWaitRefused()
	lo.LoginRetried(proxy.RetryThrottled)
	lo.LoginsInProgress(1)
	lo.LoginsInProgress(1)
	lo.LoginsInProgress(-1)
	for name, got := range map[string]float64{
		"refused":     testutil.ToFloat64(m.logins.refused.WithLabelValues("orders", "postgres")),
		"throttled":   testutil.ToFloat64(m.logins.retries.WithLabelValues("orders", "postgres", proxy.RetryThrottled)),
		"busy":        testutil.ToFloat64(m.logins.retries.WithLabelValues("orders", "postgres", proxy.RetryBusyAuth)) + 1,
		"in progress": testutil.ToFloat64(m.logins.inProgress.WithLabelValues("orders", "postgres")),
	} {
		if got != 1 {
			t.Errorf("%s: %v, want 1", name, got)
		}
	}
	if n := testutil.CollectAndCount(m.logins.wait, "rds_iam_proxy_login_wait_seconds"); n != 1 {
		t.Errorf("wait histogram: %d series, want 1", n)
	}
}
