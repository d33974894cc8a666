package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/metrics"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/throwaway/localpg"
)

// Budget (CI seconds): the connects about 2; the recycle about 10 (a
// PostgreSQL of its own, then 3.5 s, past its authentication_timeout).

// prewarmed reads the pre-warmed connections' counter for event.
func prewarmed(t *testing.T, m *metrics.Metrics, event string) int {
	t.Helper()
	return int(gathered(t, m.Gatherer(), "rds_iam_proxy_prewarm_connections_total", "event", event))
}

// TestPrewarmConnects: with --prewarm 4, clients log in on connections
// the proxy made ready before they came: the emulated RDS front accepts
// no connection at the clients' connect time other than the proxy's
// refills, and each login took a ready one.
func TestPrewarmConnects(t *testing.T) {
	w.enter(t)
	const n = 4
	type front interface{ Accepted() int64 }
	for _, tc := range []struct {
		engine  string
		start   func(*testing.T, ...func(*launch.Config)) string
		front   front
		connect func(t *testing.T, port string) error
	}{
		{"postgres", startProxy, w.front, func(t *testing.T, port string) error {
			ctx := testCtx(t, 20*time.Second)
			c, err := pgconn.Connect(ctx, dsn(port, iamUser))
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			return c.Exec(ctx, "SELECT 1").Close()
		}},
		{"mysql", startMySQLProxy, w.my, func(t *testing.T, port string) error {
			db := mysqlDB(t, port, iamUser)
			defer db.Close()
			return db.PingContext(testCtx(t, 20*time.Second))
		}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			m := metrics.New()
			port := tc.start(t, func(c *launch.Config) {
				c.Prewarm = n
				c.PrewarmMaxAge = config.Duration(time.Minute) // no recycle during the test
				c.Observer = m.Upstream("warm", tc.engine)
			})
			waitFor(t, 10*time.Second, func() bool { return prewarmed(t, m, "dialed") == n })
			before := tc.front.Accepted()
			for i := range n {
				if err := tc.connect(t, port); err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
			}
			// Each take is made up for: wait for the refills, then every
			// connection the front accepted meanwhile is one of them.
			waitFor(t, 10*time.Second, func() bool { return prewarmed(t, m, "dialed") == 2*n })
			if taken := prewarmed(t, m, "taken"); taken != n {
				t.Errorf("%d logins took a ready connection, want all %d", taken, n)
			}
			if got := tc.front.Accepted() - before; got != n {
				t.Errorf("the front accepted %d connections during %d logins, want only the %d refills (no dial at connect time)", got, n, n)
			}
			if stale := prewarmed(t, m, "stale"); stale != 0 {
				t.Errorf("%d ready connections were dead", stale)
			}
		})
	}
}

// TestPrewarmRecycle: a PostgreSQL of the test's own with
// authentication_timeout 2 s ends a connection that has not logged in
// after 2 s. A proxy that recycles its ready connections at 1 s never
// hands a client a dead one; one that keeps them 30 s does (the server
// closed them), notices, and dials afresh: the client gets in either way.
func TestPrewarmRecycle(t *testing.T) {
	w.enter(t)
	name := "warm-pg.c0ffee123456." + w.aws.AWS.Region() + ".rds.amazonaws.com"
	certPEM, keyPEM, err := w.aws.CA.ServerCertPEM(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := localpg.Start(ctx, localpg.Options{
		TLS:      &localpg.TLSFiles{CertPEM: certPEM, KeyPEM: keyPEM},
		HBA:      []string{"hostssl all all 127.0.0.1/32 trust"},
		Settings: map[string]string{"authentication_timeout": "2s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	start := func(maxAge time.Duration) (string, *metrics.Metrics) {
		m := metrics.New()
		c := launch.NewConfig(config.Postgres, name+":5432")
		c.DialAddress, c.Listen, c.CABundle = srv.Addr(), "127.0.0.1:0", w.caFile
		c.Prewarm, c.PrewarmMaxAge = 2, config.Duration(maxAge)
		c.Observer = m.Upstream("warm", "postgres")
		return startProxyWith(t, c), m
	}
	recycled, recycledM := start(time.Second)
	kept, keptM := start(30 * time.Second)
	waitFor(t, 10*time.Second, func() bool {
		return prewarmed(t, recycledM, "dialed") >= 2 && prewarmed(t, keptM, "dialed") == 2
	})
	time.Sleep(3500 * time.Millisecond) // past authentication_timeout
	connect := func(port string) {
		cctx := testCtx(t, 20*time.Second)
		c, err := pgconn.Connect(cctx, fmt.Sprintf("host=127.0.0.1 port=%s user=postgres dbname=postgres sslmode=disable", port))
		if err != nil {
			t.Fatalf("client through the proxy on %s: %v", port, err)
		}
		c.Close(cctx)
	}
	// The recycling proxy has none ready for the moment between dropping
	// an old connection and its replacement's dial: a client then dials
	// its own, which is fine. A few tries take a ready one.
	for try := 0; try < 5 && prewarmed(t, recycledM, "taken") == 0; try++ {
		connect(recycled)
	}
	connect(kept)
	if got := prewarmed(t, recycledM, "recycled"); got < 2 {
		t.Errorf("recycling at 1 s: %d recycled in 3.5 s, want at least 2", got)
	}
	if stale, taken := prewarmed(t, recycledM, "stale"), prewarmed(t, recycledM, "taken"); stale != 0 || taken != 1 {
		t.Errorf("recycling at 1 s: %d stale, %d taken; want 0 and 1 (none taken was past the server's authentication_timeout)", stale, taken)
	}
	if stale := prewarmed(t, keptM, "stale"); stale != 1 {
		t.Errorf("keeping them 30 s: %d stale, want 1 (the server had closed it after 2 s)", stale)
	}
}
