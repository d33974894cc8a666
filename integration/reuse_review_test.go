package integration

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rds-iam-proxy/rds-iam-proxy/internal/config"
	"github.com/rds-iam-proxy/rds-iam-proxy/internal/launch"
)

// Findings of the review of Postgres session reuse (issue 15), each
// proved against a real PostgreSQL through the proxy. Budget: about 5 s
// of CI time for the file.

// connectParams connects through port as the IAM user with extra startup
// parameters, sent byte for byte as given.
func connectParams(t *testing.T, ctx context.Context, port string, params map[string]string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn(port, iamUser))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect with %q: %v", params, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestReuseApplicationNameIsNotSQL: a parked session is handed over with
// its application_name SET in a string literal. In a client-only
// multibyte encoding (SJIS, BIG5, GBK...) a backslash can be the second
// byte of a character, so the doubled backslash of an E” literal is
// taken apart by the server and the quote after it closes the literal:
// with backslash_quote = on (any client may set it at startup), the rest
// of the client's application_name ran as SQL before its greeting. With
// the default backslash_quote the SET fails instead, and so does one
// with bytes that are not valid in the client encoding: the parked
// session is thrown away (up to three per such client). A login keeps
// only printable ASCII of an application_name, so the proxy never puts
// other bytes into SQL: such a client logs in, and the parked session
// stays parked.
func TestReuseApplicationNameIsNotSQL(t *testing.T) {
	w.enter(t)
	port := startReuseProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	for _, tc := range []struct {
		name   string
		params map[string]string
		app    string
	}{
		{"SJIS backslash_quote on", map[string]string{"client_encoding": "SJIS", "backslash_quote": "on"},
			"\x95\\'; SET search_path = injected; --"},
		{"SJIS", map[string]string{"client_encoding": "SJIS"}, "\x95\\'; SET search_path = injected; --"},
		{"invalid UTF-8", map[string]string{}, "app\xff\xfe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := connectParams(t, ctx, port, tc.params)
			pid := one(t, ctx, a, "SELECT pg_backend_pid()")
			fresh := one(t, ctx, a, "SELECT current_setting('search_path')")
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			waitParked(t, ctx, adm, pid)

			params := map[string]string{"application_name": tc.app}
			for k, v := range tc.params {
				params[k] = v
			}
			b := connectParams(t, ctx, port, params)
			if got := one(t, ctx, b, "SELECT current_setting('search_path')"); got != fresh {
				t.Errorf("the client's application_name ran as SQL: its search_path is %q, a login's %q", got, fresh)
			}
			bpid := one(t, ctx, b, "SELECT pg_backend_pid()")
			if bpid == pid {
				return // it got the parked session, unharmed
			}
			if got := one(t, ctx, adm, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid); got != "1" {
				t.Errorf("the parked session %s was thrown away for a client that did not take it", pid)
			}
		})
	}
}

// TestReuseApplicationNameFromOptions: a client may set application_name
// in its options (-c application_name=...) rather than as a parameter of
// its own; a login then shows that. A parked session was handed over
// with application_name SET to the empty string for it (the value for a
// client that sent none), so it showed neither its own name nor, had it
// been RESET, only the last client's.
func TestReuseApplicationNameFromOptions(t *testing.T) {
	w.enter(t)
	port := startReuseProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	opts := map[string]string{"options": "-c application_name=reuse_from_options"}
	a := connectParams(t, ctx, port, map[string]string{"options": opts["options"], "application_name": "reuse_A"})
	pid := one(t, ctx, a, "SELECT pg_backend_pid()")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A's session is parked or closed (not reused): either way B's
	// application_name must be what a login gives it.
	waitFor(t, 10*time.Second, func() bool {
		return one(t, ctx, adm, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid+" AND (state <> 'idle' OR query <> 'DISCARD ALL')") == "0"
	})
	b := connectParams(t, ctx, port, opts)
	if got := one(t, ctx, b, "SELECT current_setting('application_name')"); got != "reuse_from_options" {
		t.Errorf("a client that named itself in its options shows application_name %q", got)
	}
	if got := b.ParameterStatus("application_name"); got != "reuse_from_options" {
		t.Errorf("a client that named itself in its options was told application_name %q", got)
	}
}

// TestReuseHungParkedSessionCostsLittle: a parked session whose server
// stopped answering (a stopped backend here; a black-holed address after
// a failover on RDS) was tried for the whole connect timeout, and then
// the next one as long: a client waited connect_timeout per dead parked
// session before it logged in, and with the defaults (15 s, handshake
// 30 s) two of them failed it outright. Handing over a parked session is
// one round trip on an idle session: it is bounded by a few seconds, and
// past that the client logs in. Budget: about 5 s.
func TestReuseHungParkedSessionCostsLittle(t *testing.T) {
	w.enter(t)
	port := startProxy(t, func(c *launch.Config) {
		c.SessionReuse = true
		c.PoolMaxIdlePerKey = 1
		c.ConnectTimeout = config.Duration(time.Minute)
		c.HandshakeTimeout = config.Duration(90 * time.Second)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	a := connectPG(t, ctx, dsn(port, iamUser))
	pid := one(t, ctx, a, "SELECT pg_backend_pid()")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitParked(t, ctx, adm, pid)
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := stopProcess(n); err != nil {
		t.Fatalf("stop the parked backend: %v", err)
	}
	t.Cleanup(func() { continueProcess(n) })
	// A session that answered its reset less than a second ago is taken on
	// a look at its socket alone (proxy.QuietFor); past that its
	// adoption is a round trip, which a stopped backend does not answer.
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
	defer bcancel()
	b, err := pgconn.Connect(bctx, dsn(port, iamUser))
	if err != nil {
		t.Fatalf("a client behind a hung parked session did not get in (after %v): %v", time.Since(start).Round(time.Millisecond), err)
	}
	defer b.Close(ctx)
	if got := one(t, ctx, b, "SELECT pg_backend_pid()"); got == pid {
		t.Fatal("the client got the stopped backend")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a client behind a hung parked session took %v to get in", took.Round(time.Millisecond))
	}
}

// TestReuseApplicationNameAnyCase: startup parameter names are GUC names,
// which PostgreSQL takes in any case, so Application_Name names a client
// too; Adopt SET application_name from the lower-case parameter only, to
// the empty string for such a client.
func TestReuseApplicationNameAnyCase(t *testing.T) {
	w.enter(t)
	port := startReuseProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	params := map[string]string{"Application_Name": "reuse_any_case"}
	a := connectParams(t, ctx, port, params)
	pid := one(t, ctx, a, "SELECT pg_backend_pid()")
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		return one(t, ctx, adm, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid+" AND (state <> 'idle' OR query <> 'DISCARD ALL')") == "0"
	})
	b := connectParams(t, ctx, port, params)
	if got := one(t, ctx, b, "SELECT current_setting('application_name')"); got != "reuse_any_case" {
		t.Errorf("a client that sent Application_Name shows application_name %q", got)
	}
}
