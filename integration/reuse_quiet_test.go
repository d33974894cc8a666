package integration

import (
	"context"
	"testing"
	"time"
)

// TestReuseSameApplicationNameNoRoundTrip: a client that wants the
// application_name its parked session already has (the one its login
// set, which DISCARD ALL returns it to) is greeted without a SET, when
// the session answered its reset a moment ago: the backend's last query
// is still the DISCARD ALL while the client holds it. It is told, and
// pg_stat_activity shows, the right name all the same; a client that
// wants another name still gets its SET.
func TestReuseSameApplicationNameNoRoundTrip(t *testing.T) {
	w.enter(t)
	port := startReuseProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := admin(t, ctx)
	lastQuery := func(pid string) (query, app string) {
		res := adm.ExecParams(ctx, "SELECT query, application_name FROM pg_stat_activity WHERE pid = "+pid, nil, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 {
			t.Fatalf("pg_stat_activity for %s: %v (%d rows)", pid, res.Err, len(res.Rows))
		}
		return string(res.Rows[0][0]), string(res.Rows[0][1])
	}
	conninfo := dsn(port, iamUser) + " application_name=reuse_same"
	a := connectPG(t, ctx, conninfo)
	pid := one(t, ctx, a, "SELECT pg_backend_pid()")
	a.Close(ctx)
	waitParked(t, ctx, adm, pid)

	// The second must come within a second of the reset: on a loaded
	// machine one try may miss it, five in a row do not.
	skipped := false
	for try := 0; try < 5 && !skipped; try++ {
		b := connectPG(t, ctx, conninfo)
		query, app := lastQuery(pid)
		skipped = query == "DISCARD ALL"
		if got := b.ParameterStatus("application_name"); got != "reuse_same" {
			t.Errorf("the client was told application_name %q", got)
		}
		if got := one(t, ctx, b, "SELECT pg_backend_pid()"); got != pid {
			t.Fatalf("try %d: the client got backend %s, not the parked %s", try, got, pid)
		}
		if app != "reuse_same" {
			t.Errorf("pg_stat_activity shows application_name %q", app)
		}
		b.Close(ctx)
		waitParked(t, ctx, adm, pid)
	}
	if !skipped {
		t.Fatal("every adoption of a session with the client's application_name ran a query upstream")
	}

	c := connectPG(t, ctx, dsn(port, iamUser)+" application_name=reuse_other")
	if query, app := lastQuery(pid); app != "reuse_other" || query == "DISCARD ALL" {
		t.Errorf("a client with another application_name: last query %q, application_name %q; want its SET", query, app)
	}
	if got := c.ParameterStatus("application_name"); got != "reuse_other" {
		t.Errorf("the client was told application_name %q", got)
	}
	c.Close(ctx)
	waitParked(t, ctx, adm, pid)
}
