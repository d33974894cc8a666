package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
	"github.com/rds-iam-proxy/rds-iam-proxy/proxy"
)

// Budget (CI seconds): the storm about 5, the retries about 3, the busy
// retry about 3.

// gathered sums the samples of the metric name whose labels include
// labels (name=value pairs); for a histogram, its sample count.
func gathered(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// TestLoginRateStorm: 200 psql-like clients (pgconn) at once against a
// guard of 50 logins/s (burst 10) that lets a login wait 2 s: every
// client is either served or told login_rate in its protocol (53300,
// naming the flags), none hangs, and no more logins went than the rate
// allows over the storm's length.
func TestLoginRateStorm(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	const rate, burst, clients = 50, 10, 200
	port := startProxy(t, func(c *launch.Config) {
		c.LoginRate, c.LoginBurst, c.LoginWait, c.MaxLoginsInProgress = rate, burst, config.Duration(2*time.Second), 32
		c.Observer = m.Upstream("storm", "postgres")
	})
	var (
		mu              sync.Mutex
		served, refused int
		inProgress      int // of refused: for a place among the logins in progress
		lastServed      time.Duration
		others          []string
		wg              sync.WaitGroup
	)
	conninfo := strings.Replace(dsn(port, iamUser), "connect_timeout=20", "connect_timeout=40", 1)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			// Hung: no answer within 40 s, past the proxy's handshake
			// timeout (30 s), which bounds a wait in line.
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			conn, err := pgconn.Connect(ctx, conninfo)
			if err == nil {
				err = conn.Exec(ctx, "SELECT 1").Close()
				conn.Close(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			var pgErr *pgconn.PgError
			switch {
			case err == nil:
				served++
				lastServed = max(lastServed, time.Since(start))
			case errors.As(err, &pgErr) && pgErr.Code == "53300" &&
				(strings.Contains(pgErr.Message, "--login-rate") || strings.Contains(pgErr.Message, "--max-logins-in-progress")):
				refused++
				if strings.Contains(pgErr.Message, "--max-logins-in-progress") {
					inProgress++
				}
			case ctx.Err() != nil:
				others = append(others, "hung: "+err.Error())
			default:
				others = append(others, err.Error())
			}
		})
	}
	wg.Wait()
	t.Logf("%d served (the last %v after the start), %d refused with login_rate (%d for a place among the logins in progress), in %v",
		served, lastServed.Round(time.Millisecond), refused, inProgress, time.Since(start).Round(time.Millisecond))
	if len(others) > 0 {
		t.Fatalf("%d clients neither served nor told login_rate (hung ones included), e.g. %s", len(others), others[0])
	}
	if served+refused != clients {
		t.Fatalf("%d served + %d refused, want %d", served, refused, clients)
	}
	// The bucket holds burst logins and gains rate a second: no more can
	// have gone by the last served login (one more for rounding).
	if most := burst + int(rate*lastServed.Seconds()) + 1; served > most {
		t.Errorf("%d logins went within %v: more than the guard allows (%d)", served, lastServed, most)
	}
	// Every client came at once and could wait 2 s: about burst + 2 s of
	// the rate (110) get in when logins are quick; on a loaded machine
	// (logins of a second under -race) the 32 in progress are the limit.
	if served < 30 || refused == 0 {
		t.Errorf("%d served and %d refused: want about %d served and the rest refused", served, refused, burst+2*rate)
	}
	if got := gathered(t, m.Gatherer(), "rds_iam_proxy_login_wait_refused_total"); int(got) != refused {
		t.Errorf("login_wait_refused_total %v, want %d", got, refused)
	}
	if got := gathered(t, m.Gatherer(), "rds_iam_proxy_connections_failed_total", "reason", "login_rate"); int(got) != refused {
		t.Errorf("connections_failed_total{reason=login_rate} %v, want %d", got, refused)
	}
	if got := gathered(t, m.Gatherer(), "rds_iam_proxy_login_wait_seconds"); int(got) != served {
		t.Errorf("login_wait_seconds has %v samples, want one per served login (%d)", got, served)
	}
	if got := gathered(t, m.Gatherer(), "rds_iam_proxy_logins_in_progress"); got != 0 {
		t.Errorf("logins_in_progress %v after the storm, want 0", got)
	}
}

// TestLoginRateRetry: a login the server refuses as throttled ("too many
// competing requests") is tried once more with a fresh token, and the
// client gets in; a second refusal in a row reaches the client. MySQL
// re-dials for the second try.
func TestLoginRateRetry(t *testing.T) {
	w.enter(t)
	retries := func(m *metrics.Metrics) float64 {
		return gathered(t, m.Gatherer(), "rds_iam_proxy_login_retries_total", "reason", proxy.RetryThrottled)
	}
	t.Run("postgres", func(t *testing.T) {
		m := metrics.New()
		port := startProxy(t, func(c *launch.Config) { c.Observer = m.Upstream("retry", "postgres") })
		w.failNextVerifies(t, w.front, 1)
		ctx := testCtx(t, 20*time.Second)
		conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
		if err != nil {
			t.Fatalf("one throttled login: the client got %v, want in after the retry", err)
		}
		conn.Close(ctx)
		if got := retries(m); got != 1 {
			t.Fatalf("retries %v, want 1", got)
		}
		w.failNextVerifies(t, w.front, 2)
		_, err = pgconn.Connect(ctx, dsn(port, iamUser))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("two throttled logins in a row: %v, want the server's refusal (one retry only)", err)
		}
		if got := retries(m); got != 2 {
			t.Fatalf("retries %v, want 2 (one per client)", got)
		}
	})
	t.Run("mysql", func(t *testing.T) {
		m := metrics.New()
		port := startMySQLProxy(t, func(c *launch.Config) { c.Observer = m.Upstream("retry", "mysql") })
		w.failNextVerifies(t, w.my, 1)
		db := mysqlDB(t, port, iamUser)
		var one int
		if err := db.QueryRowContext(testCtx(t, 20*time.Second), "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("one throttled login: %v, want in after the retry", err)
		}
		if got := retries(m); got != 1 {
			t.Fatalf("retries %v, want 1", got)
		}
	})
}

// TestLoginRateRetryWhenBusy: RDS may answer a throttled login with only
// its generic "PAM authentication failed". While the endpoint is busy
// (above half the guard's rate over the last second) such a failure is
// tried once more; every client ends served or refused, none hangs.
func TestLoginRateRetryWhenBusy(t *testing.T) {
	w.enter(t)
	m := metrics.New()
	port := startProxy(t, func(c *launch.Config) {
		// A burst of 40 lets every client go at once, and a rate of 10
		// makes "busy" (over 5 a second) true of that burst for seconds,
		// however slowly a loaded machine returns the failures.
		c.LoginRate, c.LoginBurst = 10, 40
		c.Observer = m.Upstream("busy", "postgres")
	})
	w.setVerifyRate(t, w.front, 5)
	const clients = 40
	errs := make(chan error, clients)
	for range clients {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := pgconn.Connect(ctx, dsn(port, iamUser))
			if err == nil {
				conn.Close(ctx)
			}
			if err != nil && ctx.Err() != nil {
				err = fmt.Errorf("hung: %w", err)
			}
			errs <- err
		}()
	}
	served := 0
	for range clients {
		err := <-errs
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			served++
		case errors.As(err, &pgErr) && pgErr.Code == "28P01":
		default:
			t.Errorf("client: %v, want served or the server's refusal", err)
		}
	}
	busy := gathered(t, m.Gatherer(), "rds_iam_proxy_login_retries_total", "reason", proxy.RetryBusyAuth)
	t.Logf("%d of %d served; %v retried as busy", served, clients, busy)
	// The front lets 5 through at once: most of the other 35 failed
	// generically while the endpoint was busy (40 logins in the last
	// second, over half the guard's 10/s), so they were retried.
	if served < 5 || busy < 5 {
		t.Errorf("%d served, %v retried: want at least 5 of each", served, busy)
	}
}
